#pragma once
// GGUF reader (versions 2 and 3, little-endian): metadata key/values of every type (arrays of
// strings and nested arrays included), tensor infos, general.alignment, the data section, tensor
// views and dequantization to float (ggml_quants.hpp).
//
// Layout (ggml/docs/gguf.md): "GGUF" magic, uint32 version, uint64 tensor count, uint64 metadata
// count, the metadata (uint64-length string key, uint32 value type, value), the tensor infos
// (name, uint32 n_dims, n_dims uint64 ne — innermost dimension first —, uint32 ggml type, uint64
// offset into the data section), padding to general.alignment (default 32), the data section.
// Version 1 used 32-bit counts and lengths and is not read.
//
// Shapes: GgufTensor::ne keeps GGUF's order; GgufTensor::shape is the row-major order of HF / MLX
// (reversed), so a weight with ne = [in, out] has shape {out, in}. For general.architecture
// "llama", llama.cpp's converter permuted the rows of attn_q / attn_k: permute_qk_rows_gguf_to_hf
// restores HF order (reference-spec F).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/io/dtype.hpp"
#include "optiq/io/ggml_quants.hpp"
#include "optiq/io/mmap.hpp"

namespace optiq::io {

inline constexpr std::uint32_t kGgufDefaultAlignment = 32;

/// Metadata value types; the numbers are GGUF's and equal the index in GgufValue's variant.
enum class GgufValueType : std::uint32_t {
    u8 = 0,
    i8 = 1,
    u16 = 2,
    i16 = 3,
    u32 = 4,
    i32 = 5,
    f32 = 6,
    boolean = 7,
    string = 8,
    array = 9,
    u64 = 10,
    i64 = 11,
    f64 = 12,
};

[[nodiscard]] constexpr std::string_view gguf_type_name(GgufValueType t) noexcept {
    constexpr std::string_view names[] = {"uint8", "int8",  "uint16", "int16",  "uint32", "int32", "float32",
                                          "bool",  "string", "array", "uint64", "int64", "float64"};
    const auto i = static_cast<std::uint32_t>(t);
    return i < 13 ? names[i] : std::string_view("?");
}

struct GgufArray;

/// One metadata value; index() == static_cast<size_t>(GgufValueType).
using GgufValue = std::variant<std::uint8_t, std::int8_t, std::uint16_t, std::int16_t, std::uint32_t, std::int32_t,
                               float, bool, std::string, GgufArray, std::uint64_t, std::int64_t, double>;

/// An array value: element type and the elements (a vector of that C++ type; nested arrays as
/// std::vector<GgufArray>). items.index() == static_cast<size_t>(type).
struct GgufArray {
    GgufValueType type = GgufValueType::u8;
    std::variant<std::vector<std::uint8_t>, std::vector<std::int8_t>, std::vector<std::uint16_t>,
                 std::vector<std::int16_t>, std::vector<std::uint32_t>, std::vector<std::int32_t>,
                 std::vector<float>, std::vector<bool>, std::vector<std::string>, std::vector<GgufArray>,
                 std::vector<std::uint64_t>, std::vector<std::int64_t>, std::vector<double>>
        items;

    [[nodiscard]] std::size_t size() const noexcept {
        return std::visit([](const auto& v) { return v.size(); }, items);
    }
};

[[nodiscard]] inline GgufValueType value_type(const GgufValue& v) noexcept {
    return static_cast<GgufValueType>(v.index());
}

namespace detail {

template <class T, class... Ts>
inline constexpr bool one_of_v = (std::is_same_v<T, Ts> || ...);

template <class T>
inline constexpr bool gguf_scalar_v = one_of_v<T, std::uint8_t, std::int8_t, std::uint16_t, std::int16_t, std::uint32_t,
                                               std::int32_t, float, bool, std::string, std::uint64_t, std::int64_t, double>;

}  // namespace detail

/// The metadata of one GGUF file, in file order, with typed accessors that name the file and the key
/// in their errors (format_error).
class GgufMetadata {
public:
    GgufMetadata() = default;
    explicit GgufMetadata(std::string file_name) : file_(std::move(file_name)) {}

