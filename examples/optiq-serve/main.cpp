// optiq-serve: an OpenAI- and Anthropic-compatible HTTP server over optiq's model runtime.
//   optiq-serve --model SmolLM2-135M-Instruct.Q4_1.gguf --port 8080
//   optiq-serve --model stories260K.bin --tokenizer tok512.bin --port 0 --max-concurrent 8 --api-key s3cret
//   optiq-serve --model DIR --kv-config DIR/kv_config.json          (per-layer quantized KV cache)
//   optiq-serve --model M.gguf --kv-bits 4 --kv-method tq_mse        (one quantizer for every layer)
// Endpoints: GET /health, GET /v1/models, POST /v1/chat/completions, /v1/completions (OpenAI),
// POST /v1/messages (Anthropic); "stream": true answers with server-sent events.
// Requests run in one engine (include/optiq/serve/engine.hpp): --max-concurrent sequences decode
// together in one batch, --max-queue more wait; beyond that a request gets 503 at once. A client
// that disconnects cancels its generation. With port 0 a free port is chosen; either way the
// server prints "listening on http://HOST:PORT" on stderr. SIGINT / SIGTERM stop it gracefully:
// running requests end with an error event, then the listener closes.
#include <optiq/kv/any_kv_cache.hpp>
#include <optiq/kv/kv_config.hpp>
#include <optiq/kv/layouts/paged.hpp>
#include <optiq/model/loader.hpp>
#include <optiq/serve/api.hpp>
#include <optiq/serve/engine.hpp>
#include <optiq/tokenizer/any_tokenizer.hpp>

#include <CLI/CLI.hpp>

#include "../common/engine_flags.hpp"
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <exception>
#include <filesystem>
#include <memory>
#include <pthread.h>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
namespace serve = optiq::serve;
using namespace std::chrono_literals;

