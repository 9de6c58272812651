#pragma once
// serve::Engine: continuous batching of many generation requests over ONE model::Transformer.
// The model holds TransformerOptions::sequences cache slots; a scheduler thread owns it and
// repeats one step:
//   1. admit waiting requests into free slots (FIFO);
//   2. one forward_batch holding one decode token for every sequence that is generating, plus up
//      to prefill_chunk prompt tokens of sequences still prefilling — so a long prompt is cut into
//      pieces and never stalls the streams already decoding (the weights are read once per step);
//   3. sample each finished row with the request's own model::Sampler (its seed and parameters),
//      detokenize incrementally (tokenizer::StreamingDecoder: UTF-8 sequences split over tokens
//      are held back), hold back text that could still become a stop string (as model::generate),
//      and hand the final text to the request's Job.
// The HTTP side only talks to Jobs: submit() renders and tokenizes on the caller's thread, throws
// api_error for a prompt longer than the context (400) or a full queue (503) before anything is
// sent, and returns the Job; Job::next() waits for text; Job::cancel() (the client went away)
// frees the slot at the next step. With exact activations greedy results do not depend on what else
// runs in the batch: every matmul row and every attention query is computed alone (see
// model::Linear::matmul). With int8 activations (the default for GGUF block weights) a step of 16 or
// more tokens runs the token-vector kernels, whose float summation order differs from the row
// kernels': results can then depend on the batch, within the int8 rule's accuracy
// (--activations exact restores batch independence).
//
// Shutdown: the destructor (or stop()) ends the scheduler after its current step and finishes
// every unfinished Job with FinishReason::error, so no waiter blocks forever.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/model/generate.hpp"
#include "optiq/model/sampling.hpp"
#include "optiq/model/transformer.hpp"
#include "optiq/serve/request.hpp"
#include "optiq/tokenizer/any_tokenizer.hpp"
#include "optiq/tokenizer/vocab.hpp"

namespace optiq::serve {

struct EngineOptions {
    std::size_t max_queue = 0;           ///< requests waiting for a slot (0: 4 x the model's sequences)
    std::size_t prefill_chunk = 0;       ///< prompt tokens per step over all prefills (0: the model's prefill_chunk)
    std::size_t context = 0;             ///< tokens per sequence (0: config().max_seq_len, else 4096)
    std::size_t default_max_tokens = 0;  ///< when a request gives none (0: up to the context)
    std::uint64_t seed = 0;              ///< requests without a seed get one derived from it and a counter
};

/// One request's progress, shared by the engine (producer) and an HTTP handler (consumer).
class Job {
public:
    struct Update {
        std::string text;   ///< new final text since the last call
        bool done = false;  ///< result() is set
    };

    explicit Job(std::size_t prompt_tokens) : prompt_tokens_(prompt_tokens) {}

    /// Waits up to `timeout` for text or the end; returns what arrived (possibly nothing).
    [[nodiscard]] Update next(std::chrono::milliseconds timeout) {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, timeout, [&] { return done_ || !pending_.empty(); });
        Update u;
        u.text = std::move(pending_);
        pending_.clear();
        u.done = done_;
        return u;
    }
    /// Blocks until the end (non-streaming responses).
    [[nodiscard]] Completion wait() {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return done_; });
        pending_.clear();
        return result_;
    }
    [[nodiscard]] bool done() const {
        std::lock_guard lock(mu_);
        return done_;
    }
    /// Valid once done.
    [[nodiscard]] Completion result() const {
        std::lock_guard lock(mu_);
        return result_;
    }
    /// The client is gone: the engine drops the request at its next step.
    void cancel() noexcept { cancelled_.store(true, std::memory_order_relaxed); }
    [[nodiscard]] bool cancelled() const noexcept { return cancelled_.load(std::memory_order_relaxed); }
    [[nodiscard]] std::size_t prompt_tokens() const noexcept { return prompt_tokens_; }

    // Producer side (the engine).
    void push(std::string_view text) {
        if (text.empty()) return;
        {
            std::lock_guard lock(mu_);
            pending_ += text;
        }
        cv_.notify_all();
    }
    void finish(Completion c, std::string_view tail) {
        {
            std::lock_guard lock(mu_);
            if (done_) return;
            pending_ += tail;
            result_ = std::move(c);
            done_ = true;
        }
        cv_.notify_all();
    }