    [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
    [[nodiscard]] const std::vector<std::pair<std::string, GgufValue>>& entries() const noexcept { return entries_; }
    [[nodiscard]] bool contains(std::string_view key) const noexcept { return find(key) != nullptr; }

    [[nodiscard]] const GgufValue* find(std::string_view key) const noexcept {
        auto it = index_.find(key);
        return it == index_.end() ? nullptr : &entries_[it->second].second;
    }
    [[nodiscard]] const GgufValue& at(std::string_view key) const {
        if (const GgufValue* v = find(key)) return *v;
        detail::fail<format_error>(file_, ": metadata key '", key, "' is missing");
    }

    /// The value of `key`, which must be stored with exactly type T (uint32_t, std::string, float, ...).
    template <class T>
        requires detail::gguf_scalar_v<T>
    [[nodiscard]] const T& get(std::string_view key) const {
        const GgufValue& v = at(key);
        if (const T* p = std::get_if<T>(&v)) return *p;
        detail::fail<format_error>(file_, ": metadata key '", key, "' is ", gguf_type_name(value_type(v)),
                                   ", not the type requested");
    }
    template <class T>
        requires detail::gguf_scalar_v<T>
    [[nodiscard]] T get_or(std::string_view key, T fallback) const {
        return contains(key) ? get<T>(key) : fallback;
    }

    /// Any integer type, as int64 (writers differ on uint32 vs int32 for counts).
    [[nodiscard]] std::int64_t get_int(std::string_view key) const {
        const GgufValue& v = at(key);
        std::optional<std::int64_t> r;
        std::visit(
            [&](const auto& x) {
                using T = std::decay_t<decltype(x)>;
                if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
                    if constexpr (std::is_same_v<T, std::uint64_t>) {
                        if (x <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
                            r = static_cast<std::int64_t>(x);
                    } else {
                        r = static_cast<std::int64_t>(x);
                    }
                }
            },
            v);
        if (!r) detail::fail<format_error>(file_, ": metadata key '", key, "' is ", gguf_type_name(value_type(v)),
                                           ", not an integer in the int64 range");
        return *r;
    }
    [[nodiscard]] std::int64_t get_int_or(std::string_view key, std::int64_t fallback) const {
        return contains(key) ? get_int(key) : fallback;
    }
    /// float32, float64 or an integer type, as double.
    [[nodiscard]] double get_float(std::string_view key) const {
        const GgufValue& v = at(key);
        if (const float* f = std::get_if<float>(&v)) return *f;
        if (const double* d = std::get_if<double>(&v)) return *d;
        return static_cast<double>(get_int(key));
    }
    [[nodiscard]] double get_float_or(std::string_view key, double fallback) const {
        return contains(key) ? get_float(key) : fallback;
    }

    [[nodiscard]] const GgufArray& get_array(std::string_view key) const {
        const GgufValue& v = at(key);
        if (const GgufArray* a = std::get_if<GgufArray>(&v)) return *a;
        detail::fail<format_error>(file_, ": metadata key '", key, "' is ", gguf_type_name(value_type(v)),
                                   ", not an array");
    }
    /// The elements of array `key`, whose element type must be exactly T.
    template <class T>
    [[nodiscard]] const std::vector<T>& get_array(std::string_view key) const {
        const GgufArray& a = get_array(key);
        if (const auto* p = std::get_if<std::vector<T>>(&a.items)) return *p;
        detail::fail<format_error>(file_, ": metadata key '", key, "' is an array of ", gguf_type_name(a.type),
                                   ", not of the type requested");
    }

    /// Used by the parser: appends a key, rejecting duplicates.
    void add(std::string key, GgufValue value) {
        if (index_.count(key)) detail::fail<format_error>(file_, ": metadata key '", key, "' appears twice");
        index_.emplace(key, entries_.size());
        entries_.emplace_back(std::move(key), std::move(value));
    }

private:
    std::string file_;
    std::vector<std::pair<std::string, GgufValue>> entries_;
    std::map<std::string, std::size_t, std::less<>> index_;
};

/// One tensor of a GGUF file: a view into the file's data section.
struct GgufTensor {
    std::string name;
    GgmlType type = GgmlType::f32;
    std::vector<std::uint64_t> ne;    // GGUF order: innermost dimension first
    std::vector<std::size_t> shape;   // row-major, outermost first: ne reversed
    std::uint64_t offset = 0;         // relative to the data section
    std::span<const std::byte> bytes;
    std::string file;                 // for messages

