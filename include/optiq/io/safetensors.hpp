#pragma once
// safetensors: reader (mmap, validated as the reference implementation does), multi-shard models
// (model.safetensors.index.json), and a writer (atomic rename, sorted keys, 8-byte aligned header,
// optional sharding at a size limit).
//
// Format (huggingface/safetensors, safetensors/src/tensor.rs): an 8-byte little-endian header
// length N, N bytes of a UTF-8 JSON object, then the data area. The object maps each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data area) plus an
// optional "__metadata__" string-to-string map. The reference rejects N > 100 MB, a header that
// does not start with '{', offsets that are not contiguous from 0 in sorted order (a gap or an
// overlap), end - begin != numel * dtype size, and a data area not fully covered by the tensors.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "optiq/core/error.hpp"
#include "optiq/io/dtype.hpp"
#include "optiq/io/mmap.hpp"

namespace optiq::io {

/// The reference implementation's limit on the JSON header (MAX_HEADER_SIZE).
inline constexpr std::uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;
/// mlx-lm's save_model shard limit (max_file_size_gb = 5), for write_sharded.
inline constexpr std::uint64_t kMlxShardBytes = 5ull << 30;

namespace detail {

/// Reads an unsigned integer out of a JSON value; nullopt when it is not a non-negative integer.
[[nodiscard]] inline std::optional<std::uint64_t> json_uint(const nlohmann::json& j) {
    if (j.is_number_unsigned()) return j.get<std::uint64_t>();
    if (j.is_number_integer()) {
        const auto v = j.get<std::int64_t>();
        if (v >= 0) return static_cast<std::uint64_t>(v);
    }
    return std::nullopt;
}

}  // namespace detail

/// A parsed safetensors file: tensor views into bytes it does not own.
class SafetensorsView {
public:
    SafetensorsView() = default;

    /// Validates `file` (the whole file's bytes) and indexes its tensors. `file_name` appears in
    /// every error message. Throws format_error.
    [[nodiscard]] static SafetensorsView parse(std::span<const std::byte> file, std::string file_name) {
        SafetensorsView v;
        v.file_name_ = std::move(file_name);
        v.parse_impl(file);
        return v;
    }

    [[nodiscard]] const std::string& file_name() const noexcept { return file_name_; }
    /// The "__metadata__" map (empty when absent).
    [[nodiscard]] const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
    /// All tensors, sorted by name.
    [[nodiscard]] std::span<const TensorView> tensors() const noexcept { return tensors_; }
    [[nodiscard]] std::size_t size() const noexcept { return tensors_.size(); }
    /// Byte length of the JSON header (N), and where the data area starts (8 + N).
    [[nodiscard]] std::uint64_t header_bytes() const noexcept { return header_bytes_; }
    [[nodiscard]] std::uint64_t data_offset() const noexcept { return 8 + header_bytes_; }

    [[nodiscard]] const TensorView* find(std::string_view name) const noexcept {
        auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                                   [](const TensorView& t, std::string_view n) { return t.name < n; });
        return it != tensors_.end() && it->name == name ? &*it : nullptr;
    }
    [[nodiscard]] bool contains(std::string_view name) const noexcept { return find(name) != nullptr; }
    /// The tensor called `name`; format_error naming the file and the tensor when absent.
    [[nodiscard]] const TensorView& at(std::string_view name) const {
        if (const TensorView* t = find(name)) return *t;
        optiq::detail::fail<format_error>(file_name_, ": no tensor named '", name, "'");
    }

private:
    template <class... Args>
    [[noreturn]] void fail(Args&&... args) const {
        optiq::detail::fail<format_error>(file_name_, ": ", std::forward<Args>(args)...);
    }

