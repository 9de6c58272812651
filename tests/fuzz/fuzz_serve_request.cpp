// libFuzzer target: the OpenAI / Anthropic request parsers (serve::parse_request) on arbitrary
// bytes. The first byte picks the endpoint (byte % 3: chat, completions, messages), the rest is
// the body. A request either parses — then every response and stream builder must accept it — or
// raises serve::api_error with a 4xx status and a well-formed body of its API; nothing else may
// escape.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "optiq/serve/api.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    namespace serve = optiq::serve;
    const serve::Endpoint endpoints[] = {serve::Endpoint::chat_completions, serve::Endpoint::completions,
                                         serve::Endpoint::messages};
    const serve::Endpoint e = endpoints[data[0] % 3];
    const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
    serve::RequestLimits limits;
    limits.models = {"m"};
    limits.context = 512;
    limits.vocab_size = 512;
    try {
        const auto r = serve::parse_request(e, body, limits);
        if (r.model != "m" || !r.max_tokens.value_or(1) || r.max_tokens.value_or(1) > 512) std::abort();
        if (r.is_chat() == r.messages.empty() && e != serve::Endpoint::messages) std::abort();
        for (const auto id : r.prompt_ids)
            if (id < 0 || id >= 512) std::abort();
        for (const auto& s : r.stop)
            if (s.empty()) std::abort();
        serve::Completion c;
        c.text = r.prompt;
        const serve::ResponseMeta meta{serve::response_id(e, size), 0, r.model};
        (void)serve::dump(serve::response_json(e, meta, c));
        auto enc = serve::stream_encoder(e, meta, r.include_usage, 3);
        (void)(enc->start() + enc->delta(r.prompt) + enc->finish(c));
    } catch (const serve::api_error& err) {
        if (err.status() != 400 && err.status() != 404) std::abort();
        const auto b = err.body();
        if (e == serve::Endpoint::messages ? b["type"] != "error" : !b["error"]["message"].is_string()) std::abort();
        (void)serve::dump(b);
    }
    return 0;
}