    [[nodiscard]] std::size_t numel() const noexcept { return io::numel(shape); }
    /// Elements in one row (ne[0]); rows are whole blocks, so a row can be dequantized alone.
    [[nodiscard]] std::size_t row_length() const noexcept { return ne.empty() ? 1 : static_cast<std::size_t>(ne[0]); }
    [[nodiscard]] std::size_t rows() const noexcept { return numel() / std::max<std::size_t>(row_length(), 1); }
    [[nodiscard]] std::size_t row_bytes() const noexcept { return rows() ? bytes.size() / rows() : 0; }

    /// All elements as float (dequantized). format_error naming file and tensor when the type has
    /// no dequantizer.
    [[nodiscard]] std::vector<float> to_float() const {
        std::vector<float> out(numel());
        to_float(out);
        return out;
    }
    void to_float(std::span<float> out) const {
        const auto tr = ggml_type_traits(static_cast<std::uint32_t>(type));
        if (!tr || !tr->dequantizable)
            detail::fail<format_error>(file, ": tensor '", name, "': type ", ggml_type_name(type),
                                       " has no dequantizer in optiq");
        if (out.size() != numel())
            detail::fail<shape_error>(file, ": tensor '", name, "': to_float needs ", numel(), " floats, got ", out.size());
        dequantize(type, bytes, out);
    }

    /// A plain TensorView for the unquantized types (F32, F16, BF16, F64, I8..I64); nullopt otherwise.
    [[nodiscard]] std::optional<TensorView> view() const {
        std::optional<DType> dt;
        switch (type) {
            case GgmlType::f32: dt = DType::f32; break;
            case GgmlType::f16: dt = DType::f16; break;
            case GgmlType::bf16: dt = DType::bf16; break;
            case GgmlType::f64: dt = DType::f64; break;
            case GgmlType::i8: dt = DType::i8; break;
            case GgmlType::i16: dt = DType::i16; break;
            case GgmlType::i32: dt = DType::i32; break;
            case GgmlType::i64: dt = DType::i64; break;
            default: return std::nullopt;
        }
        return TensorView{name, *dt, shape, bytes};
    }
};

namespace detail {

/// Bounds-checked little-endian cursor over a GGUF file; errors name the file, the field and the offset.
class GgufCursor {
public:
    GgufCursor(std::span<const std::byte> bytes, const std::string& file) : bytes_(bytes), file_(file) {}

    [[nodiscard]] std::size_t pos() const noexcept { return pos_; }
    [[nodiscard]] std::size_t remaining() const noexcept { return bytes_.size() - pos_; }

