#include "optiq/tokenizer/bpe.hpp"

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "optiq/core/rng.hpp"
#include "optiq/io/gguf.hpp"

namespace tk = optiq::tokenizer;
using Ids = std::vector<tk::TokenId>;
using json = nlohmann::json;

namespace {

tk::EncodeOptions opts(bool parse_special, std::optional<bool> add_bos = std::nullopt, bool add_eos = false) {
    tk::EncodeOptions o;
    o.parse_special = parse_special;
    o.add_bos = add_bos;
    o.add_eos = add_eos;
    return o;
}

// A toy byte-level vocabulary: ids 0..255 are the bytes (in GPT-2's mapped spelling), then
// 256 "aa", 257 "Ġa", 258 "Ġaa", 259 "<|end|>" (special), 260 "<tool>" (added, not special),
// 261 "bc" (no merge makes it), 262 "Ġaaa" (only reachable with ignore_merges).
json toy_json() {
    const tk::ByteUnicodeMap map;
    json vocab = json::object();
    for (int b = 0; b < 256; ++b) vocab[map.to_utf8[static_cast<std::size_t>(b)]] = b;
    vocab["aa"] = 256;
    vocab["\xC4\xA0" "a"] = 257;
    vocab["\xC4\xA0" "aa"] = 258;
    vocab["bc"] = 261;
    vocab["\xC4\xA0" "aaa"] = 262;
    // Ranks: "a a" 0, "Ġ a" 1, ["Ġ", "aa"] 2 (both spellings of a merge).
    json merges = json::array({"a a", "\xC4\xA0 a", json::array({"\xC4\xA0", "aa"})});
    return {
        {"version", "1.0"},
        {"added_tokens", json::array({{{"id", 259}, {"content", "<|end|>"}, {"special", true}},
                                      {{"id", 260}, {"content", "<tool>"}, {"special", false}}})},
        {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
        {"decoder", {{"type", "ByteLevel"}}},
        {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}},
    };
}

TEST(ByteLevelBpe, LowestRankFirstLeftmostOnTies) {
    const auto t = tk::ByteLevelBpe::from_hf_json(toy_json());
    EXPECT_EQ(t.vocab_size(), 263u);
    // " aaa" is one piece: Ġ a a a. "a a" (rank 0) merges leftmost first: Ġ aa a, then "Ġ aa" (rank 2).
    // (Rightmost first would give Ġ a aa -> Ġa aa = {257, 256}.)
    EXPECT_EQ(t.encode(" aaa"), (Ids{258, 'a'}));
    EXPECT_EQ(t.encode("aaaa"), (Ids{256, 256}));
    EXPECT_EQ(t.encode(" a"), (Ids{257}));
    EXPECT_EQ(t.encode("bc"), (Ids{'b', 'c'}));  // "bc" is in the vocabulary but no merge makes it
    EXPECT_EQ(t.encode("caf\xC3\xA9"), (Ids{'c', 'a', 'f', 0xC3, 0xA9}));
}

TEST(ByteLevelBpe, LongPiecesMergeInNearLinearTime) {
    // One 200000-byte piece: a quadratic merge loop would take minutes here.
    const auto t = tk::ByteLevelBpe::from_hf_json(toy_json());
    EXPECT_EQ(t.encode(std::string(200000, 'a')), Ids(100000, 256));
}

TEST(ByteLevelBpe, SpecialTokensAreMatchedWholeAndDecoded) {
    const auto t = tk::ByteLevelBpe::from_hf_json(toy_json());
    const Ids ids = t.encode("x<|end|> aa<tool>");
    EXPECT_EQ(ids, (Ids{'x', 259, 258, 260}));
    EXPECT_EQ(t.encode("x<|end|>", opts(false)).size(), 8u);
    EXPECT_EQ(t.decode(ids), "x<|end|> aa<tool>");
    EXPECT_EQ(t.decode(ids, /*skip_special=*/true), "x aa<tool>");  // HF skips only special: true
    EXPECT_TRUE(t.is_special(259));
    EXPECT_FALSE(t.is_special(258));
    EXPECT_EQ(t.token_id("\xC4\xA0" "aa"), 258);
    for (const char* s : {"", " aaa  aa\n\n", "caf\xC3\xA9 \xF0\x9F\x98\x80 12,5", "<|end|><|end|>"})
        EXPECT_EQ(t.decode(t.encode(s)), s) << s;
}

// Property: decode(encode(s)) == s for valid UTF-8 built from letters, digits, spaces, newlines,
// punctuation, multi-byte characters and special tokens; ids are within the vocabulary.
TEST(ByteLevelBpe, RoundTripsRandomText) {
    const std::vector<std::string> alphabet = {"a", "aa", " ", "  ", "\n", "\t", "7", "'s", "!", "\xC3\xA9",
                                               "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", "<|end|>", "<tool>", "<|", "\xC2\xA0"};
    const auto t = tk::ByteLevelBpe::from_hf_json(toy_json());
    for (std::uint64_t seed = 1; seed <= 300; ++seed) {
        optiq::Rng rng(seed);
        std::string s;
        const auto n = rng.next_u64() % 30;
        for (std::uint64_t i = 0; i < n; ++i) s += alphabet[rng.next_u64() % alphabet.size()];
        const Ids ids = t.encode(s);
        for (tk::TokenId id : ids) ASSERT_LT(static_cast<std::size_t>(id), t.vocab_size());
        EXPECT_EQ(t.decode(ids), s) << "seed " << seed;
    }
}

TEST(ByteLevelBpe, StreamingDecodeHoldsBackSplitCharacters) {
    const auto t = tk::ByteLevelBpe::from_hf_json(toy_json());
    tk::StreamingDecoder<tk::ByteLevelBpe> d(t);
    EXPECT_EQ(d.push(257), " a");
    EXPECT_EQ(d.push(0xF0), "");
    EXPECT_EQ(d.push(0x9F), "");
    EXPECT_EQ(d.push(0x98), "");
    EXPECT_EQ(d.push(0x80), "\xF0\x9F\x98\x80");
    EXPECT_EQ(d.push(0xC3), "");
    EXPECT_EQ(d.flush(), "\xEF\xBF\xBD");
}

TEST(ByteLevelBpe, IgnoreMergesTakesWholeVocabularyPieces) {
    json j = toy_json();
    j["model"]["ignore_merges"] = true;
    EXPECT_EQ(tk::ByteLevelBpe::from_hf_json(j).encode(" aaa"), (Ids{262}));
}

TEST(ByteLevelBpe, GgufArraysWithSmolLMPreTokenizer) {
    const tk::ByteUnicodeMap map;
    std::vector<std::string> tokens;
    for (int b = 0; b < 256; ++b) tokens.push_back(map.to_utf8[static_cast<std::size_t>(b)]);
    tokens.insert(tokens.end(), {"aa", "\xC4\xA0" "a", "\xC4\xA0" "aa", "<|end|>", "<tool>"});
    std::vector<std::int32_t> types(tokens.size(), 1);
    types[259] = 3;
    types[260] = 4;
    const std::vector<std::string> merges = {"a a", "\xC4\xA0 a", "\xC4\xA0 aa"};
    tk::BpeOptions o;
    o.pre = tk::PreTokenizer::smollm;
    o.eos_id = 259;
    const auto t = tk::ByteLevelBpe::from_vocab(tokens, merges, types, o);
    EXPECT_EQ(t.encode(" aa12<tool>", opts(true, std::nullopt, true)), (Ids{258, '1', '2', 260, 259}));
    EXPECT_EQ(t.decode(Ids{258, '1', '2', 260, 259}, true), " aa12<tool>");
    EXPECT_THROW((void)t.encode("x", opts(true, true)), optiq::config_error);  // no BOS id known
}

template <class E>
void expect_error(const json& j, const std::string& needle) {
    try {
        (void)tk::ByteLevelBpe::from_hf_json(j);
        ADD_FAILURE() << "expected an error mentioning " << needle;
    } catch (const E& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
}

TEST(ByteLevelBpe, BadVocabulariesAreRejectedWithTheReason) {
    EXPECT_THROW((void)tk::ByteLevelBpe::from_hf_json_text("{\"model\": {"), optiq::format_error);
    json j = toy_json();
    j["model"]["merges"].push_back("\xC4\xA0 zz");
    expect_error<optiq::format_error>(j, "unknown token 'zz'");
    j = toy_json();
    j["model"]["merges"].push_back("b d");  // "bd" is not in the vocabulary
    expect_error<optiq::format_error>(j, "produces 'bd'");
    j = toy_json();
    j["model"]["merges"].push_back("abc");
    expect_error<optiq::format_error>(j, "two tokens");
    j = toy_json();
    j["model"]["merges"].push_back(json::array({"a"}));
    expect_error<optiq::format_error>(j, "model.merges[3]");
    j = toy_json();
    j["model"]["vocab"]["dup"] = 5;
    expect_error<optiq::format_error>(j, "appears twice");
    j = toy_json();
    j["model"]["vocab"] = json::array();
    expect_error<optiq::format_error>(j, "model.vocab");
    j = toy_json();
    j["model"]["type"] = "Unigram";
    expect_error<optiq::config_error>(j, "not BPE");
    j = toy_json();
    j["pre_tokenizer"] = {{"type", "Whitespace"}};
    expect_error<optiq::config_error>(j, "pre_tokenizer");
    j = toy_json();
    j["model"]["byte_fallback"] = true;
    expect_error<optiq::config_error>(j, "byte_fallback");
    j = toy_json();
    j["normalizer"] = {{"type", "Lowercase"}};
    expect_error<optiq::config_error>(j, "normalizer");
    j = toy_json();
    j["added_tokens"][0]["rstrip"] = true;
    expect_error<optiq::config_error>(j, "rstrip");
    j = toy_json();
    j["normalizer"] = {{"type", "NFC"}};  // accepted (input taken as composed)
    EXPECT_EQ(tk::ByteLevelBpe::from_hf_json(j).encode(" a"), (Ids{257}));
    EXPECT_THROW((void)tk::ByteLevelBpe::from_vocab({"a"}, std::vector<std::string>{}, std::vector<std::int32_t>{1, 1},
                                                    {}),
                 optiq::shape_error);

    const auto t = tk::ByteLevelBpe::from_hf_json(toy_json());
    EXPECT_THROW((void)t.decode(Ids{263}), optiq::value_error);
    EXPECT_THROW((void)t.decode(Ids{-1}), optiq::value_error);
    EXPECT_THROW((void)t.encode("ok \xC3("), optiq::value_error);  // invalid UTF-8: strict by default
}

TEST(ByteLevelBpe, IdsAreCheckedAtFullWidthAgainstTheDeclaredTokenCount) {
    // 4294967295 once passed the ">= 0" check, became -1 as a TokenId and indexed types[SIZE_MAX].
    json j = toy_json();
    j["added_tokens"][0]["id"] = 4294967295ull;
    expect_error<optiq::format_error>(j, "added_tokens[0].id' = 4294967295");
    j = toy_json();
    j["added_tokens"][1]["id"] = -1;
    expect_error<optiq::format_error>(j, "added_tokens[1].id' is not a non-negative integer id");
    j = toy_json();
    j["added_tokens"][1]["id"] = 1ll << 40;
    expect_error<optiq::format_error>(j, "is not below 263");
    // A vocabulary id near INT32_MAX once sized a table of 2^31 strings (~64 GB) from a tiny file.
    json tiny = json::parse(R"({"model": {"type": "BPE", "vocab": {"a": 2147483000}, "merges": []},
                                "pre_tokenizer": {"type": "ByteLevel"}})");
    expect_error<optiq::format_error>(tiny, "model.vocab['a'] = 2147483000 is not below 1");
    // The bound is the number of declared tokens: the toy file declares 263 (261 entries + 2 added).
    j = toy_json();
    j["model"]["vocab"]["zz"] = 262;  // 262 is "Ġaaa" already
    expect_error<optiq::format_error>(j, "appears twice");
    j = toy_json();
    j["model"]["vocab"].erase("\xC4\xA0" "aaa");
    j["model"]["vocab"]["zz"] = 263;  // 263 >= 261 + 2
    expect_error<optiq::format_error>(j, "'zz'] = 263 is not below 263");
    // Added tokens that repeat a vocabulary entry (GPT-2's <|endoftext|>) count too, so a hole fits.
    j = toy_json();
    j["added_tokens"].push_back({{"id", 256}, {"content", "aa"}});
    j["added_tokens"].push_back({{"id", 264}, {"content", "<y>"}});  // 263 is a hole; 264 < 261 + 4
    const auto t = tk::ByteLevelBpe::from_hf_json(j);
    EXPECT_EQ(t.vocab_size(), 265u);
    EXPECT_EQ(t.token_type(263), tk::TokenType::unused);
    EXPECT_EQ(t.encode("a<y>"), (Ids{'a', 264}));
}

TEST(ByteLevelBpe, WrongJsonTypesAreFormatErrorsNamingTheField) {
    // Each once escaped as nlohmann::json::type_error.
    auto expect_field = [](const json& j, const std::string& field) {
        try {
            (void)tk::ByteLevelBpe::from_hf_json(j, "dir/tokenizer.json");
            ADD_FAILURE() << "accepted; expected an error naming " << field;
        } catch (const optiq::format_error& e) {
            const std::string msg = e.what();
            EXPECT_NE(msg.find("dir/tokenizer.json"), std::string::npos) << msg;
            EXPECT_NE(msg.find(field), std::string::npos) << msg;
        }
    };
    json j = toy_json();
    j["model"]["byte_fallback"] = "no";
    expect_field(j, "model.byte_fallback");
    j = toy_json();
    j["model"]["ignore_merges"] = 1;
    expect_field(j, "model.ignore_merges");
    j = toy_json();
    j["added_tokens"][1]["special"] = "yes";
    expect_field(j, "added_tokens[1].special");
    j = toy_json();
    j["added_tokens"][0]["rstrip"] = json::array();
    expect_field(j, "added_tokens[0].rstrip");
    j = toy_json();
    j["added_tokens"][0]["id"] = "259";
    expect_field(j, "added_tokens[0].id");
    j = toy_json();
    j["normalizer"] = "NFC";
    expect_field(j, "'normalizer' must be an object");
    j = toy_json();
    j["normalizer"] = {{"type", 7}};
    expect_field(j, "normalizer.type");
    j = toy_json();
    j["pre_tokenizer"] = {{"type", json::array()}};
    expect_field(j, "pre_tokenizer.type");
    j = toy_json();
    j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"use_regex", "true"}};
    expect_field(j, "pre_tokenizer.use_regex");
    j = toy_json();
    j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", json::array({3})}};
    expect_field(j, "pre_tokenizer.pretokenizers[0]");
    j = toy_json();
    j["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers", json::array({{{"type", "Split"}, {"pattern", {{"Regex", 5}}}}})}};
    expect_field(j, "pre_tokenizer.pretokenizers[0].pattern.Regex");
    EXPECT_THROW((void)tk::ByteLevelBpe::from_hf_json_text("[1e999]"), optiq::format_error);
}

