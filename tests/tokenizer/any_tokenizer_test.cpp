#include "optiq/tokenizer/any_tokenizer.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "../io/gguf_builder.hpp"
#include "../io/io_test_util.hpp"

namespace optiq::tokenizer::test {
namespace {

namespace fs = std::filesystem;

fs::path stories_dir() { return io::test::shared_models_dir() / "stories260K"; }
fs::path smollm_gguf() { return io::test::cache_dir() / "SmolLM2-135M-Instruct.Q4_1.gguf"; }

TEST(AnyTokenizer, FindsTok512BesideAStoriesCheckpoint) {
    const auto t = load_tokenizer(stories_dir() / "stories260K.bin");
    ASSERT_FALSE(t.empty());
    ASSERT_NE(t.sentencepiece(), nullptr);
    EXPECT_EQ(t.vocab_size(), 512u);
    EXPECT_FALSE(t.chat().has_value());
    const auto ids = t.encode("Once upon a time");
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids[0], 1);  // llama2.c's encode adds BOS
    EXPECT_TRUE(t.adds_bos());
    EXPECT_EQ(t.decode(ids), "Once upon a time");
    // An explicit path wins, and a missing one names itself.
    EXPECT_EQ(load_tokenizer("ignored.bin", stories_dir() / "tok512.bin").vocab_size(), 512u);
    try {
        (void)load_tokenizer("ignored.bin", "/nonexistent/tok.bin");
        FAIL() << "no exception";
    } catch (const format_error& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent/tok.bin"), std::string::npos);
    }
}

TEST(AnyTokenizer, ReadsVocabularyAndChatTemplateFromGguf) {
    if (!fs::exists(smollm_gguf())) {
        if (io::test::ci()) FAIL() << smollm_gguf() << " missing: scripts/setup.sh fetches it";
        GTEST_SKIP() << smollm_gguf() << " not fetched (scripts/fetch_models.sh)";
    }
    const auto t = load_tokenizer(smollm_gguf());
    ASSERT_NE(t.byte_level(), nullptr);
    EXPECT_EQ(t.vocab_size(), 49152u);
    ASSERT_TRUE(t.chat().has_value());
    EXPECT_EQ(t.chat()->format(), ChatFormat::smollm2);
    const std::string prompt = t.chat()->render({{"user", "Hi"}}, true);
    const auto ids = t.encode(prompt);
    EXPECT_EQ(ids.front(), 1);  // <|im_start|> is token 1 in SmolLM2's vocabulary
    EXPECT_EQ(t.decode(ids, false), prompt);
    EXPECT_FALSE(t.adds_bos());
}

TEST(AnyTokenizer, EmptyWhenTheModelHasNone) {
    const fs::path dir = fs::temp_directory_path() / "optiq_any_tokenizer_empty";
    fs::create_directories(dir);
    std::ofstream(dir / "model.bin") << "x";
    const auto t = load_tokenizer(dir / "model.bin");
    EXPECT_TRUE(t.empty());
    EXPECT_THROW((void)t.encode("a"), config_error);
    fs::remove_all(dir);
}

TEST(AnyTokenizer, GgufTokenIdsAreCheckedBeforeNarrowing) {
    io::test::GgufBuilder b;
    b.kv_string("tokenizer.ggml.model", "gpt2");
    b.kv_strings("tokenizer.ggml.tokens", {"a", "b"});
    b.kv_strings("tokenizer.ggml.merges", {});
    b.kv_u64("tokenizer.ggml.bos_token_id", (1ull << 32) + 1);  // once narrowed to token 1
    const auto f = io::GgufFile::from_bytes(b.build(), "m.gguf");
    try {
        (void)tokenizer_from_gguf(f);
        FAIL() << "bos id 2^32 + 1 accepted";
    } catch (const format_error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("m.gguf"), std::string::npos) << msg;
        EXPECT_NE(msg.find("tokenizer.ggml.bos_token_id"), std::string::npos) << msg;
    }
    io::test::GgufBuilder neg;
    neg.kv_string("tokenizer.ggml.model", "llama");
    neg.kv_strings("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>"});
    neg.kv_array<float>("tokenizer.ggml.scores", 6, {0.f, 0.f, 0.f});
    neg.kv_i64("tokenizer.ggml.eos_token_id", -(1ll << 32) + 2);  // once narrowed to token 2
    EXPECT_THROW((void)tokenizer_from_gguf(io::GgufFile::from_bytes(neg.build(), "n.gguf")), format_error);
}

}  // namespace
}  // namespace optiq::tokenizer::test