    template <class... Field>
    void need(std::size_t n, const Field&... field) const {
        if (n > remaining())
            fail<format_error>(file_, ": truncated at ", field..., " (needs ", n, " bytes at offset ", pos_, ", file has ",
                               bytes_.size(), ")");
    }
    template <class T, class... Field>
    [[nodiscard]] T read(const Field&... field) {
        need(sizeof(T), field...);
        T v = load_le<T>(bytes_.data() + pos_);
        pos_ += sizeof(T);
        return v;
    }
    template <class... Field>
    [[nodiscard]] std::string read_string(const Field&... field) {
        const auto n = read<std::uint64_t>(field..., " (string length)");
        need(n > remaining() ? std::numeric_limits<std::size_t>::max() : static_cast<std::size_t>(n), field...);
        std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), static_cast<std::size_t>(n));
        pos_ += static_cast<std::size_t>(n);
        return s;
    }

private:
    std::span<const std::byte> bytes_;
    const std::string& file_;
    std::size_t pos_ = 0;
};

/// Smallest encoded size of one value of type t (bounds array allocations by the bytes left).
[[nodiscard]] inline std::size_t gguf_min_value_bytes(GgufValueType t) noexcept {
    switch (t) {
        case GgufValueType::u8:
        case GgufValueType::i8:
        case GgufValueType::boolean: return 1;
        case GgufValueType::u16:
        case GgufValueType::i16: return 2;
        case GgufValueType::u32:
        case GgufValueType::i32:
        case GgufValueType::f32: return 4;
        case GgufValueType::string:
        case GgufValueType::u64:
        case GgufValueType::i64:
        case GgufValueType::f64: return 8;
        case GgufValueType::array: return 12;
    }
    return 1;
}

inline constexpr int kGgufMaxArrayDepth = 8;

inline GgufArray read_gguf_array(GgufCursor& c, const std::string& file, const std::string& key, int depth);

template <class T>
[[nodiscard]] std::vector<T> read_gguf_scalars(GgufCursor& c, std::size_t n, const std::string& key) {
    c.need(n * sizeof(T), "metadata '", key, "' array data");
    std::vector<T> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = c.read<T>("metadata '", key, "' array data");
    return v;
}

inline GgufValue read_gguf_value(GgufCursor& c, const std::string& file, const std::string& key, std::uint32_t type,
                                 int depth) {
    switch (type) {
        case 0: return c.read<std::uint8_t>("metadata '", key, "' value");
        case 1: return c.read<std::int8_t>("metadata '", key, "' value");
        case 2: return c.read<std::uint16_t>("metadata '", key, "' value");
        case 3: return c.read<std::int16_t>("metadata '", key, "' value");
        case 4: return c.read<std::uint32_t>("metadata '", key, "' value");
        case 5: return c.read<std::int32_t>("metadata '", key, "' value");
        case 6: return c.read<float>("metadata '", key, "' value");
        case 7: {
            const auto b = c.read<std::uint8_t>("metadata '", key, "' value");
            if (b > 1) fail<format_error>(file, ": metadata key '", key, "': bool value ", int(b), " is not 0 or 1");
            return b != 0;
        }
        case 8: return c.read_string("metadata '", key, "' value");
        case 9: return read_gguf_array(c, file, key, depth + 1);
        case 10: return c.read<std::uint64_t>("metadata '", key, "' value");
        case 11: return c.read<std::int64_t>("metadata '", key, "' value");
        case 12: return c.read<double>("metadata '", key, "' value");
        default: fail<format_error>(file, ": metadata key '", key, "': unknown value type ", type);
    }
}

inline GgufArray read_gguf_array(GgufCursor& c, const std::string& file, const std::string& key, int depth) {
    if (depth > kGgufMaxArrayDepth)
        fail<format_error>(file, ": metadata key '", key, "': arrays nested deeper than ", kGgufMaxArrayDepth);
    const auto type = c.read<std::uint32_t>("metadata '", key, "' array type");
    if (type > 12) fail<format_error>(file, ": metadata key '", key, "': unknown array element type ", type);
    const auto n64 = c.read<std::uint64_t>("metadata '", key, "' array length");
    GgufArray a;
    a.type = static_cast<GgufValueType>(type);
    if (n64 > c.remaining() / gguf_min_value_bytes(a.type))
        fail<format_error>(file, ": metadata key '", key, "': array length ", n64, " runs past the end of the file");
    const auto n = static_cast<std::size_t>(n64);
    switch (a.type) {
        case GgufValueType::u8: a.items = read_gguf_scalars<std::uint8_t>(c, n, key); break;
        case GgufValueType::i8: a.items = read_gguf_scalars<std::int8_t>(c, n, key); break;
        case GgufValueType::u16: a.items = read_gguf_scalars<std::uint16_t>(c, n, key); break;
        case GgufValueType::i16: a.items = read_gguf_scalars<std::int16_t>(c, n, key); break;
        case GgufValueType::u32: a.items = read_gguf_scalars<std::uint32_t>(c, n, key); break;
        case GgufValueType::i32: a.items = read_gguf_scalars<std::int32_t>(c, n, key); break;
        case GgufValueType::f32: a.items = read_gguf_scalars<float>(c, n, key); break;
        case GgufValueType::u64: a.items = read_gguf_scalars<std::uint64_t>(c, n, key); break;
        case GgufValueType::i64: a.items = read_gguf_scalars<std::int64_t>(c, n, key); break;
        case GgufValueType::f64: a.items = read_gguf_scalars<double>(c, n, key); break;
        case GgufValueType::boolean: {
            std::vector<bool> v(n);
            for (std::size_t i = 0; i < n; ++i) v[i] = std::get<bool>(read_gguf_value(c, file, key, 7, depth));
            a.items = std::move(v);
            break;
        }
        case GgufValueType::string: {
            std::vector<std::string> v;
            v.reserve(n);
            for (std::size_t i = 0; i < n; ++i) v.push_back(c.read_string("metadata '", key, "' element ", i));
            a.items = std::move(v);
            break;
        }
        case GgufValueType::array: {
            std::vector<GgufArray> v;
            v.reserve(n);
            for (std::size_t i = 0; i < n; ++i) v.push_back(read_gguf_array(c, file, key, depth + 1));
            a.items = std::move(v);
            break;
        }
    }
    return a;
}

}  // namespace detail