TEST(ByteLevelBpe, ReplacePolicyEncodesU_FFFD) {
    json j = toy_json();
    auto t0 = tk::ByteLevelBpe::from_hf_json(j);
    tk::BpeOptions o = t0.options();
    o.utf8 = tk::Utf8Policy::replace;
    const tk::ByteUnicodeMap map;
    std::vector<std::string> tokens;
    for (int b = 0; b < 256; ++b) tokens.push_back(map.to_utf8[static_cast<std::size_t>(b)]);
    const auto t = tk::ByteLevelBpe::from_vocab(tokens, std::vector<std::string>{}, std::vector<std::int32_t>{}, o);
    EXPECT_EQ(t.encode("a\xFF"), (Ids{'a', 0xEF, 0xBF, 0xBD}));
}

TEST(ByteLevelBpe, DetectsPreTokenizers) {
    const json smollm = json::parse(R"({"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": true},
        {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}]})");
    EXPECT_EQ(tk::ByteLevelBpe::detect_pre_tokenizer(smollm, "t"), tk::PreTokenizer::smollm);
    json qwen = json::parse(R"({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": ""}, "behavior": "Isolated", "invert": false},
        {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}]})");
    qwen["pretokenizers"][0]["pattern"]["Regex"] =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
        "\\s+(?!\\S)|\\s+";
    EXPECT_EQ(tk::ByteLevelBpe::detect_pre_tokenizer(qwen, "t"), tk::PreTokenizer::qwen2);
    qwen["pretokenizers"][0]["pattern"]["Regex"] =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
        "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    EXPECT_EQ(tk::ByteLevelBpe::detect_pre_tokenizer(qwen, "t"), tk::PreTokenizer::llama3);
    qwen["pretokenizers"][1]["use_regex"] = true;  // the GPT-2 regex after Qwen's split: not a known model
    EXPECT_THROW((void)tk::ByteLevelBpe::detect_pre_tokenizer(qwen, "t"), optiq::config_error);
    qwen["pretokenizers"][1]["use_regex"] = false;
    EXPECT_THROW((void)tk::ByteLevelBpe::detect_pre_tokenizer(
                     json{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}}, "t"),
                 optiq::config_error);
    EXPECT_THROW((void)tk::ByteLevelBpe::detect_pre_tokenizer(json{{"type", "ByteLevel"}, {"use_regex", false}}, "t"),
                 optiq::config_error);
    qwen["pretokenizers"][0]["pattern"]["Regex"] = "\\w+";
    EXPECT_THROW((void)tk::ByteLevelBpe::detect_pre_tokenizer(qwen, "t"), optiq::config_error);
}

