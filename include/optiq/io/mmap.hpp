#pragma once
// Read-only file mapping: the model readers parse and view tensors in place. POSIX systems map the
// file (mmap, MAP_PRIVATE, PROT_READ); anywhere else, or when mapping fails, the file is read into
// memory instead, so the readers behave the same on every platform.
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "optiq/core/error.hpp"

#if defined(__unix__) || defined(__APPLE__)
#if __has_include(<sys/mman.h>) && __has_include(<sys/stat.h>) && __has_include(<fcntl.h>) && __has_include(<unistd.h>)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define OPTIQ_IO_HAVE_MMAP 1
#endif
#endif
#ifndef OPTIQ_IO_HAVE_MMAP
#define OPTIQ_IO_HAVE_MMAP 0
#endif

namespace optiq::io {

namespace detail {
// io's helpers live in optiq::io::detail; the core ones stay reachable as detail::fail there.
using optiq::detail::concat;
using optiq::detail::fail;
}  // namespace detail

/// Bytes of one whole file, read-only, valid while the MappedFile (or a copy of the shared
/// pointer handed out by MappedFile::open_shared) lives. Move-only.
class MappedFile {
public:
    enum class Mode { automatic, read_into_memory };

    MappedFile() = default;

    /// Maps `path` (or reads it into memory under Mode::read_into_memory / without mmap).
    /// Throws format_error naming the file when it cannot be opened or read.
    [[nodiscard]] static MappedFile open(const std::filesystem::path& path, Mode mode = Mode::automatic) {
        MappedFile f;
        f.path_ = path.string();
        std::error_code ec;
        if (std::filesystem::is_directory(path, ec))
            detail::fail<format_error>(f.path_, ": is a directory, expected a file");
#if OPTIQ_IO_HAVE_MMAP
        if (mode == Mode::automatic && f.try_map()) return f;
#else
        (void)mode;
#endif
        f.read_all();
        return f;
    }

    [[nodiscard]] static std::shared_ptr<const MappedFile> open_shared(const std::filesystem::path& path,
                                                                       Mode mode = Mode::automatic) {
        return std::make_shared<const MappedFile>(open(path, mode));
    }

    /// An in-memory "file" (tests, fuzzers, data already in memory), named `name` in messages.
    [[nodiscard]] static MappedFile from_bytes(std::vector<std::byte> bytes, std::string name) {
        MappedFile f;
        f.path_ = std::move(name);
        f.buffer_ = std::move(bytes);
        f.data_ = f.buffer_.data();
        f.size_ = f.buffer_.size();
        return f;
    }

    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    MappedFile(MappedFile&& o) noexcept { steal(o); }
    MappedFile& operator=(MappedFile&& o) noexcept {
        if (this != &o) {
            release();
            steal(o);
        }
        return *this;
    }
    ~MappedFile() { release(); }

    [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
    [[nodiscard]] const std::byte* data() const noexcept { return data_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    /// True when the bytes are an mmap of the file rather than a copy in memory.
    [[nodiscard]] bool is_mapped() const noexcept { return mapped_; }

private:
#if OPTIQ_IO_HAVE_MMAP
    bool try_map() {
        const int fd = ::open(path_.c_str(), O_RDONLY);
        if (fd < 0) detail::fail<format_error>(path_, ": cannot open: ", std::strerror(errno));
        struct stat st {};
        if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            ::close(fd);
            return false;  // not a regular file (a pipe, ...): read it instead
        }
        const auto size = static_cast<std::size_t>(st.st_size);
        if (size == 0) {
            ::close(fd);
            data_ = nullptr;
            size_ = 0;
            return true;
        }
        void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
        ::close(fd);  // the mapping keeps its own reference to the file
        if (p == MAP_FAILED) return false;
        data_ = static_cast<const std::byte*>(p);
        size_ = size;
        mapped_ = true;
        return true;
    }
#endif

    void read_all() {
        std::ifstream in(std::filesystem::path(path_), std::ios::binary);
        if (!in) detail::fail<format_error>(path_, ": cannot open");
        in.seekg(0, std::ios::end);
        const std::streamoff end = in.tellg();
        if (end < 0) detail::fail<format_error>(path_, ": cannot determine the file size");
        in.seekg(0, std::ios::beg);
        buffer_.resize(static_cast<std::size_t>(end));
        if (!buffer_.empty() && !in.read(reinterpret_cast<char*>(buffer_.data()), end))
            detail::fail<format_error>(path_, ": read error");
        data_ = buffer_.data();
        size_ = buffer_.size();
    }

    void release() noexcept {
#if OPTIQ_IO_HAVE_MMAP
        if (mapped_ && data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
#endif
        data_ = nullptr;
        size_ = 0;
        mapped_ = false;
        buffer_.clear();
    }

    void steal(MappedFile& o) noexcept {
        path_ = std::move(o.path_);
        buffer_ = std::move(o.buffer_);
        mapped_ = o.mapped_;
        size_ = o.size_;
        data_ = mapped_ ? o.data_ : buffer_.data();
        o.data_ = nullptr;
        o.size_ = 0;
        o.mapped_ = false;
    }

    std::string path_;
    std::vector<std::byte> buffer_;
    const std::byte* data_ = nullptr;
    std::size_t size_ = 0;
    bool mapped_ = false;
};

namespace detail {

/// Little-endian loads from possibly unaligned bytes (memcpy: no aliasing or alignment UB).
template <class T>
[[nodiscard]] inline T load_le(const std::byte* p) noexcept {
    static_assert(std::is_trivially_copyable_v<T>);
    T v;
    std::memcpy(&v, p, sizeof(T));
    if constexpr (std::endian::native == std::endian::big && sizeof(T) > 1) {
        auto* b = reinterpret_cast<unsigned char*>(&v);
        for (std::size_t i = 0; i < sizeof(T) / 2; ++i) std::swap(b[i], b[sizeof(T) - 1 - i]);
    }
    return v;
}

template <class T>
inline void store_le(std::byte* p, T v) noexcept {
    static_assert(std::is_trivially_copyable_v<T>);
    if constexpr (std::endian::native == std::endian::big && sizeof(T) > 1) {
        auto* b = reinterpret_cast<unsigned char*>(&v);
        for (std::size_t i = 0; i < sizeof(T) / 2; ++i) std::swap(b[i], b[sizeof(T) - 1 - i]);
    }
    std::memcpy(p, &v, sizeof(T));
}

}  // namespace detail
}  // namespace optiq::io