    void parse_impl(std::span<const std::byte> file) {
        if (file.size() < 8) fail("file of ", file.size(), " bytes is too small for the 8-byte header length");
        const auto n = detail::load_le<std::uint64_t>(file.data());
        if (n > kSafetensorsMaxHeaderBytes)
            fail("header length ", n, " exceeds the limit of ", kSafetensorsMaxHeaderBytes, " bytes");
        if (n > file.size() - 8)
            fail("header length ", n, " runs past the end of the file (", file.size(), " bytes)");
        header_bytes_ = n;
        const auto* hdr = reinterpret_cast<const char*>(file.data() + 8);
        if (n == 0 || hdr[0] != '{') fail("header does not start with '{'");

        // Duplicate top-level keys would silently shadow a tensor: reject them while parsing.
        std::set<std::string> seen;
        std::string duplicate;
        auto on_event = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
            if (ev == nlohmann::json::parse_event_t::key && depth == 1 && duplicate.empty()) {
                const auto& key = parsed.get_ref<const std::string&>();
                if (!seen.insert(key).second) duplicate = key;
            }
            return true;
        };
        nlohmann::json header;
        try {
            header = nlohmann::json::parse(hdr, hdr + n, on_event);
        } catch (const nlohmann::json::parse_error& e) {
            fail("header is not valid JSON (error at byte ", e.byte, " of ", n, ")");
        } catch (const nlohmann::json::exception& e) {
            fail("header is not valid JSON (", e.what(), ")");
        }
        if (!header.is_object()) fail("header is not a JSON object");
        if (!duplicate.empty()) fail("header: key '", duplicate, "' appears twice");

        const std::uint64_t data_len = file.size() - 8 - n;
        const std::byte* data = file.data() + 8 + n;

        struct Entry {
            std::uint64_t begin, end;
            std::size_t index;
        };
        std::vector<Entry> entries;
        tensors_.reserve(header.size());
        for (auto& [key, value] : header.items()) {
            if (key == "__metadata__") {
                // mx.save_safetensors without metadata writes null; the Rust reference's
                // Option<HashMap> accepts it as "no metadata".
                if (value.is_null()) continue;
                if (!value.is_object()) fail("field '__metadata__' is not an object");
                for (auto& [mk, mv] : value.items()) {
                    if (!mv.is_string()) fail("field '__metadata__': value of '", mk, "' is not a string");
                    metadata_.emplace(mk, mv.get<std::string>());
                }
                continue;
            }
            if (!value.is_object()) fail("tensor '", key, "': entry is not an object");
            TensorView t;
            t.name = key;
            const auto dt = value.find("dtype");
            if (dt == value.end() || !dt->is_string()) fail("tensor '", key, "': missing or non-string field 'dtype'");
            const auto dtype = dtype_from_name(dt->get_ref<const std::string&>());
            if (!dtype) fail("tensor '", key, "': unknown dtype '", dt->get_ref<const std::string&>(), "'");
            t.dtype = *dtype;
            const auto sh = value.find("shape");
            if (sh == value.end() || !sh->is_array()) fail("tensor '", key, "': missing or non-array field 'shape'");
            std::uint64_t count = 1;
            for (const auto& d : *sh) {
                const auto dim = detail::json_uint(d);
                if (!dim) fail("tensor '", key, "': field 'shape' holds a value that is not a non-negative integer");
                if (*dim > std::numeric_limits<std::size_t>::max() || detail::mul_overflows(count, *dim, count))
                    fail("tensor '", key, "': field 'shape' has an element count that overflows");
                t.shape.push_back(static_cast<std::size_t>(*dim));
            }
            const auto off = value.find("data_offsets");
            if (off == value.end() || !off->is_array() || off->size() != 2)
                fail("tensor '", key, "': field 'data_offsets' is not an array of two offsets");
            const auto b = detail::json_uint((*off)[0]);
            const auto e = detail::json_uint((*off)[1]);
            if (!b || !e) fail("tensor '", key, "': field 'data_offsets' holds a value that is not a non-negative integer");
            if (*e < *b) fail("tensor '", key, "': field 'data_offsets' [", *b, ", ", *e, "] ends before it begins");
            if (*e > data_len)
                fail("tensor '", key, "': field 'data_offsets' [", *b, ", ", *e, "] runs past the data area (",
                     data_len, " bytes)");
            std::uint64_t nbytes = 0;
            if (detail::mul_overflows(count, dtype_size(t.dtype), nbytes) || nbytes != *e - *b)
                fail("tensor '", key, "': dtype ", dtype_name(t.dtype), " and shape ", shape_string(t.shape),
                     " need ", count, " x ", dtype_size(t.dtype), " bytes but data_offsets [", *b, ", ", *e,
                     "] span ", *e - *b);
            t.bytes = {data + *b, static_cast<std::size_t>(*e - *b)};
            entries.push_back({*b, *e, tensors_.size()});
            tensors_.push_back(std::move(t));
        }