/// A parsed GGUF file; owns (a shared reference to) its bytes.
class GgufFile {
public:
    GgufFile() = default;

    [[nodiscard]] static GgufFile open(const std::filesystem::path& path,
                                       MappedFile::Mode mode = MappedFile::Mode::automatic) {
        return GgufFile(MappedFile::open_shared(path, mode));
    }
    [[nodiscard]] static GgufFile from_bytes(std::vector<std::byte> bytes, std::string name) {
        return GgufFile(std::make_shared<const MappedFile>(MappedFile::from_bytes(std::move(bytes), std::move(name))));
    }
    /// Parses and validates; throws format_error naming the file and the field or tensor.
    explicit GgufFile(std::shared_ptr<const MappedFile> file) : file_(std::move(file)), metadata_(file_->path()) {
        parse();
    }

    [[nodiscard]] const std::string& path() const noexcept { return file_->path(); }
    /// The mapped file every tensor's bytes point into: a copy keeps those views valid after the
    /// GgufFile is gone (model weights used in place).
    [[nodiscard]] const std::shared_ptr<const MappedFile>& file() const noexcept { return file_; }
    [[nodiscard]] std::uint32_t version() const noexcept { return version_; }
    [[nodiscard]] const GgufMetadata& metadata() const noexcept { return metadata_; }
    /// Tensors in file order.
    [[nodiscard]] std::span<const GgufTensor> tensors() const noexcept { return tensors_; }
    [[nodiscard]] std::size_t size() const noexcept { return tensors_.size(); }
    [[nodiscard]] std::uint64_t alignment() const noexcept { return alignment_; }
    /// Absolute file offset of the data section.
    [[nodiscard]] std::uint64_t data_offset() const noexcept { return data_offset_; }
    /// general.architecture ("llama", "qwen2", ...); empty when absent.
    [[nodiscard]] std::string architecture() const { return metadata_.get_or<std::string>("general.architecture", ""); }