private:
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::string pending_;
    bool done_ = false;
    Completion result_;
    std::atomic<bool> cancelled_{false};
    std::size_t prompt_tokens_;
};

/// A request ready to run: the prompt ids and the resolved limits.
struct PreparedRequest {
    std::vector<TokenId> prompt;
    std::size_t max_tokens = 0;
    model::SamplingOptions sampling{};
    std::vector<std::string> stop;
};

namespace detail {

/// tokenizer::StreamingDecoder over whichever tokenizer an AnyTokenizer holds, started after
/// `prev` (the last prompt token), so the text equals decode(prompt + generated) - decode(prompt):
/// a SentencePiece piece keeps its leading space unless it starts the text.
class IncrementalDetokenizer {
public:
    IncrementalDetokenizer(const tokenizer::AnyTokenizer& tok, std::optional<TokenId> prev) {
        if (const auto* sp = tok.sentencepiece()) d_.emplace<1>(*sp, true);
        else if (const auto* bl = tok.byte_level()) d_.emplace<2>(*bl, true);
        if (prev) {
            (void)push(*prev);
            (void)flush();
        }
    }
    [[nodiscard]] std::string push(TokenId id) {
        return std::visit(
            [&](auto& d) -> std::string {
                if constexpr (std::is_same_v<std::decay_t<decltype(d)>, std::monostate>) return {};
                else return d.push(id);
            },
            d_);
    }
    [[nodiscard]] std::string flush() {
        return std::visit(
            [&](auto& d) -> std::string {
                if constexpr (std::is_same_v<std::decay_t<decltype(d)>, std::monostate>) return {};
                else return d.flush();
            },
            d_);
    }

private:
    std::variant<std::monostate, tokenizer::StreamingDecoder<tokenizer::SentencePieceBpe>,
                 tokenizer::StreamingDecoder<tokenizer::ByteLevelBpe>>
        d_;
};

/// splitmix64 finaliser: distinct, well-spread seeds from (base, counter).
[[nodiscard]] constexpr std::uint64_t mix_seed(std::uint64_t base, std::uint64_t n) noexcept {
    std::uint64_t z = base + 0x9E3779B97F4A7C15ull * (n + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

}  // namespace detail

class Engine {
public:
    /// `m` and `tok` must outlive the engine; the engine is the only user of `m` while it runs.
    Engine(model::Transformer& m, const tokenizer::AnyTokenizer& tok, EngineOptions o = {})
        : m_(m), tok_(tok), o_(o) {
        if (o_.max_queue == 0) o_.max_queue = 4 * m_.sequences();
        if (o_.prefill_chunk == 0) o_.prefill_chunk = std::max<std::size_t>(1, m_.options().prefill_chunk);
        if (o_.context == 0) o_.context = m_.config().max_seq_len ? m_.config().max_seq_len : 4096;
        for (std::size_t s = m_.sequences(); s-- > 0;) free_.push_back(s);
        thread_ = std::thread([this] { run(); });
    }
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;
    ~Engine() { stop(); }

    [[nodiscard]] std::size_t max_concurrent() const noexcept { return m_.sequences(); }
    [[nodiscard]] std::size_t max_queue() const noexcept { return o_.max_queue; }
    [[nodiscard]] std::size_t context() const noexcept { return o_.context; }
    [[nodiscard]] const tokenizer::AnyTokenizer& tokenizer() const noexcept { return tok_; }
    /// Requests generating and waiting now.
    [[nodiscard]] std::pair<std::size_t, std::size_t> load() const {
        std::lock_guard lock(mu_);
        return {in_system_ - waiting_.size(), waiting_.size()};
    }

    /// Requests ended because their client went away (Job::cancel), since the engine started.
    [[nodiscard]] std::uint64_t cancelled_total() const noexcept { return cancelled_total_.load(std::memory_order_relaxed); }

    /// The prompt text of a request: the chat template's rendering (fallback_chat_prompt() when
    /// the model has none), or the completion prompt.
    [[nodiscard]] std::string prompt_text(const GenerationRequest& r) const {
        if (!r.is_chat()) return r.prompt;
        if (const auto& t = tok_.chat()) {
            try {
                return t->render(r.messages, true);
            } catch (const error& e) {
                throw api_error(api_of(r.endpoint), ErrorKind::invalid_request, e.what(), "messages");
            }
        }
        return fallback_chat_prompt(r.messages, true);
    }

    /// Tokenizes and checks a request against the context (runs on the caller's thread).
    [[nodiscard]] PreparedRequest prepare(const GenerationRequest& r) {
        const Api api = api_of(r.endpoint);
        const char* param = r.endpoint == Endpoint::completions ? "prompt" : "messages";
        PreparedRequest p;
        if (r.prompt_is_ids) {
            p.prompt = r.prompt_ids;
        } else {
            if (tok_.empty()) throw api_error(api, ErrorKind::invalid_request, "the server has no tokenizer: send token ids", param);
            p.prompt = tok_.encode(prompt_text(r));
        }
        for (const TokenId t : p.prompt)
            if (t < 0 || static_cast<std::size_t>(t) >= m_.config().vocab_size)
                throw api_error(api, ErrorKind::invalid_request,
                                optiq::detail::concat("token id ", t, " is outside the vocabulary of ", m_.config().vocab_size),
                                param);
        if (p.prompt.empty()) throw api_error(api, ErrorKind::invalid_request, "the prompt is empty", param);
        if (p.prompt.size() >= o_.context)
            throw api_error(api, ErrorKind::invalid_request,
                            optiq::detail::concat("the prompt is ", p.prompt.size(), " tokens; the context holds ",
                                                  o_.context, " (prompt and completion)"),
                            param, "context_length_exceeded");
        if (r.max_tokens && *r.max_tokens > o_.context)
            throw api_error(api, ErrorKind::invalid_request,
                            optiq::detail::concat("max_tokens ", *r.max_tokens, " exceeds the context of ", o_.context),
                            "max_tokens");
        p.max_tokens = r.max_tokens ? *r.max_tokens
                       : o_.default_max_tokens ? o_.default_max_tokens
                                               : o_.context - p.prompt.size();
        p.sampling = r.sampling;
        p.sampling.repetition_penalty = 1.0f;
        if (!r.seed_given) p.sampling.seed = detail::mix_seed(o_.seed, seed_counter_.fetch_add(1));
        p.stop = r.stop;
        try {
            (void)model::Sampler(p.sampling);
        } catch (const error& e) {
            throw api_error(api, ErrorKind::invalid_request, e.what());
        }
        return p;
    }

    /// Queues a request; api_error 503 (overloaded) when max_concurrent + max_queue are taken.
    [[nodiscard]] std::shared_ptr<Job> submit(PreparedRequest p, Api api = Api::openai) {
        if (p.prompt.empty() || p.prompt.size() >= o_.context)
            throw api_error(api, ErrorKind::invalid_request,
                            optiq::detail::concat("the prompt is ", p.prompt.size(), " tokens; it must hold 1 to ",
                                                  o_.context - 1));
        auto job = std::make_shared<Job>(p.prompt.size());
        {
            std::lock_guard lock(mu_);
            if (stop_) throw api_error(api, ErrorKind::overloaded, "the server is shutting down");
            if (in_system_ >= m_.sequences() + o_.max_queue)
                throw api_error(api, ErrorKind::overloaded,
                                optiq::detail::concat("the server is at capacity (", m_.sequences(), " running, ",
                                                      o_.max_queue, " queued); retry later"));
            ++in_system_;
            waiting_.push_back({job, std::move(p)});
        }
        cv_.notify_one();
        return job;
    }
    /// prepare + submit.
    [[nodiscard]] std::shared_ptr<Job> submit(const GenerationRequest& r) {
        return submit(prepare(r), api_of(r.endpoint));
    }

    /// Ends the scheduler; unfinished jobs end with FinishReason::error. Idempotent.
    void stop() {
        {
            std::lock_guard lock(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

private:
    struct Waiting {
        std::shared_ptr<Job> job;
        PreparedRequest req;
    };
    struct Active {
        Active(std::shared_ptr<Job> j, PreparedRequest r, std::size_t s, const tokenizer::AnyTokenizer& tok)
            : job(std::move(j)), req(std::move(r)), slot(s), sampler(req.sampling), detok(tok, req.prompt.back()) {
            for (const auto& x : req.stop) longest_stop = std::max(longest_stop, x.size());
        }
        std::shared_ptr<Job> job;
        PreparedRequest req;
        std::size_t slot;
        model::Sampler sampler;
        detail::IncrementalDetokenizer detok;
        std::size_t fed = 0;  // prompt tokens in the cache
        std::vector<TokenId> generated;
        std::string text;
        std::size_t emitted = 0;  // bytes of text handed to the job
        std::size_t longest_stop = 0;
        bool finished = false;
    };

    void run() {
        for (;;) {
            {
                std::unique_lock lock(mu_);
                cv_.wait(lock, [&] { return stop_ || !waiting_.empty() || !active_.empty(); });
                if (stop_) break;
                while (!free_.empty() && !waiting_.empty()) {
                    Waiting w = std::move(waiting_.front());
                    waiting_.pop_front();
                    if (w.job->cancelled()) {
                        --in_system_;
                        cancelled_total_.fetch_add(1, std::memory_order_relaxed);
                        w.job->finish(cancelled(w.req.prompt.size(), 0), {});
                        continue;
                    }
                    const std::size_t slot = free_.back();
                    free_.pop_back();
                    active_.push_back(std::make_unique<Active>(std::move(w.job), std::move(w.req), slot, tok_));
                }
            }
            if (!active_.empty()) step();
        }
        // Shutdown: nobody waits forever on a job of a stopped engine.
        std::lock_guard lock(mu_);
        for (auto& a : active_) finish(*a, FinishReason::error, "the server is shutting down");
        active_.clear();
        for (auto& w : waiting_) {
            Completion c = cancelled(w.req.prompt.size(), 0);
            c.finish = FinishReason::error;
            c.error = "the server is shutting down";
            w.job->finish(std::move(c), {});
        }
        waiting_.clear();
        in_system_ = 0;
    }

    [[nodiscard]] static Completion cancelled(std::size_t prompt, std::size_t generated) {
        Completion c;
        c.finish = FinishReason::cancelled;
        c.prompt_tokens = prompt;
        c.completion_tokens = generated;
        c.error = "cancelled";
        return c;
    }

    void step() {
        for (auto& a : active_)
            if (a->job->cancelled() && !a->finished) {
                cancelled_total_.fetch_add(1, std::memory_order_relaxed);
                finish(*a, FinishReason::cancelled, "cancelled");
            }
        retire();
        if (active_.empty()) return;

        // Decodes first (one token each), then prompt pieces within the step's prefill budget.
        std::vector<model::BatchItem> items;
        std::vector<Active*> owners;
        std::vector<TokenId> decode_tokens(active_.size());
        std::size_t budget = o_.prefill_chunk;
        for (std::size_t i = 0; i < active_.size(); ++i) {
            Active& a = *active_[i];
            if (a.fed < a.req.prompt.size()) continue;
            decode_tokens[i] = a.generated.back();
            items.push_back({a.slot, std::span<const TokenId>(&decode_tokens[i], 1), m_.position(a.slot), false});
            owners.push_back(&a);
        }
        for (auto& ap : active_) {
            Active& a = *ap;
            if (a.fed >= a.req.prompt.size() || budget == 0) continue;
            const std::size_t n = std::min(budget, a.req.prompt.size() - a.fed);
            items.push_back({a.slot, std::span<const TokenId>(a.req.prompt).subspan(a.fed, n), a.fed, false});
            owners.push_back(&a);
            budget -= n;
        }

        std::vector<float> logits;
        try {
            logits = m_.forward_batch(items);
        } catch (const std::exception& e) {
            for (Active* a : owners) finish(*a, FinishReason::error, e.what());
            retire();
            return;
        }
        const std::size_t V = m_.config().vocab_size;
        for (std::size_t i = 0; i < items.size(); ++i) {
            Active& a = *owners[i];
            if (a.fed < a.req.prompt.size()) {
                a.fed += items[i].tokens.size();
                if (a.fed < a.req.prompt.size()) continue;  // more prompt to go: these logits are not needed
            }
            on_token(a, a.sampler.sample(std::span<const float>(logits).subspan(i * V, V)));
        }
        retire();
    }

    void on_token(Active& a, TokenId t) {
        a.generated.push_back(t);
        const auto& eos = m_.config().eos_token_ids;
        if (std::find(eos.begin(), eos.end(), t) != eos.end()) {
            finish(a, FinishReason::stop_token);
            return;
        }
        const std::size_t before = a.text.size();
        a.text += a.detok.push(t);
        if (!a.req.stop.empty() && a.text.size() > before) {
            // A new match ends in the new text, so it starts after before - (longest - 1).
            const std::size_t from = before > a.longest_stop ? before - a.longest_stop + 1 : 0;
            std::size_t cut = std::string::npos;
            const std::string* which = nullptr;
            for (const auto& s : a.req.stop)
                if (const std::size_t p = a.text.find(s, from); p < cut) cut = p, which = &s;
            if (which) {
                a.text.resize(cut);
                finish(a, FinishReason::stop_string, {}, *which);
                return;
            }
        }
        const std::size_t final_end = a.text.size() - model::detail::stop_prefix_tail(a.text, a.req.stop);
        if (final_end > a.emitted) {
            a.job->push(std::string_view(a.text).substr(a.emitted, final_end - a.emitted));
            a.emitted = final_end;
        }
        if (a.generated.size() >= a.req.max_tokens) finish(a, FinishReason::max_tokens);
        // The next step would put this token at position prompt + generated - 1.
        else if (a.req.prompt.size() + a.generated.size() - 1 >= o_.context) finish(a, FinishReason::context_full);
    }

    void finish(Active& a, FinishReason why, std::string_view message = {}, std::string_view stop = {}) {
        if (a.finished) return;
        a.finished = true;
        if (why != FinishReason::stop_string) a.text += a.detok.flush();
        Completion c;
        c.finish = why;
        c.stop_string = stop;
        c.prompt_tokens = a.req.prompt.size();
        c.completion_tokens = a.generated.size();
        c.error = message;
        c.text = a.text;
        const std::string tail = a.text.size() > a.emitted ? a.text.substr(a.emitted) : std::string();
        a.job->finish(std::move(c), tail);
    }

    /// Frees the slots of finished sequences.
    void retire() {
        std::size_t freed = 0;
        for (auto& a : active_)
            if (a->finished) {
                m_.reset(a->slot);
                ++freed;
            }
        if (freed == 0) return;
        std::lock_guard lock(mu_);
        for (auto& a : active_)
            if (a->finished) free_.push_back(a->slot);
        std::erase_if(active_, [](const auto& a) { return a->finished; });
        in_system_ -= freed;
    }

    model::Transformer& m_;
    const tokenizer::AnyTokenizer& tok_;
    EngineOptions o_;
    std::atomic<std::uint64_t> seed_counter_{0};
    std::atomic<std::uint64_t> cancelled_total_{0};

    mutable std::mutex mu_;  // guards waiting_, free_, in_system_, stop_
    std::condition_variable cv_;
    std::deque<Waiting> waiting_;
    std::vector<std::size_t> free_;
    std::size_t in_system_ = 0;
    bool stop_ = false;

    std::vector<std::unique_ptr<Active>> active_;  // the scheduler thread's alone
    std::thread thread_;
};

}  // namespace optiq::serve
