#include "optiq/serve/engine.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../model/model_test_util.hpp"
#include "optiq/serve/openai.hpp"

namespace optiq::serve::test {
namespace {

using model::test::stories;
using model::test::stories_bin;
using model::test::stories_tok;

const tokenizer::AnyTokenizer& tok() {
    static const tokenizer::AnyTokenizer t = tokenizer::load_tokenizer(stories_bin(), stories_tok());
    return t;
}

model::Transformer batch_model(std::size_t sequences) {
    model::TransformerOptions o;
    o.sequences = sequences;
    o.threads = 1;
    return stories(o);
}

GenerationRequest completion(const std::string& prompt, std::size_t max_tokens, float temperature = 0.0f,
                             std::uint64_t seed = 0, std::vector<std::string> stop = {}) {
    GenerationRequest r;
    r.endpoint = Endpoint::completions;
    r.prompt = prompt;
    r.max_tokens = max_tokens;
    r.sampling.temperature = temperature;
    r.sampling.seed = seed;
    r.seed_given = true;
    r.stop = std::move(stop);
    return r;
}

/// model::generate on a one-sequence model with optiq-generate's detokenizer (text of prompt +
/// generated minus text of prompt): what the engine must reproduce.
model::GenerateResult reference(const GenerationRequest& r) {
    auto m = stories();
    const auto ids = tok().encode(r.prompt);
    model::GenerateOptions o;
    o.max_tokens = *r.max_tokens;
    o.sampling = r.sampling;
    o.stop_strings = r.stop;
    const std::string prompt_text = tok().decode(ids);
    const model::Detokenizer detok = [&](std::span<const TokenId> t) {
        std::vector<TokenId> all(ids);
        all.insert(all.end(), t.begin(), t.end());
        return tok().decode(all).substr(prompt_text.size());
    };
    return model::generate(m, ids, o, detok);
}

/// All streamed text and the result.
std::pair<std::string, Completion> drain(Job& job) {
    std::string streamed;
    for (;;) {
        auto u = job.next(std::chrono::milliseconds(100));
        streamed += u.text;
        if (u.done) return {streamed, job.result()};
    }
}

TEST(Engine, GreedyCompletionEqualsGenerate) {
    auto m = batch_model(2);
    Engine engine(m, tok());
    const auto r = completion("Once upon a time", 40);
    const auto want = reference(r);
    auto job = engine.submit(r);
    const auto [streamed, c] = drain(*job);
    EXPECT_EQ(c.text, want.text);
    EXPECT_EQ(streamed, c.text);
    EXPECT_EQ(c.finish, FinishReason::max_tokens);
    EXPECT_EQ(c.completion_tokens, 40u);
    EXPECT_EQ(c.prompt_tokens, tok().encode("Once upon a time").size());
    EXPECT_EQ(job->prompt_tokens(), c.prompt_tokens);
}

TEST(Engine, StopStringIsCutAndNeverStreamed) {
    auto m = batch_model(1);
    Engine engine(m, tok());
    const auto r = completion("Once upon a time", 100, 0.0f, 0, {"Lily", "park"});
    const auto want = reference(r);
    ASSERT_EQ(want.stop, model::StopReason::stop_string);
    auto job = engine.submit(r);
    const auto [streamed, c] = drain(*job);
    EXPECT_EQ(c.finish, FinishReason::stop_string);
    EXPECT_EQ(c.stop_string, "Lily");
    EXPECT_EQ(c.text, want.text);
    EXPECT_EQ(streamed, want.text);
    EXPECT_EQ(streamed.find("Lily"), std::string::npos);
    EXPECT_EQ(c.completion_tokens, want.tokens.size());
}

TEST(Engine, ConcurrentRequestsMatchTheirSequentialResults) {
    // More requests than slots: some wait, all share forward_batch steps with different prompt
    // lengths, sampling settings and seeds.
    std::vector<GenerationRequest> reqs;
    const char* prompts[] = {"Once upon a time", "Lily", "The dog ran", "One day, Tom went to the park and saw a big",
                             "She", "The sun was"};
    for (std::size_t i = 0; i < 6; ++i)
        reqs.push_back(completion(prompts[i], 20 + 5 * i, i % 2 ? 0.8f : 0.0f, 100 + i, i == 4 ? std::vector<std::string>{"."} : std::vector<std::string>{}));
    auto m = batch_model(3);
    EngineOptions o;
    o.prefill_chunk = 5;  // prompts are fed in pieces beside running decodes
    Engine engine(m, tok(), o);
    std::vector<std::shared_ptr<Job>> jobs;
    for (const auto& r : reqs) jobs.push_back(engine.submit(r));
    for (std::size_t i = 0; i < reqs.size(); ++i) {
        const auto want = reference(reqs[i]);
        const auto [streamed, c] = drain(*jobs[i]);
        EXPECT_EQ(c.text, want.text) << prompts[i];
        EXPECT_EQ(streamed, want.text) << prompts[i];
        EXPECT_EQ(c.completion_tokens, want.tokens.size()) << prompts[i];
    }
}

TEST(Engine, SameSeedSameTextWithoutSeedDifferent) {
    auto m = batch_model(2);
    Engine engine(m, tok());
    auto r = completion("Lily", 30, 1.0f, 9);
    const auto a = engine.submit(r)->wait();
    const auto b = engine.submit(r)->wait();
    EXPECT_EQ(a.text, b.text);
    r.seed_given = false;  // seeds then come from the engine's counter: two requests differ
    const auto p = engine.prepare(r), q = engine.prepare(r);
    EXPECT_NE(p.sampling.seed, q.sampling.seed);
}

TEST(Engine, PromptLongerThanContextIs400) {
    auto m = batch_model(1);
    EngineOptions o;
    o.context = 16;
    Engine engine(m, tok(), o);
    auto r = completion("Once upon a time there was a little girl named Lily who loved to play", 4);
    r.endpoint = Endpoint::completions;
    try {
        (void)engine.submit(r);
        FAIL();
    } catch (const api_error& e) {
        EXPECT_EQ(e.status(), 400);
        EXPECT_EQ(e.body()["error"]["code"], "context_length_exceeded");
    }
    r.max_tokens = 17;
    r.prompt = "Lily";
    EXPECT_THROW((void)engine.submit(r), api_error);
    // A prompt that fits runs until the context is full.
    r.max_tokens = 16;
    const auto c = engine.submit(r)->wait();
    EXPECT_EQ(c.finish, FinishReason::context_full);
    EXPECT_EQ(c.prompt_tokens + c.completion_tokens, 17u);  // the last token is sampled, never fed
}

TEST(Engine, TokenIdPromptsAndChatFallback) {
    auto m = batch_model(1);
    Engine engine(m, tok());
    GenerationRequest ids;
    ids.prompt_is_ids = true;
    ids.prompt_ids = {1, 403};
    ids.max_tokens = 3;
    EXPECT_EQ(engine.submit(ids)->wait().prompt_tokens, 2u);
    ids.prompt_ids = {1, 9999};
    EXPECT_THROW((void)engine.submit(ids), api_error);

    GenerationRequest chat;
    chat.endpoint = Endpoint::messages;
    chat.messages = {{"system", "A story."}, {"user", "Tell me"}};
    chat.max_tokens = 5;
    EXPECT_EQ(engine.prompt_text(chat), "A story.\n\nUser: Tell me\n\nAssistant:");  // stories260K has no template
    EXPECT_EQ(engine.submit(chat)->wait().prompt_tokens, tok().encode(engine.prompt_text(chat)).size());
}

TEST(Engine, FullQueueIs503) {
    auto m = batch_model(1);
    EngineOptions o;
    o.max_queue = 1;
    Engine engine(m, tok(), o);
    // Two long requests hold the slot and the queue place; the third is refused at once.
    auto a = engine.submit(completion("Once", 500));
    auto b = engine.submit(completion("Once", 500));
    try {
        (void)engine.submit(completion("Once", 5));
        FAIL() << "no 503";
    } catch (const api_error& e) {
        EXPECT_EQ(e.status(), 503);
        EXPECT_EQ(e.kind(), ErrorKind::overloaded);
    }
    a->cancel();
    b->cancel();
    EXPECT_EQ(a->wait().finish, FinishReason::cancelled);
    EXPECT_EQ(b->wait().finish, FinishReason::cancelled);
    EXPECT_EQ(engine.cancelled_total(), 2u);  // one running, one still waiting: both counted
    // Both places are free again.
    EXPECT_EQ(engine.submit(completion("Once", 5))->wait().completion_tokens, 5u);
}

TEST(Engine, CancelFreesTheSlotForTheNextRequest) {
    auto m = batch_model(1);
    Engine engine(m, tok());
    auto a = engine.submit(completion("Once upon a time", 500));
    (void)a->next(std::chrono::milliseconds(50));
    a->cancel();
    const auto ca = a->wait();
    EXPECT_EQ(ca.finish, FinishReason::cancelled);
    EXPECT_LT(ca.completion_tokens, 500u);
    EXPECT_EQ(engine.cancelled_total(), 1u);
    const auto r = completion("Once upon a time", 30);
    EXPECT_EQ(engine.submit(r)->wait().text, reference(r).text);  // the reused slot starts clean
}

TEST(Engine, ShutdownEndsRunningAndWaitingJobs) {
    auto m = batch_model(1);
    std::shared_ptr<Job> running, waiting;
    {
        Engine engine(m, tok());
        running = engine.submit(completion("Once", 500));
        waiting = engine.submit(completion("Once", 500));
        (void)running->next(std::chrono::milliseconds(20));
    }  // destroyed with both unfinished (or the first just done)
    EXPECT_TRUE(running->done());
    EXPECT_TRUE(waiting->done());
    const auto w = waiting->result();
    EXPECT_TRUE(w.finish == FinishReason::error || w.finish == FinishReason::max_tokens);
}

TEST(Engine, SubmitAfterStopIs503) {
    auto m = batch_model(1);
    Engine engine(m, tok());
    engine.stop();
    try {
        (void)engine.submit(completion("Once", 5));
        FAIL();
    } catch (const api_error& e) {
        EXPECT_EQ(e.status(), 503);
    }
}

}  // namespace
}  // namespace optiq::serve::test
