#pragma once
// Builds small GGUF files byte by byte for tests and fuzz seeds (an independent writer, following
// ggml/docs/gguf.md, not optiq's reader).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace optiq::io::test {

class GgufBuilder {
public:
    std::uint32_t version = 3;
    std::uint32_t alignment = 32;  // used to place tensors; written only through kv_u32("general.alignment")
    char magic[4] = {'G', 'G', 'U', 'F'};

    struct Tensor {
        std::string name;
        std::vector<std::uint64_t> ne;
        std::uint32_t type;
        std::vector<std::byte> data;
        std::optional<std::uint64_t> offset;  // override the computed offset
    };
    std::vector<Tensor> tensors;
    std::optional<std::uint64_t> tensor_count_override;
    std::optional<std::uint64_t> kv_count_override;

    // ---- metadata ----
    void kv_u8(std::string_view k, std::uint8_t v) { key(k, 0), put(v); }
    void kv_i8(std::string_view k, std::int8_t v) { key(k, 1), put(v); }
    void kv_u16(std::string_view k, std::uint16_t v) { key(k, 2), put(v); }
    void kv_i16(std::string_view k, std::int16_t v) { key(k, 3), put(v); }
    void kv_u32(std::string_view k, std::uint32_t v) { key(k, 4), put(v); }
    void kv_i32(std::string_view k, std::int32_t v) { key(k, 5), put(v); }
    void kv_f32(std::string_view k, float v) { key(k, 6), put(v); }
    void kv_bool(std::string_view k, bool v) { key(k, 7), put(static_cast<std::uint8_t>(v)); }
    void kv_string(std::string_view k, std::string_view v) { key(k, 8), str(v); }
    void kv_u64(std::string_view k, std::uint64_t v) { key(k, 10), put(v); }
    void kv_i64(std::string_view k, std::int64_t v) { key(k, 11), put(v); }
    void kv_f64(std::string_view k, double v) { key(k, 12), put(v); }
    void kv_strings(std::string_view k, const std::vector<std::string>& v) {
        key(k, 9), put<std::uint32_t>(8), put<std::uint64_t>(v.size());
        for (const auto& s : v) str(s);
    }
    template <class T>
    void kv_array(std::string_view k, std::uint32_t elem_type, const std::vector<T>& v) {
        key(k, 9), put<std::uint32_t>(elem_type), put<std::uint64_t>(v.size());
        for (const auto& x : v) put(x);
    }
    /// A key with a raw, hand-made value encoding (type then bytes).
    void kv_raw(std::string_view k, std::uint32_t type, const std::vector<std::byte>& value) {
        key(k, type);
        kv_.insert(kv_.end(), value.begin(), value.end());
    }

    void tensor(std::string name, std::vector<std::uint64_t> ne, std::uint32_t type, std::vector<std::byte> data) {
        tensors.push_back({std::move(name), std::move(ne), type, std::move(data), std::nullopt});
    }

    [[nodiscard]] std::vector<std::byte> build() const {
        std::vector<std::byte> out;
        auto raw = [&](const void* p, std::size_t n) {
            const auto* b = static_cast<const std::byte*>(p);
            out.insert(out.end(), b, b + n);
        };
        auto u32 = [&](std::uint32_t v) { raw(&v, 4); };
        auto u64 = [&](std::uint64_t v) { raw(&v, 8); };
        raw(magic, 4);
        u32(version);
        u64(tensor_count_override.value_or(tensors.size()));
        u64(kv_count_override.value_or(n_kv_));
        out.insert(out.end(), kv_.begin(), kv_.end());
        std::uint64_t offset = 0;
        std::vector<std::uint64_t> offsets;
        for (const auto& t : tensors) {
            u64(t.name.size());
            raw(t.name.data(), t.name.size());
            u32(static_cast<std::uint32_t>(t.ne.size()));
            for (auto d : t.ne) u64(d);
            u32(t.type);
            const std::uint64_t off = t.offset.value_or(offset);
            u64(off);
            offsets.push_back(off);
            offset = (off + t.data.size() + alignment - 1) / alignment * alignment;
        }
        out.resize((out.size() + alignment - 1) / alignment * alignment);
        const std::size_t data_start = out.size();
        for (std::size_t i = 0; i < tensors.size(); ++i) {
            const auto& t = tensors[i];
            if (t.data.empty()) continue;
            if (out.size() < data_start + offsets[i] + t.data.size()) out.resize(data_start + offsets[i] + t.data.size());
            if (!t.data.empty()) std::memcpy(out.data() + data_start + offsets[i], t.data.data(), t.data.size());
        }
        return out;
    }

private:
    template <class T>
    void put(T v) {
        const auto* b = reinterpret_cast<const std::byte*>(&v);
        kv_.insert(kv_.end(), b, b + sizeof(T));
    }
    void str(std::string_view s) {
        put<std::uint64_t>(s.size());
        const auto* b = reinterpret_cast<const std::byte*>(s.data());
        kv_.insert(kv_.end(), b, b + s.size());
    }
    void key(std::string_view k, std::uint32_t type) {
        ++n_kv_;
        str(k);
        put(type);
    }

    std::vector<std::byte> kv_;
    std::uint64_t n_kv_ = 0;
};

}  // namespace optiq::io::test