        // Contiguity: in offset order each tensor starts where the previous one ended.
        std::sort(entries.begin(), entries.end(), [](const Entry& x, const Entry& y) {
            return x.begin != y.begin ? x.begin < y.begin : x.end < y.end;
        });
        std::uint64_t expected = 0;
        const TensorView* prev = nullptr;
        for (const Entry& en : entries) {
            const TensorView& t = tensors_[en.index];
            if (en.begin < expected)
                fail("tensor '", t.name, "': field 'data_offsets' [", en.begin, ", ", en.end, "] overlaps tensor '",
                     prev->name, "' (which ends at ", expected, ")");
            if (en.begin > expected)
                fail("tensor '", t.name, "': field 'data_offsets' [", en.begin, ", ", en.end, "] leaves a gap of ",
                     en.begin - expected, " bytes after ",
                     prev ? "tensor '" + prev->name + "'" : std::string("the start of the data area"));
            expected = en.end;
            prev = &t;
        }
        if (expected != data_len)
            fail("data area of ", data_len, " bytes is not fully covered by the tensors (they end at ", expected, ")");

        std::sort(tensors_.begin(), tensors_.end(),
                  [](const TensorView& x, const TensorView& y) { return x.name < y.name; });
    }

    std::string file_name_;
    std::map<std::string, std::string> metadata_;
    std::vector<TensorView> tensors_;
    std::uint64_t header_bytes_ = 0;
};

/// A safetensors file opened from disk (mapped) or from bytes in memory; owns its bytes.
class SafetensorsFile {
public:
    SafetensorsFile() = default;

    [[nodiscard]] static SafetensorsFile open(const std::filesystem::path& path,
                                              MappedFile::Mode mode = MappedFile::Mode::automatic) {
        return SafetensorsFile(MappedFile::open_shared(path, mode));
    }
    [[nodiscard]] static SafetensorsFile from_bytes(std::vector<std::byte> bytes, std::string name) {
        return SafetensorsFile(std::make_shared<const MappedFile>(MappedFile::from_bytes(std::move(bytes), std::move(name))));
    }
    explicit SafetensorsFile(std::shared_ptr<const MappedFile> file)
        : file_(std::move(file)), view_(SafetensorsView::parse(file_->bytes(), file_->path())) {}

    [[nodiscard]] const std::string& path() const noexcept { return view_.file_name(); }
    [[nodiscard]] const std::map<std::string, std::string>& metadata() const noexcept { return view_.metadata(); }
    [[nodiscard]] std::span<const TensorView> tensors() const noexcept { return view_.tensors(); }
    [[nodiscard]] std::size_t size() const noexcept { return view_.size(); }
    [[nodiscard]] const TensorView* find(std::string_view name) const noexcept { return view_.find(name); }
    [[nodiscard]] bool contains(std::string_view name) const noexcept { return view_.contains(name); }
    [[nodiscard]] const TensorView& at(std::string_view name) const { return view_.at(name); }
    [[nodiscard]] const SafetensorsView& view() const noexcept { return view_; }
    [[nodiscard]] const std::shared_ptr<const MappedFile>& mapping() const noexcept { return file_; }

private:
    std::shared_ptr<const MappedFile> file_;
    SafetensorsView view_;
};

/// model.safetensors.index.json, parsed and checked: each shard file (relative to the index's
/// directory, never escaping it) with the tensors the weight_map lists for it, and "metadata".
struct SafetensorsIndex {
    nlohmann::json metadata;
    std::map<std::string, std::vector<std::string>> by_shard;

    /// Parses the text of an index; format_error naming `source` and the field.
    [[nodiscard]] static SafetensorsIndex parse(std::string_view text, const std::string& source) {
        namespace fs = std::filesystem;
        SafetensorsIndex idx;
        const nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
        if (j.is_discarded() || !j.is_object()) optiq::detail::fail<format_error>(source, ": not a JSON object");
        if (auto md = j.find("metadata"); md != j.end()) idx.metadata = *md;
        const auto wm = j.find("weight_map");
        if (wm == j.end() || !wm->is_object())
            optiq::detail::fail<format_error>(source, ": missing or non-object field 'weight_map'");
        for (auto& [name, file] : wm->items()) {
            if (!file.is_string())
                optiq::detail::fail<format_error>(source, ": field 'weight_map': tensor '", name, "' maps to a non-string");
            const fs::path rel(file.get<std::string>());
            bool escapes = rel.empty() || rel.is_absolute() || !rel.has_filename();
            for (const auto& part : rel) escapes = escapes || part == "..";
            if (escapes)
                optiq::detail::fail<format_error>(source, ": field 'weight_map': tensor '", name, "' maps to '",
                                                  rel.string(), "', not a file beside the index");
            idx.by_shard[rel.string()].push_back(name);
        }
        return idx;
    }
};