    [[nodiscard]] const GgufTensor* find(std::string_view name) const noexcept {
        auto it = by_name_.find(name);
        return it == by_name_.end() ? nullptr : &tensors_[it->second];
    }
    [[nodiscard]] bool contains(std::string_view name) const noexcept { return find(name) != nullptr; }
    [[nodiscard]] const GgufTensor& at(std::string_view name) const {
        if (const GgufTensor* t = find(name)) return *t;
        detail::fail<format_error>(path(), ": no tensor named '", name, "'");
    }

private:
    void parse() {
        const std::string& file = file_->path();
        const auto bytes = file_->bytes();
        detail::GgufCursor c(bytes, file);
        c.need(4, "magic");
        if (std::memcmp(bytes.data(), "GGUF", 4) != 0) detail::fail<format_error>(file, ": bad magic (not a GGUF file)");
        (void)c.read<std::uint32_t>("magic");
        version_ = c.read<std::uint32_t>("version");
        if (version_ == 1) detail::fail<format_error>(file, ": GGUF version 1 is not supported (versions 2 and 3 are)");
        if ((version_ & 0xFFFFu) == 0 && version_ != 0)
            detail::fail<format_error>(file, ": version field ", version_, " looks byte-swapped (big-endian GGUF is not supported)");
        if (version_ != 2 && version_ != 3)
            detail::fail<format_error>(file, ": GGUF version ", version_, " is not supported (versions 2 and 3 are)");
        const auto n_tensors = c.read<std::uint64_t>("tensor count");
        const auto n_kv = c.read<std::uint64_t>("metadata count");
        // Each metadata entry takes at least 12 bytes, each tensor info at least 24.
        if (n_kv > c.remaining() / 12)
            detail::fail<format_error>(file, ": metadata count ", n_kv, " runs past the end of the file");
        if (n_tensors > c.remaining() / 24)
            detail::fail<format_error>(file, ": tensor count ", n_tensors, " runs past the end of the file");

        for (std::uint64_t i = 0; i < n_kv; ++i) {
            std::string key = c.read_string("metadata key #", i);
            const auto type = c.read<std::uint32_t>("metadata '", key, "' type");
            GgufValue v = detail::read_gguf_value(c, file, key, type, 0);
            metadata_.add(std::move(key), std::move(v));
        }
        if (const GgufValue* a = metadata_.find("general.alignment")) {
            const auto* u = std::get_if<std::uint32_t>(a);
            if (!u) detail::fail<format_error>(file, ": metadata key 'general.alignment' is ", gguf_type_name(value_type(*a)),
                                               ", not uint32");
            if (*u == 0 || (*u & (*u - 1)) != 0)
                detail::fail<format_error>(file, ": metadata key 'general.alignment' = ", *u, " is not a power of two");
            alignment_ = *u;
        }

        tensors_.reserve(static_cast<std::size_t>(n_tensors));
        std::vector<std::uint64_t> sizes;  // data bytes of each tensor
        sizes.reserve(static_cast<std::size_t>(n_tensors));
        for (std::uint64_t i = 0; i < n_tensors; ++i) {
            GgufTensor t;
            t.file = file;
            t.name = c.read_string("tensor info #", i, " name");
            const auto n_dims = c.read<std::uint32_t>("tensor '", t.name, "' n_dims");
            if (n_dims > 4)
                detail::fail<format_error>(file, ": tensor '", t.name, "': n_dims ", n_dims, " exceeds ggml's maximum of 4");
            std::uint64_t count = 1;
            for (std::uint32_t d = 0; d < n_dims; ++d) {
                const auto ne = c.read<std::uint64_t>("tensor '", t.name, "' dims");
                // ggml keeps ne and the element count in int64_t; shape and numel() need them in size_t.
                if (ne > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
                    detail::mul_overflows(count, ne, count) ||
                    count > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
                    count > std::numeric_limits<std::size_t>::max())
                    detail::fail<format_error>(file, ": tensor '", t.name, "': dims overflow the element count");
                t.ne.push_back(ne);
            }
            for (auto it = t.ne.rbegin(); it != t.ne.rend(); ++it) t.shape.push_back(static_cast<std::size_t>(*it));
            const auto type = c.read<std::uint32_t>("tensor '", t.name, "' type");
            const auto tr = ggml_type_traits(type);
            if (!tr) detail::fail<format_error>(file, ": tensor '", t.name, "': unknown ggml type ", type);
            t.type = static_cast<GgmlType>(type);
            if (t.row_length() % tr->block_size != 0)
                detail::fail<format_error>(file, ": tensor '", t.name, "': row length ", t.row_length(),
                                           " is not a multiple of the ", tr->name, " block size ", tr->block_size);
            t.offset = c.read<std::uint64_t>("tensor '", t.name, "' offset");
            if (t.offset % alignment_ != 0)
                detail::fail<format_error>(file, ": tensor '", t.name, "': offset ", t.offset,
                                           " is not a multiple of the alignment ", alignment_);
            if (by_name_.count(t.name)) detail::fail<format_error>(file, ": tensor '", t.name, "' appears twice");
            by_name_.emplace(t.name, tensors_.size());
            // The byte size can overflow although the element count does not (F32 with 2^62 elements is
            // 2^64 bytes): a wrapped size would give the tensor an empty span and numel() elements.
            std::uint64_t n_bytes = 0;
            if (detail::mul_overflows(count / tr->block_size, tr->type_size, n_bytes) ||
                n_bytes > std::numeric_limits<std::size_t>::max())
                detail::fail<format_error>(file, ": tensor '", t.name, "': ", count, " elements of ", tr->name,
                                           " need more than 2^64 bytes");
            sizes.push_back(n_bytes);
            tensors_.push_back(std::move(t));
        }
        data_offset_ = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
        if (data_offset_ > bytes.size() && !tensors_.empty())
            detail::fail<format_error>(file, ": data section at offset ", data_offset_, " starts past the end of the file (",
                                       bytes.size(), " bytes)");
        const std::uint64_t data_len = data_offset_ <= bytes.size() ? bytes.size() - data_offset_ : 0;

        std::vector<std::size_t> order(tensors_.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        // Empty tensors first among equal offsets: ggml's writer gives an empty tensor the offset of the next one.
        std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
            return tensors_[a].offset != tensors_[b].offset ? tensors_[a].offset < tensors_[b].offset : sizes[a] < sizes[b];
        });
        std::uint64_t end_prev = 0;
        const GgufTensor* prev = nullptr;
        for (std::size_t i : order) {
            GgufTensor& t = tensors_[i];
            const std::uint64_t n = sizes[i];
            if (t.offset > data_len || n > data_len - t.offset)
                detail::fail<format_error>(file, ": tensor '", t.name, "': data of ", n, " bytes at offset ", t.offset,
                                           " runs past the end of the data section (", data_len, " bytes)");
            if (prev && t.offset < end_prev)
                detail::fail<format_error>(file, ": tensor '", t.name, "': data at offset ", t.offset, " overlaps tensor '",
                                           prev->name, "' (which ends at ", end_prev, ")");
            t.bytes = {bytes.data() + data_offset_ + t.offset, static_cast<std::size_t>(n)};
            if (t.offset + n >= end_prev) {
                end_prev = t.offset + n;
                prev = &t;
            }
        }
    }

    std::shared_ptr<const MappedFile> file_;
    GgufMetadata metadata_;
    std::vector<GgufTensor> tensors_;
    std::map<std::string, std::size_t, std::less<>> by_name_;
    std::uint32_t version_ = 0;
    std::uint64_t alignment_ = kGgufDefaultAlignment;
    std::uint64_t data_offset_ = 0;
};