// ---- SmolLM2-135M-Instruct's vocabulary (scripts/fetch_models.sh) ---------------------------------
std::filesystem::path smollm_path() {
    const char* c = std::getenv("OPTIQ_CACHE");
    const char* home = std::getenv("HOME");
    const std::filesystem::path cache =
        c && *c ? std::filesystem::path(c) : std::filesystem::path(home ? home : ".") / ".cache" / "optiq";
    return cache / "SmolLM2-135M-Instruct.Q4_1.gguf";
}

TEST(ByteLevelBpeSmolLM2, MatchesHfTokenizersGoldenIds) {
    if (!std::filesystem::exists(smollm_path()))
        GTEST_SKIP() << smollm_path() << " is absent; run scripts/fetch_models.sh";
    const auto file = optiq::io::GgufFile::open(smollm_path());
    const auto& md = file.metadata();
    ASSERT_EQ(md.get<std::string>("tokenizer.ggml.pre"), "smollm");
    tk::BpeOptions o;
    o.pre = tk::pre_tokenizer_from_gguf(md.get<std::string>("tokenizer.ggml.pre"));
    const auto t = tk::ByteLevelBpe::from_vocab(md.get_array<std::string>("tokenizer.ggml.tokens"),
                                                md.get_array<std::string>("tokenizer.ggml.merges"),
                                                md.get_array<std::int32_t>("tokenizer.ggml.token_type"), o);
    ASSERT_EQ(t.vocab_size(), 49152u);
    // Ids from HF tokenizers 0.23 (BPE + Digits(individual) + ByteLevel built from this file's vocabulary).
    EXPECT_EQ(t.encode("Once upon a time, there was a little dog"),
              (Ids{6403, 1980, 253, 655, 28, 665, 436, 253, 1838, 2767}));
    EXPECT_EQ(t.encode("In 1990, I'm 25 years old."),
              (Ids{788, 216, 33, 41, 41, 32, 28, 339, 5248, 216, 34, 37, 929, 1573, 30}));
    EXPECT_EQ(t.encode("<|im_start|>user\nHi<|im_end|>"), (Ids{1, 4093, 198, 26843, 2}));
    const Ids emoji = t.encode("na\xC3\xAFve caf\xC3\xA9 \xF0\x9F\x98\x80");
    EXPECT_EQ(emoji, (Ids{3546, 46494, 37366, 40303, 218}));
    // Token 40303 is "Ġ" + the first three bytes of 😀: the stream shows the space, holds the rest.
    tk::StreamingDecoder<tk::ByteLevelBpe> d(t);
    EXPECT_EQ(d.push(37366), " caf\xC3\xA9");
    EXPECT_EQ(d.push(40303), " ");
    EXPECT_EQ(d.pending(), 3u);
    EXPECT_EQ(d.push(218), "\xF0\x9F\x98\x80");
}

}  // namespace
