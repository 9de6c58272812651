// libFuzzer target: the byte-level BPE reader (ByteLevelBpe::from_hf_json_text) on arbitrary
// tokenizer.json text. A file either loads or throws optiq::error; a loaded tokenizer encodes a few
// texts (one of them taken from the input) into ids inside its vocabulary, and decodes them back,
// the stream decoder agreeing with the whole-sequence decode.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "optiq/tokenizer/bpe.hpp"

namespace tk = optiq::tokenizer;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        const auto t = tk::ByteLevelBpe::from_hf_json_text(text, "fuzz/tokenizer.json");
        const std::string samples[] = {"Hello world, 12345 caf\xC3\xA9!", " aa<|end|>\n\n  x", std::string(text.substr(0, 64))};
        for (const std::string& s : samples) {
            for (const bool special : {true, false}) {
                tk::EncodeOptions eo;
                eo.parse_special = special;
                std::vector<tk::TokenId> ids;
                try {
                    ids = t.encode(s, eo);
                } catch (const optiq::value_error&) {
                    continue;  // no token for a byte, or ill-formed UTF-8 (strict policy)
                }
                for (const tk::TokenId id : ids)
                    if (id < 0 || static_cast<std::size_t>(id) >= t.vocab_size()) std::abort();
                const std::string whole = t.decode(ids);
                tk::StreamingDecoder<tk::ByteLevelBpe> stream(t);
                std::string pieces;
                for (const tk::TokenId id : ids) pieces += stream.push(id);
                pieces += stream.flush();
                if (pieces != whole) std::abort();
            }
        }
        for (const auto& sp : t.special_tokens())
            if (sp.id < 0 || static_cast<std::size_t>(sp.id) >= t.vocab_size()) std::abort();
    } catch (const optiq::error&) {
    }
    return 0;
}