namespace {

// Quantized caches use the paged layout: many sequences of unknown length share one page pool.
optiq::model::CacheFactory paged_cache_factory(std::function<optiq::kv::KVLayerConfig(int layer)> entry_of, bool int8) {
    return [entry_of = std::move(entry_of), int8](std::size_t layer, const optiq::kv::AttentionShape& s,
                                                  std::size_t sequences) {
        optiq::kv::KVCacheOptions<optiq::kv::PagedLayout> o;
        o.batch = sequences;
        o.int8_attention = int8;
        return optiq::kv::make_kv_cache<optiq::kv::PagedLayout>(entry_of(static_cast<int>(layer)), s, o);
    };
}

void send_error(httplib::Response& res, const serve::api_error& e) {
    res.status = e.status();
    res.set_content(serve::dump(e.body()), "application/json");
}

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A non-streamed response that is not ready within this time is sent chunked, preceded by JSON
// whitespace every second: a write to a closed connection fails, which cancels the generation.
constexpr auto kDirectWait = 2s;
constexpr auto kHeartbeat = 1s;

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"optiq-serve: OpenAI- and Anthropic-compatible server over optiq's model runtime"};
    std::string model_path, tokenizer_path, kv_config, kv_method = "affine", host = "127.0.0.1", api_key, model_name;
    int port = 8080, kv_bits = -1;
    std::size_t kv_group = 64, max_concurrent = 4, max_queue = 0, threads = 2, ctx = 0, default_max_tokens = 0;
    std::uint64_t seed = 0;
    bool kv_int8 = false;
    app.add_option("--model", model_path, "model directory, .gguf or llama2.c .bin")->required();
    app.add_option("--tokenizer", tokenizer_path, "tokenizer.json, llama2.c tokenizer.bin or a .gguf");
    auto* kvc = app.add_option("--kv-config", kv_config, "kv_config.json: per-layer KV cache quantization");
    app.add_option("--kv-bits", kv_bits, "KV cache bits for every layer (0: f16)")->check(CLI::Range(0, 8))->excludes(kvc);
    app.add_option("--kv-method", kv_method, "KV quantizer with --kv-bits (affine, tq_mse, tq_prod, rvq, polar, qjl, kivi)");
    app.add_option("--kv-group-size", kv_group, "group size of --kv-bits affine / kivi")->check(CLI::Range(1, 1 << 20));
    app.add_flag("--kv-int8", kv_int8, "4-bit tq_mse KV layers: int8 attention arithmetic (AVX-512 VNNI; approximate, opt-in)");
    app.add_option("--host", host, "address to listen on");
    app.add_option("--port", port, "port (0: any free port)")->check(CLI::Range(0, 65535));
    app.add_option("--max-concurrent", max_concurrent, "sequences decoded together")->check(CLI::Range(1, 1024));
    app.add_option("--max-queue", max_queue, "requests waiting for a slot before 503 (default 4 x max-concurrent)");
    app.add_option("--api-key", api_key, "require this key (Authorization: Bearer KEY or x-api-key: KEY)");
    app.add_option("--model-name", model_name, "the model id clients send and /v1/models lists (default: file name)");
    app.add_option("--threads", threads, "matmul threads")->check(CLI::Range(1, 256));
    optiq_drivers::EngineFlags engine_flags;
    engine_flags.add(app, false);
    app.add_option("--ctx", ctx, "tokens per sequence, prompt + completion (default: the model's context)");
    app.add_option("--default-max-tokens", default_max_tokens, "completion length when a request gives none (0: to the context)");
    app.add_option("--seed", seed, "seeds of requests without one derive from it");
    CLI11_PARSE(app, argc, argv);
    if (max_queue == 0) max_queue = 4 * max_concurrent;
    if (model_name.empty()) model_name = fs::path(model_path).filename().replace_extension().string();
    if (model_name.empty()) model_name = fs::path(model_path).parent_path().filename().string();

    // Signals go to one thread (sigwait below): every thread started from here inherits the mask.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    try {
        const auto t0 = std::chrono::steady_clock::now();
        optiq::model::LoadOptions lo;
        lo.transformer.threads = threads;
        engine_flags.apply(lo);
        lo.transformer.sequences = max_concurrent;
        if (!kv_config.empty()) {
            const auto cfg = optiq::kv::read_kv_config(kv_config);
            lo.caches = paged_cache_factory([cfg](int layer) {
                const auto* e = cfg.find(layer);
                optiq::kv::KVLayerConfig full;
                full.layer_idx = layer;
                return e ? *e : full;
            }, kv_int8);
        } else if (kv_bits >= 0) {
            lo.caches = paged_cache_factory([=](int layer) {
                optiq::kv::KVLayerConfig e;
                e.layer_idx = layer;
                e.bits = kv_bits;
                e.group_size = kv_group;
                e.method = kv_method;
                return e;
            }, kv_int8);
        }
        auto m = optiq::model::load(model_path, lo);
        const auto tok = optiq::tokenizer::load_tokenizer(model_path, tokenizer_path);
        if (tok.empty()) throw optiq::config_error("optiq-serve: no tokenizer found for the model (give --tokenizer)");
        serve::EngineOptions eo;
        eo.max_queue = max_queue;
        eo.context = ctx;
        eo.default_max_tokens = default_max_tokens;
        eo.seed = seed;
        serve::Engine engine(m, tok, eo);
        std::fprintf(stderr, "loaded %s as '%s' (%s, %zu layers, vocab %zu, context %zu, chat template: %s, KV: %s) in %.2f s\n",
                     model_path.c_str(), model_name.c_str(), std::string(optiq::model::arch_name(m.config().arch)).c_str(),
                     m.config().n_layers, m.config().vocab_size, engine.context(),
                     tok.chat() ? std::string(optiq::tokenizer::chat_format_name(tok.chat()->format())).c_str()
                                : "none (plain transcript)",
                     m.cache(0).name().c_str(),
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());

        serve::RequestLimits limits;
        limits.models = {model_name};
        limits.context = engine.context();
        limits.vocab_size = m.config().vocab_size;
        const std::int64_t started = unix_now();
        std::atomic<std::uint64_t> ids{static_cast<std::uint64_t>(started) << 24};

        httplib::Server svr;
        // Every streaming connection holds a worker for its whole life: room for all running and
        // queued requests plus a few for /health and refusals.
        const std::size_t workers = max_concurrent + max_queue + 4;
        svr.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
        svr.set_payload_max_length(std::size_t{16} << 20);
        svr.set_keep_alive_timeout(2);
        svr.set_pre_routing_handler([&](const httplib::Request& req, httplib::Response& res) {
            if (req.path.rfind("/v1/", 0) != 0) return httplib::Server::HandlerResponse::Unhandled;
            if (serve::authorized(req.get_header_value("Authorization"), req.get_header_value("x-api-key"), api_key))
                return httplib::Server::HandlerResponse::Unhandled;
            send_error(res, serve::unauthorized(req.path));
            return httplib::Server::HandlerResponse::Handled;
        });
        svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
            if (!res.body.empty()) return;
            const auto api = req.path == "/v1/messages" ? serve::Api::anthropic : serve::Api::openai;
            res.set_content(serve::dump(serve::error_body(api, res.status == 404 ? serve::ErrorKind::not_found
                                                                                 : serve::ErrorKind::invalid_request,
                                                          req.method + " " + req.path + ": HTTP " + std::to_string(res.status))),
                            "application/json");
        });
        svr.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
            std::string what = "internal error";
            try {
                std::rethrow_exception(ep);
            } catch (const std::exception& e) {
                what = e.what();
            } catch (...) {
            }
            const auto api = req.path == "/v1/messages" ? serve::Api::anthropic : serve::Api::openai;
            send_error(res, serve::api_error(api, serve::ErrorKind::internal, what));
        });

        svr.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
            const auto [running, waiting] = engine.load();
            res.set_content(serve::dump({{"status", "ok"},
                                         {"model", model_name},
                                         {"running", running},
                                         {"waiting", waiting},
                                         {"cancelled", engine.cancelled_total()},
                                         {"max_concurrent", engine.max_concurrent()},
                                         {"max_queue", engine.max_queue()},
                                         {"context", engine.context()}}),
                            "application/json");
        });
        svr.Get("/v1/models", [&](const httplib::Request&, httplib::Response& res) {
            res.set_content(serve::dump(serve::openai::models_response(limits.models, started)), "application/json");
        });

        auto generate = [&](serve::Endpoint endpoint) {
            return [&, endpoint](const httplib::Request& req, httplib::Response& res) {
                std::shared_ptr<serve::Job> job;
                serve::GenerationRequest r;
                try {
                    r = serve::parse_request(endpoint, req.body, limits);
                    job = engine.submit(r);
                } catch (const serve::api_error& e) {
                    send_error(res, e);
                    return;
                }
                const serve::ResponseMeta meta{serve::response_id(endpoint, ++ids), unix_now(), r.model};
                if (r.stream) {
                    std::shared_ptr<serve::StreamEncoder> enc =
                        serve::stream_encoder(endpoint, meta, r.include_usage, job->prompt_tokens());
                    res.set_header("Cache-Control", "no-cache");
                    res.set_chunked_content_provider(
                        "text/event-stream",
                        [job, enc, endpoint](std::size_t, httplib::DataSink& sink) {
                            auto write = [&](const std::string& s) { return s.empty() || sink.write(s.data(), s.size()); };
                            if (!write(enc->start())) return false;
                            auto last = std::chrono::steady_clock::now();
                            for (;;) {
                                auto u = job->next(250ms);
                                std::string out = enc->delta(u.text);
                                if (u.done) {
                                    const auto c = job->result();
                                    out += c.finish == serve::FinishReason::error || c.finish == serve::FinishReason::cancelled
                                               ? enc->error(serve::completion_error(endpoint, c))
                                               : enc->finish(c);
                                    if (!write(out)) return false;
                                    sink.done();
                                    return true;
                                }
                                const auto now = std::chrono::steady_clock::now();
                                if (out.empty() && now - last >= kHeartbeat) out = enc->keepalive();
                                if (!out.empty()) {
                                    if (!write(out)) return false;
                                    last = now;
                                }
                            }
                        },
                        [job](bool) { job->cancel(); });  // a no-op once the job is done
                    return;
                }
                const auto deadline = std::chrono::steady_clock::now() + kDirectWait;
                while (!job->next(250ms).done && std::chrono::steady_clock::now() < deadline) {
                }
                auto body = [job, endpoint, meta]() {
                    const auto c = job->result();
                    if (c.finish == serve::FinishReason::error || c.finish == serve::FinishReason::cancelled)
                        return std::pair{serve::completion_error(endpoint, c).status(),
                                         serve::dump(serve::completion_error(endpoint, c).body())};
                    return std::pair{200, serve::dump(serve::response_json(endpoint, meta, c))};
                };
                if (job->done()) {
                    auto [status, text] = body();
                    res.status = status;
                    res.set_content(text, "application/json");
                    return;
                }
                res.set_chunked_content_provider(
                    "application/json",
                    [job, body](std::size_t, httplib::DataSink& sink) {
                        auto last = std::chrono::steady_clock::now();
                        for (;;) {
                            if (job->next(kHeartbeat).done) {
                                const std::string text = body().second;
                                if (!sink.write(text.data(), text.size())) return false;
                                sink.done();
                                return true;
                            }
                            if (const auto now = std::chrono::steady_clock::now(); now - last >= kHeartbeat) {
                                if (!sink.write("\n", 1)) return false;
                                last = now;
                            }
                        }
                    },
                    [job](bool) { job->cancel(); });
            };
        };
        svr.Post("/v1/chat/completions", generate(serve::Endpoint::chat_completions));
        svr.Post("/v1/completions", generate(serve::Endpoint::completions));
        svr.Post("/v1/messages", generate(serve::Endpoint::messages));

        int bound = port;
        if (port == 0) bound = svr.bind_to_any_port(host);
        else if (!svr.bind_to_port(host, port)) bound = -1;
        if (bound <= 0) throw optiq::config_error("optiq-serve: cannot listen on " + host + ":" + std::to_string(port));
        std::fprintf(stderr, "listening on http://%s:%d\n", host.c_str(), bound);
        std::fflush(stderr);

        // Stop order: the engine first (its jobs end, so handlers waiting on them return), then the
        // listener, whose shutdown joins the worker threads.
        std::atomic<bool> listening_done{false};
        std::thread stopper([&] {
            int sig = 0;
            sigwait(&stop_signals, &sig);
            if (!listening_done) std::fprintf(stderr, "optiq-serve: signal %d, shutting down\n", sig);
            engine.stop();
            svr.stop();
        });
        (void)svr.listen_after_bind();
        listening_done = true;
        pthread_kill(stopper.native_handle(), SIGTERM);  // wakes the stopper if no signal came
        stopper.join();
        engine.stop();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}
