#include "optiq/io/mmap.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "io_test_util.hpp"

namespace {

using optiq::io::MappedFile;
using optiq::io::test::expect_error;
using optiq::io::test::TempDir;

TEST(MappedFile, MappedAndReadPathsSeeTheSameBytes) {
    TempDir dir;
    std::vector<std::byte> data(10000);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = std::byte(static_cast<std::uint8_t>(i * 7 + 1));
    optiq::io::test::write_file(dir / "f.bin", data);
    const auto mapped = MappedFile::open(dir / "f.bin");
    const auto read = MappedFile::open(dir / "f.bin", MappedFile::Mode::read_into_memory);
    EXPECT_EQ(mapped.is_mapped(), OPTIQ_IO_HAVE_MMAP == 1);
    EXPECT_FALSE(read.is_mapped());
    ASSERT_EQ(mapped.size(), data.size());
    ASSERT_EQ(read.size(), data.size());
    EXPECT_EQ(std::memcmp(mapped.data(), data.data(), data.size()), 0);
    EXPECT_EQ(std::memcmp(read.data(), data.data(), data.size()), 0);
    EXPECT_EQ(mapped.path(), (dir / "f.bin").string());
}

TEST(MappedFile, EmptyFile) {
    TempDir dir;
    optiq::io::test::write_file(dir / "empty", std::string_view{});
    for (auto mode : {MappedFile::Mode::automatic, MappedFile::Mode::read_into_memory}) {
        const auto f = MappedFile::open(dir / "empty", mode);
        EXPECT_EQ(f.size(), 0u);
        EXPECT_TRUE(f.bytes().empty());
    }
}

TEST(MappedFile, MissingFileNamesThePath) {
    for (auto mode : {MappedFile::Mode::automatic, MappedFile::Mode::read_into_memory})
        expect_error([&] { (void)MappedFile::open("/no/such/optiq_file.bin", mode); }, {"/no/such/optiq_file.bin"});
}

TEST(MappedFile, DirectoryIsAClearError) {
    TempDir dir;
    for (auto mode : {MappedFile::Mode::automatic, MappedFile::Mode::read_into_memory})
        expect_error([&] { (void)MappedFile::open(dir.path(), mode); }, {dir.path().string(), "is a directory"});
}

TEST(MappedFile, MovesKeepTheBytesValid) {
    TempDir dir;
    optiq::io::test::write_file(dir / "f.bin", std::string_view("hello"));
    auto a = MappedFile::open(dir / "f.bin");
    const std::byte* p = a.data();
    MappedFile b = std::move(a);
    EXPECT_EQ(b.data(), p);  // a mapping moves without copying
    EXPECT_EQ(b.size(), 5u);
    EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
    auto m = MappedFile::from_bytes(optiq::io::test::to_bytes("xyz"), "mem");
    MappedFile c;
    c = std::move(m);
    EXPECT_EQ(c.size(), 3u);
    EXPECT_EQ(std::to_integer<char>(c.bytes()[2]), 'z');
    EXPECT_EQ(c.path(), "mem");
    c = std::move(b);
    EXPECT_EQ(std::to_integer<char>(c.bytes()[0]), 'h');
}

TEST(MappedFile, LittleEndianLoadsAndStores) {
    std::byte buf[9] = {};
    optiq::io::detail::store_le<std::uint32_t>(buf + 1, 0x11223344u);  // unaligned
    EXPECT_EQ(std::to_integer<int>(buf[1]), 0x44);
    EXPECT_EQ(std::to_integer<int>(buf[4]), 0x11);
    EXPECT_EQ(optiq::io::detail::load_le<std::uint32_t>(buf + 1), 0x11223344u);
    optiq::io::detail::store_le<double>(buf + 1, -2.5);
    EXPECT_EQ(optiq::io::detail::load_le<double>(buf + 1), -2.5);
}

}  // namespace