/// A model stored as one safetensors file or as shards listed by model.safetensors.index.json.
class SafetensorsModel {
public:
    /// `path`: a .safetensors file, an index .json, or a directory holding model.safetensors.index.json
    /// or model.safetensors. With an index, every weight_map entry must name a tensor present in
    /// its shard, and every tensor in a shard must be listed for that shard.
    [[nodiscard]] static SafetensorsModel open(const std::filesystem::path& path) {
        namespace fs = std::filesystem;
        SafetensorsModel m;
        fs::path p = path;
        if (fs::is_directory(p)) {
            if (fs::exists(p / "model.safetensors.index.json")) p = p / "model.safetensors.index.json";
            else if (fs::exists(p / "model.safetensors")) p = p / "model.safetensors";
            else optiq::detail::fail<format_error>(p.string(), ": neither model.safetensors.index.json nor model.safetensors found");
        }
        if (p.extension() == ".json") m.open_index(p);
        else m.add_shard(SafetensorsFile::open(p));
        m.finish();
        return m;
    }

    /// All tensors of all shards, sorted by name.
    [[nodiscard]] std::span<const TensorView> tensors() const noexcept { return tensors_; }
    [[nodiscard]] std::size_t size() const noexcept { return tensors_.size(); }
    [[nodiscard]] const std::vector<SafetensorsFile>& shards() const noexcept { return shards_; }
    /// The index's "metadata" object (null without an index).
    [[nodiscard]] const nlohmann::json& index_metadata() const noexcept { return index_metadata_; }
    /// "__metadata__" of the first shard (empty without shards).
    [[nodiscard]] const std::map<std::string, std::string>& metadata() const noexcept {
        static const std::map<std::string, std::string> empty;
        return shards_.empty() ? empty : shards_.front().metadata();
    }
    [[nodiscard]] const TensorView* find(std::string_view name) const noexcept {
        auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                                   [](const TensorView& t, std::string_view n) { return t.name < n; });
        return it != tensors_.end() && it->name == name ? &*it : nullptr;
    }
    [[nodiscard]] bool contains(std::string_view name) const noexcept { return find(name) != nullptr; }
    [[nodiscard]] const TensorView& at(std::string_view name) const {
        if (const TensorView* t = find(name)) return *t;
        optiq::detail::fail<format_error>(source_, ": no tensor named '", name, "'");
    }

private:
    void open_index(const std::filesystem::path& index_path) {
        namespace fs = std::filesystem;
        source_ = index_path.string();
        std::ifstream in(index_path, std::ios::binary);
        if (!in) optiq::detail::fail<format_error>(source_, ": cannot open");
        const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (in.bad()) optiq::detail::fail<format_error>(source_, ": read error");
        SafetensorsIndex index = SafetensorsIndex::parse(text, source_);
        index_metadata_ = std::move(index.metadata);
        auto& by_shard = index.by_shard;
        const fs::path dir = index_path.parent_path();
        for (auto& [file, names] : by_shard) {
            std::error_code ec;
            if (fs::is_directory(dir / file, ec))
                optiq::detail::fail<format_error>(source_, ": field 'weight_map': shard '", file, "' is a directory");
            SafetensorsFile shard = SafetensorsFile::open(dir / file);
            for (const auto& name : names)
                if (!shard.contains(name))
                    optiq::detail::fail<format_error>(source_, ": field 'weight_map': tensor '", name,
                                                      "' is not in shard '", shard.path(), "'");
            if (shard.size() != names.size())
                for (const auto& t : shard.tensors())
                    if (std::find(names.begin(), names.end(), t.name) == names.end())
                        optiq::detail::fail<format_error>(shard.path(), ": tensor '", t.name,
                                                          "' is not listed for this shard in ", source_);
            add_shard(std::move(shard));
        }
    }

    void add_shard(SafetensorsFile shard) {
        if (source_.empty()) source_ = shard.path();
        shards_.push_back(std::move(shard));
    }

    void finish() {
        for (const auto& s : shards_)
            for (const auto& t : s.tensors()) tensors_.push_back(t);
        std::sort(tensors_.begin(), tensors_.end(),
                  [](const TensorView& x, const TensorView& y) { return x.name < y.name; });
        for (std::size_t i = 1; i < tensors_.size(); ++i)
            if (tensors_[i].name == tensors_[i - 1].name)
                optiq::detail::fail<format_error>(source_, ": tensor '", tensors_[i].name, "' appears in two shards");
    }

    std::string source_;
    std::vector<SafetensorsFile> shards_;
    std::vector<TensorView> tensors_;
    nlohmann::json index_metadata_;
};