/// The Hugging Face name of a llama.cpp tensor name for the Llama / Qwen2 / Qwen3 / Mistral family
/// ("blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight", "output" -> "lm_head", ...),
/// or nullopt for a name outside that table. Suffixes (".weight", ".bias") are kept.
[[nodiscard]] inline std::optional<std::string> gguf_to_hf_name(std::string_view name) {
    const auto dot = name.rfind('.');
    if (dot == std::string_view::npos) return std::nullopt;
    const std::string_view stem = name.substr(0, dot), suffix = name.substr(dot);
    static constexpr std::pair<std::string_view, std::string_view> top[] = {
        {"token_embd", "model.embed_tokens"}, {"output_norm", "model.norm"}, {"output", "lm_head"}};
    for (const auto& [g, h] : top)
        if (stem == g) return std::string(h) + std::string(suffix);
    if (stem.substr(0, 4) != "blk.") return std::nullopt;
    const auto dot2 = stem.find('.', 4);
    if (dot2 == std::string_view::npos || dot2 == 4) return std::nullopt;
    const std::string_view layer = stem.substr(4, dot2 - 4), part = stem.substr(dot2 + 1);
    for (char c : layer)
        if (c < '0' || c > '9') return std::nullopt;
    static constexpr std::pair<std::string_view, std::string_view> parts[] = {
        {"attn_norm", "input_layernorm"},      {"attn_q", "self_attn.q_proj"},
        {"attn_k", "self_attn.k_proj"},        {"attn_v", "self_attn.v_proj"},
        {"attn_output", "self_attn.o_proj"},   {"attn_q_norm", "self_attn.q_norm"},
        {"attn_k_norm", "self_attn.k_norm"},   {"ffn_norm", "post_attention_layernorm"},
        {"ffn_gate", "mlp.gate_proj"},         {"ffn_up", "mlp.up_proj"},
        {"ffn_down", "mlp.down_proj"}};
    for (const auto& [g, h] : parts)
        if (part == g) return "model.layers." + std::string(layer) + "." + std::string(h) + std::string(suffix);
    return std::nullopt;
}

/// llama.cpp's converter stores attn_q / attn_k of "llama" models with each head's rows permuted
/// for interleaved rotary: gguf = hf.reshape(n_heads, 2, hd/2, in).swapaxes(1, 2). This restores HF
/// order, hf = gguf.reshape(n_heads, hd/2, 2, in).swapaxes(1, 2), for rows of `row_bytes` bytes of
/// any type (rows of quantized blocks included). n_heads: query heads for q, KV heads for k.
inline void permute_qk_rows_gguf_to_hf(std::span<const std::byte> gguf, std::span<std::byte> hf, std::size_t n_heads,
                                       std::size_t row_bytes) {
    if (n_heads == 0 || row_bytes == 0 || gguf.size() != hf.size() || gguf.size() % row_bytes != 0)
        detail::fail<shape_error>("permute_qk_rows: sizes ", gguf.size(), " / ", hf.size(), " do not form rows of ", row_bytes,
                                  " bytes");
    const std::size_t rows = gguf.size() / row_bytes;
    if (rows % n_heads != 0 || (rows / n_heads) % 2 != 0)
        detail::fail<shape_error>("permute_qk_rows: ", rows, " rows do not split into ", n_heads, " heads of even size");
    const std::size_t hd = rows / n_heads, half = hd / 2;
    for (std::size_t h = 0; h < n_heads; ++h)
        for (std::size_t i = 0; i < 2; ++i)
            for (std::size_t j = 0; j < half; ++j) {
                const std::size_t dst = h * hd + i * half + j, src = h * hd + j * 2 + i;
                std::memcpy(hf.data() + dst * row_bytes, gguf.data() + src * row_bytes, row_bytes);
            }
}

/// The inverse: HF order to llama.cpp's (for writing GGUF-ordered weights).
inline void permute_qk_rows_hf_to_gguf(std::span<const std::byte> hf, std::span<std::byte> gguf, std::size_t n_heads,
                                       std::size_t row_bytes) {
    if (n_heads == 0 || row_bytes == 0 || gguf.size() != hf.size() || hf.size() % row_bytes != 0)
        detail::fail<shape_error>("permute_qk_rows: sizes ", hf.size(), " / ", gguf.size(), " do not form rows of ", row_bytes,
                                  " bytes");
    const std::size_t rows = hf.size() / row_bytes;
    if (rows % n_heads != 0 || (rows / n_heads) % 2 != 0)
        detail::fail<shape_error>("permute_qk_rows: ", rows, " rows do not split into ", n_heads, " heads of even size");
    const std::size_t hd = rows / n_heads, half = hd / 2;
    for (std::size_t h = 0; h < n_heads; ++h)
        for (std::size_t i = 0; i < 2; ++i)
            for (std::size_t j = 0; j < half; ++j) {
                const std::size_t src = h * hd + i * half + j, dst = h * hd + j * 2 + i;
                std::memcpy(gguf.data() + dst * row_bytes, hf.data() + src * row_bytes, row_bytes);
            }
}

/// Float convenience: a dequantized [rows, cols] matrix in GGUF order to HF order.
[[nodiscard]] inline std::vector<float> permute_qk_rows_gguf_to_hf(std::span<const float> gguf, std::size_t n_heads,
                                                                   std::size_t cols) {
    std::vector<float> hf(gguf.size());
    permute_qk_rows_gguf_to_hf(std::as_bytes(gguf), std::as_writable_bytes(std::span<float>(hf)), n_heads,
                               cols * sizeof(float));
    return hf;
}

}  // namespace optiq::io