/// Builds safetensors files. Tensors are either copied in (add) or borrowed (add_borrowed: the
/// caller keeps the bytes alive until writing is done). Output matches the reference serializer:
/// header keys sorted, header padded with spaces to a multiple of 8 bytes, data ordered by
/// element size (largest first) then name, so every tensor is aligned to its element size.
class SafetensorsWriter {
public:
    void set_metadata(std::string key, std::string value) { metadata_[std::move(key)] = std::move(value); }
    [[nodiscard]] const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }

    /// Copies `data`, which must hold numel(shape) * dtype_size(dtype) bytes.
    void add(std::string name, DType dtype, std::vector<std::size_t> shape, std::span<const std::byte> data) {
        check(name, dtype, shape, data.size());
        auto owned = std::make_shared<std::vector<std::byte>>(data.begin(), data.end());
        const std::span<const std::byte> view(*owned);
        entries_.emplace(std::move(name), Entry{dtype, std::move(shape), view, std::move(owned)});
    }
    /// Like add, without a copy: `data` must outlive every write.
    void add_borrowed(std::string name, DType dtype, std::vector<std::size_t> shape, std::span<const std::byte> data) {
        check(name, dtype, shape, data.size());
        entries_.emplace(std::move(name), Entry{dtype, std::move(shape), data, nullptr});
    }
    void add(std::string name, std::vector<std::size_t> shape, std::span<const float> values) {
        std::vector<std::byte> bytes(values.size() * 4);
        for (std::size_t i = 0; i < values.size(); ++i) detail::store_le(bytes.data() + 4 * i, values[i]);
        add(std::move(name), DType::f32, std::move(shape), bytes);
    }
    void add(const TensorView& t) { add(t.name, t.dtype, t.shape, t.bytes); }
    /// Borrows a view's bytes (e.g. straight from a mapped input file) instead of copying them.
    void add_borrowed(const TensorView& t) { add_borrowed(t.name, t.dtype, t.shape, t.bytes); }

    [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
    /// Sum of the tensors' data bytes.
    [[nodiscard]] std::uint64_t data_bytes() const noexcept {
        std::uint64_t s = 0;
        for (const auto& [n, e] : entries_) s += e.data.size();
        return s;
    }

    /// The whole file as bytes (all tensors).
    [[nodiscard]] std::vector<std::byte> to_bytes() const {
        std::vector<const std::string*> names;
        for (const auto& [n, e] : entries_) names.push_back(&n);
        return serialize(names);
    }

    /// Writes one file: to PATH.tmp first, renamed onto `path` once complete.
    void write(const std::filesystem::path& path) const { write_atomically(path, to_bytes()); }

    /// Writes shards of at most `max_shard_bytes` of tensor data each (a single tensor larger than
    /// the limit gets a shard of its own), named like mlx-lm's save_model: "model.safetensors" when
    /// one shard suffices, else "model-00001-of-0000N.safetensors", plus "model.safetensors.index.json"
    /// with {"metadata": {"total_size"}, "weight_map"} (sorted). Returns the shard paths.
    std::vector<std::filesystem::path> write_sharded(const std::filesystem::path& dir, std::uint64_t max_shard_bytes,
                                                     std::string_view stem = "model") const {
        namespace fs = std::filesystem;
        std::vector<std::vector<const std::string*>> shards(1);
        std::uint64_t current = 0;
        for (const auto& [n, e] : entries_) {
            if (!shards.back().empty() && current + e.data.size() > max_shard_bytes) {
                shards.emplace_back();
                current = 0;
            }
            shards.back().push_back(&n);
            current += e.data.size();
        }
        fs::create_directories(dir);
        std::vector<fs::path> paths;
        nlohmann::json weight_map = nlohmann::json::object();
        for (std::size_t i = 0; i < shards.size(); ++i) {
            std::string file = std::string(stem) + ".safetensors";
            if (shards.size() > 1) {
                char buf[64];
                std::snprintf(buf, sizeof buf, "-%05zu-of-%05zu.safetensors", i + 1, shards.size());
                file = std::string(stem) + buf;
            }
            write_atomically(dir / file, serialize(shards[i]));
            for (const std::string* n : shards[i]) weight_map[*n] = file;
            paths.push_back(dir / file);
        }
        nlohmann::json index = {{"metadata", {{"total_size", data_bytes()}}}, {"weight_map", weight_map}};
        const std::string text = index.dump(4) + "\n";
        write_atomically(dir / (std::string(stem) + ".safetensors.index.json"),
                         std::span(reinterpret_cast<const std::byte*>(text.data()), text.size()));
        return paths;
    }

private:
    struct Entry {
        DType dtype;
        std::vector<std::size_t> shape;
        std::span<const std::byte> data;
        std::shared_ptr<std::vector<std::byte>> owned;
    };

    void check(const std::string& name, DType dtype, const std::vector<std::size_t>& shape, std::size_t bytes) const {
        if (name.empty()) optiq::detail::fail<value_error>("safetensors writer: empty tensor name");
        if (name == "__metadata__") optiq::detail::fail<value_error>("safetensors writer: '__metadata__' is reserved");
        if (entries_.count(name)) optiq::detail::fail<value_error>("safetensors writer: tensor '", name, "' added twice");
        if (numel(shape) * dtype_size(dtype) != bytes)
            optiq::detail::fail<shape_error>("safetensors writer: tensor '", name, "': dtype ", dtype_name(dtype),
                                             " and shape ", shape_string(shape), " need ",
                                             numel(shape) * dtype_size(dtype), " bytes, got ", bytes);
    }

    [[nodiscard]] std::vector<std::byte> serialize(std::vector<const std::string*> names) const {
        std::stable_sort(names.begin(), names.end(), [&](const std::string* a, const std::string* b) {
            const auto sa = dtype_size(entries_.at(*a).dtype), sb = dtype_size(entries_.at(*b).dtype);
            return sa != sb ? sa > sb : *a < *b;
        });
        nlohmann::json header = nlohmann::json::object();
        if (!metadata_.empty()) header["__metadata__"] = metadata_;
        std::uint64_t offset = 0;
        for (const std::string* n : names) {
            const Entry& e = entries_.at(*n);
            header[*n] = {{"dtype", dtype_name(e.dtype)},
                          {"shape", e.shape},
                          {"data_offsets", {offset, offset + e.data.size()}}};
            offset += e.data.size();
        }
        std::string text = header.dump();
        text.append((8 - text.size() % 8) % 8, ' ');
        std::vector<std::byte> out(8 + text.size() + offset);
        detail::store_le<std::uint64_t>(out.data(), text.size());
        std::memcpy(out.data() + 8, text.data(), text.size());
        std::byte* p = out.data() + 8 + text.size();
        for (const std::string* n : names) {
            const Entry& e = entries_.at(*n);
            if (!e.data.empty()) std::memcpy(p, e.data.data(), e.data.size());
            p += e.data.size();
        }
        return out;
    }

    static void write_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes) {
        namespace fs = std::filesystem;
        fs::path tmp = path;
        tmp += ".tmp";
        {
            std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
            if (!out) optiq::detail::fail<format_error>(tmp.string(), ": cannot create");
            out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
            out.flush();
            if (!out) {
                out.close();
                std::error_code ec;
                fs::remove(tmp, ec);
                optiq::detail::fail<format_error>(tmp.string(), ": write error");
            }
        }
        std::error_code ec;
        fs::rename(tmp, path, ec);
        if (ec) {
            fs::remove(tmp, ec);
            optiq::detail::fail<format_error>(path.string(), ": cannot rename the finished file into place");
        }
    }

    std::map<std::string, std::string> metadata_;
    std::map<std::string, Entry> entries_;
};

}  // namespace optiq::io
