#include "optiq/io/safetensors.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "io_test_util.hpp"

namespace {

using namespace optiq::io;
using optiq::format_error;
using optiq::shape_error;
using optiq::value_error;
using optiq::io::test::expect_error;
using optiq::io::test::TempDir;
using optiq::io::test::to_bytes;

/// A raw safetensors file: 8-byte length, `header` verbatim, then `data_bytes` bytes (value i & 0xFF).
std::vector<std::byte> raw_file(const std::string& header, std::size_t data_bytes) {
    std::vector<std::byte> f(8 + header.size() + data_bytes);
    const std::uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) f[i] = std::byte(static_cast<std::uint8_t>(n >> (8 * i)));
    std::memcpy(f.data() + 8, header.data(), header.size());
    for (std::size_t i = 0; i < data_bytes; ++i) f[8 + header.size() + i] = std::byte(static_cast<std::uint8_t>(i));
    return f;
}

SafetensorsView parse_raw(const std::string& header, std::size_t data_bytes,
                          std::vector<std::byte>* keep) {
    *keep = raw_file(header, data_bytes);
    return SafetensorsView::parse(*keep, "bad.safetensors");
}

void expect_bad(const std::string& header, std::size_t data_bytes, std::initializer_list<std::string_view> parts) {
    std::vector<std::byte> keep;
    expect_error([&] { (void)parse_raw(header, data_bytes, &keep); }, parts);
    // Every message names the file.
    expect_error([&] { (void)parse_raw(header, data_bytes, &keep); }, {"bad.safetensors: "});
}

SafetensorsWriter sample_writer() {
    SafetensorsWriter w;
    w.set_metadata("format", "mlx");
    w.add("model.embed.weight", {2, 3}, std::vector<float>{1.f, -2.f, 3.5f, 0.f, 1e-3f, -7.25f});
    const std::uint16_t h[] = {0x3C00, 0xC000, 0x3555, 0x7BFF};      // f16: 1, -2, 0.33325, 65504
    w.add("a.f16", DType::f16, {4}, std::as_bytes(std::span(h)));
    const std::uint16_t b16[] = {0x3F80, 0x4049, 0xBF00};             // bf16: 1, 3.140625, -0.5
    w.add("b.bf16", DType::bf16, {3, 1}, std::as_bytes(std::span(b16)));
    const std::uint8_t u8[] = {7, 255, 0};
    w.add("c.u8", DType::u8, {3}, std::as_bytes(std::span(u8)));
    const std::uint32_t packed[] = {0xDEADBEEF, 0x01234567};
    w.add("layers.0.q.weight", DType::u32, {1, 2}, std::as_bytes(std::span(packed)));
    const std::int64_t i64[] = {-5};
    w.add("scalar.i64", DType::i64, {}, std::as_bytes(std::span(i64)));
    w.add("empty", DType::f32, {0, 4}, {});
    return w;
}

TEST(SafetensorsWriter, RoundTripThroughTheReader) {
    TempDir dir;
    const auto path = dir / "m.safetensors";
    sample_writer().write(path);
    EXPECT_FALSE(std::filesystem::exists(dir / "m.safetensors.tmp"));

    for (auto mode : {MappedFile::Mode::automatic, MappedFile::Mode::read_into_memory}) {
        const auto f = SafetensorsFile::open(path, mode);
        EXPECT_EQ(f.mapping()->is_mapped(), mode == MappedFile::Mode::automatic);
        ASSERT_EQ(f.size(), 7u);
        ASSERT_EQ(f.metadata().size(), 1u);
        EXPECT_EQ(f.metadata().at("format"), "mlx");
        // tensors() is sorted by name.
        std::vector<std::string> names;
        for (const auto& t : f.tensors()) names.push_back(t.name);
        EXPECT_EQ(names, (std::vector<std::string>{"a.f16", "b.bf16", "c.u8", "empty", "layers.0.q.weight",
                                                    "model.embed.weight", "scalar.i64"}));

        const auto& e = f.at("model.embed.weight");
        EXPECT_EQ(e.dtype, DType::f32);
        EXPECT_EQ(e.shape, (std::vector<std::size_t>{2, 3}));
        EXPECT_EQ(e.to_float(), (std::vector<float>{1.f, -2.f, 3.5f, 0.f, 1e-3f, -7.25f}));
        EXPECT_EQ(f.at("a.f16").to_float(), (std::vector<float>{1.f, -2.f, 0.333251953125f, 65504.f}));
        EXPECT_EQ(f.at("b.bf16").to_float(), (std::vector<float>{1.f, 3.140625f, -0.5f}));
        EXPECT_EQ(f.at("b.bf16").shape, (std::vector<std::size_t>{3, 1}));
        EXPECT_EQ(f.at("c.u8").to_float(), (std::vector<float>{7.f, 255.f, 0.f}));
        const auto& q = f.at("layers.0.q.weight");
        ASSERT_EQ(q.bytes.size(), 8u);
        std::uint32_t words[2];
        std::memcpy(words, q.bytes.data(), 8);
        EXPECT_EQ(words[0], 0xDEADBEEFu);
        EXPECT_EQ(words[1], 0x01234567u);
        EXPECT_TRUE(f.at("scalar.i64").shape.empty());
        EXPECT_EQ(f.at("scalar.i64").numel(), 1u);
        EXPECT_EQ(f.at("scalar.i64").to_float(), std::vector<float>{-5.f});
        EXPECT_EQ(f.at("empty").numel(), 0u);
        EXPECT_TRUE(f.at("empty").bytes.empty());
        EXPECT_EQ(f.find("nope"), nullptr);
        expect_error([&] { (void)f.at("nope"); }, {"m.safetensors", "'nope'"});
    }
}

TEST(SafetensorsWriter, RewritingAFileFromBorrowedViewsReproducesItsBytes) {
    TempDir dir;
    const auto original = sample_writer().to_bytes();
    optiq::io::test::write_file(dir / "a.safetensors", original);
    const auto f = SafetensorsFile::open(dir / "a.safetensors");
    SafetensorsWriter w;
    for (const auto& [k, v] : f.metadata()) w.set_metadata(k, v);
    for (const auto& t : f.tensors()) w.add_borrowed(t);  // straight from the mapping
    w.write(dir / "b.safetensors");
    EXPECT_EQ(optiq::io::test::read_file(dir / "b.safetensors"), original);
}

TEST(SafetensorsWriter, LayoutMatchesTheReferenceSerializer) {
    const auto bytes = sample_writer().to_bytes();
    std::uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    // Header padded with spaces to a multiple of 8, so the data area is 8-byte aligned.
    EXPECT_EQ(n % 8, 0u);
    const std::string header(reinterpret_cast<const char*>(bytes.data() + 8), n);
    EXPECT_EQ(header.front(), '{');
    const auto close = header.find_last_of('}');
    EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos);
    EXPECT_LT(header.size() - close - 1, 8u);
    // Keys sorted (nlohmann's object order) with __metadata__ among them.
    EXPECT_LT(header.find("\"__metadata__\""), header.find("\"a.f16\""));
    EXPECT_LT(header.find("\"a.f16\""), header.find("\"b.bf16\""));
    // Data ordered by element size, largest first, so each tensor is aligned to its element size.
    const auto v = SafetensorsView::parse(bytes, "mem");
    const std::byte* data = bytes.data() + v.data_offset();
    for (const auto& t : v.tensors()) {
        const auto off = static_cast<std::size_t>(t.bytes.data() - data);
        EXPECT_EQ(off % dtype_size(t.dtype), 0u) << t.name;
    }
    EXPECT_EQ(v.at("scalar.i64").bytes.data(), data);  // the only 8-byte type comes first
    EXPECT_EQ(v.header_bytes(), n);
}

TEST(SafetensorsWriter, HeaderMatchesAHandWrittenFile) {
    SafetensorsWriter w;
    w.add("x", {2}, std::vector<float>{1.5f, -1.f});
    const auto bytes = w.to_bytes();
    const std::string want = R"({"x":{"data_offsets":[0,8],"dtype":"F32","shape":[2]}})";
    const std::size_t padded = (want.size() + 7) / 8 * 8;
    ASSERT_EQ(bytes.size(), 8 + padded + 8);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(bytes.data() + 8), want.size()), want);
    EXPECT_EQ(std::to_integer<int>(bytes[0]), static_cast<int>(padded));
}

TEST(SafetensorsWriter, RejectsBadInput) {
    SafetensorsWriter w;
    w.add("a", {1}, std::vector<float>{1.f});
    expect_error<value_error>([&] { w.add("a", {1}, std::vector<float>{2.f}); }, {"'a'", "twice"});
    expect_error<value_error>([&] { w.add("__metadata__", {1}, std::vector<float>{2.f}); }, {"__metadata__"});
    expect_error<value_error>([&] { w.add("", {1}, std::vector<float>{2.f}); }, {"empty"});
    expect_error<shape_error>([&] { w.add("b", {2, 2}, std::vector<float>{1.f, 2.f}); }, {"'b'", "[2, 2]", "16", "8"});
    TempDir dir;
    expect_error<format_error>([&] { w.write(dir / "missing_dir" / "x.safetensors"); }, {"missing_dir"});
}

TEST(SafetensorsWriter, OverwritesAnExistingFileAtomically) {
    TempDir dir;
    const auto path = dir / "m.safetensors";
    optiq::io::test::write_file(path, "old contents");
    SafetensorsWriter w;
    w.add("t", {1}, std::vector<float>{4.f});
    w.write(path);
    EXPECT_EQ(SafetensorsFile::open(path).at("t").to_float(), std::vector<float>{4.f});
    EXPECT_FALSE(std::filesystem::exists(dir / "m.safetensors.tmp"));
}

TEST(SafetensorsWriter, BorrowedTensorsAreNotCopied) {
    std::vector<float> big(1000);
    std::iota(big.begin(), big.end(), 0.f);
    SafetensorsWriter w;
    w.add_borrowed("big", DType::f32, {10, 100}, std::as_bytes(std::span(big)));
    big[999] = -1.f;  // seen by the writer: it refers to the caller's bytes
    const auto f = SafetensorsFile::from_bytes(w.to_bytes(), "mem");
    const auto v = f.at("big").to_float();
    EXPECT_EQ(v[998], 998.f);
    EXPECT_EQ(v[999], -1.f);
}

TEST(SafetensorsWriter, ShardsAtTheSizeLimitWithAnIndex) {
    TempDir dir;
    SafetensorsWriter w;
    w.set_metadata("format", "mlx");
    for (int i = 0; i < 5; ++i) w.add("w" + std::to_string(i), {4}, std::vector<float>(4, static_cast<float>(i)));
    // 16 bytes each, limit 40: shards {w0,w1}, {w2,w3}, {w4}.
    const auto paths = w.write_sharded(dir.path(), 40);
    ASSERT_EQ(paths.size(), 3u);
    EXPECT_EQ(paths[0].filename(), "model-00001-of-00003.safetensors");
    EXPECT_EQ(paths[2].filename(), "model-00003-of-00003.safetensors");
    std::ifstream in(dir / "model.safetensors.index.json");
    const auto index = nlohmann::json::parse(in);
    EXPECT_EQ(index["metadata"]["total_size"], 80);
    EXPECT_EQ(index["weight_map"]["w0"], "model-00001-of-00003.safetensors");
    EXPECT_EQ(index["weight_map"]["w3"], "model-00002-of-00003.safetensors");
    EXPECT_EQ(index["weight_map"]["w4"], "model-00003-of-00003.safetensors");

    for (const auto& p : {dir.path(), dir / "model.safetensors.index.json"}) {
        const auto m = SafetensorsModel::open(p);
        EXPECT_EQ(m.shards().size(), 3u);
        ASSERT_EQ(m.size(), 5u);
        EXPECT_EQ(m.at("w3").to_float(), std::vector<float>(4, 3.f));
        EXPECT_EQ(m.metadata().at("format"), "mlx");
        EXPECT_EQ(m.index_metadata()["total_size"], 80);
        expect_error([&] { (void)m.at("w9"); }, {"model.safetensors.index.json", "'w9'"});
    }
}

TEST(SafetensorsWriter, OneShardIsModelSafetensors) {
    TempDir dir;
    SafetensorsWriter w;
    w.add("big", {8}, std::vector<float>(8, 1.f));  // larger than the limit: a shard of its own
    const auto paths = w.write_sharded(dir.path(), 4);
    ASSERT_EQ(paths.size(), 1u);
    EXPECT_EQ(paths[0].filename(), "model.safetensors");
    EXPECT_TRUE(std::filesystem::exists(dir / "model.safetensors.index.json"));
    // A directory with only model.safetensors opens too.
    std::filesystem::remove(dir / "model.safetensors.index.json");
    EXPECT_EQ(SafetensorsModel::open(dir.path()).at("big").numel(), 8u);
    EXPECT_EQ(SafetensorsModel::open(dir / "model.safetensors").size(), 1u);
}

TEST(SafetensorsModel, ValidatesTheIndex) {
    TempDir dir;
    SafetensorsWriter w;
    w.add("a", {1}, std::vector<float>{1.f});
    w.add("b", {1}, std::vector<float>{2.f});
    w.write(dir / "s1.safetensors");
    SafetensorsWriter w2;
    w2.add("b", {1}, std::vector<float>{3.f});
    w2.write(dir / "s2.safetensors");
    const auto index = dir / "model.safetensors.index.json";
    using optiq::io::test::write_file;

    write_file(index, R"({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors"}})");
    EXPECT_EQ(SafetensorsModel::open(index).at("b").to_float(), std::vector<float>{2.f});

    write_file(index, R"({"weight_map": {"a": "s1.safetensors", "c": "s1.safetensors", "b": "s1.safetensors"}})");
    expect_error([&] { (void)SafetensorsModel::open(index); }, {"model.safetensors.index.json", "'c'", "s1.safetensors"});
    write_file(index, R"({"weight_map": {"a": "s1.safetensors"}})");
    expect_error([&] { (void)SafetensorsModel::open(index); }, {"s1.safetensors", "'b'", "not listed"});
    write_file(index, R"({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}})");
    expect_error([&] { (void)SafetensorsModel::open(index); }, {"s1.safetensors", "'b'"});
    write_file(index, R"({"weight_map": {"a": "../s1.safetensors"}})");
    expect_error([&] { (void)SafetensorsModel::open(index); }, {"model.safetensors.index.json", "'a'", "beside the index"});
    write_file(index, R"({"weight_map": {"a": 3}})");
    expect_error([&] { (void)SafetensorsModel::open(index); }, {"model.safetensors.index.json", "'a'"});
    write_file(index, R"({"metadata": {}})");
    expect_error([&] { (void)SafetensorsModel::open(index); }, {"model.safetensors.index.json", "'weight_map'"});
    write_file(index, R"({"weight_map": )");
    expect_error([&] { (void)SafetensorsModel::open(index); }, {"model.safetensors.index.json", "JSON"});
    write_file(index, R"({"weight_map": {"a": "gone.safetensors"}})");
    expect_error([&] { (void)SafetensorsModel::open(index); }, {"gone.safetensors", "cannot open"});
    expect_error([&] { (void)SafetensorsModel::open(dir / "nothing_here"); }, {"nothing_here"});
}

TEST(SafetensorsModel, ShardsThatAreNotFilesAreFormatErrors) {
    // A shard naming a directory once reached the reader, which sized its buffer from tellg() of a
    // directory and threw std::bad_alloc.
    TempDir dir;
    std::filesystem::create_directory(dir / "sub");
    const auto index = dir / "model.safetensors.index.json";
    using optiq::io::test::write_file;
    write_file(index, R"({"weight_map": {"a": "sub"}})");
    expect_error([&] { (void)SafetensorsModel::open(index); }, {"model.safetensors.index.json", "'sub'", "directory"});
    write_file(index, R"({"weight_map": {"a": "."}})");
    expect_error([&] { (void)SafetensorsModel::open(index); }, {"model.safetensors.index.json", "directory"});
    write_file(index, R"({"weight_map": {"a": "sub/"}})");
    expect_error([&] { (void)SafetensorsModel::open(index); }, {"model.safetensors.index.json", "'a'"});
}

TEST(SafetensorsIndex, ParsesTextAndNamesTheField) {
    const auto idx = SafetensorsIndex::parse(
        R"({"metadata": {"total_size": 8}, "weight_map": {"a": "s1.safetensors", "b": "s2.safetensors", "c": "s1.safetensors"}})",
        "i.json");
    EXPECT_EQ(idx.metadata["total_size"], 8);
    ASSERT_EQ(idx.by_shard.size(), 2u);
    EXPECT_EQ(idx.by_shard.at("s1.safetensors"), (std::vector<std::string>{"a", "c"}));
    expect_error([&] { (void)SafetensorsIndex::parse("[1e999]", "i.json"); }, {"i.json", "not a JSON object"});
    expect_error([&] { (void)SafetensorsIndex::parse(R"({"weight_map": []})", "i.json"); }, {"i.json", "'weight_map'"});
    expect_error([&] { (void)SafetensorsIndex::parse(R"({"weight_map": {"a": "/etc/passwd"}})", "i.json"); },
                 {"i.json", "'a'", "beside the index"});
}

// ---- validation rules, one by one --------------------------------------------------------------

TEST(SafetensorsReader, AcceptsAMinimalHandWrittenFile) {
    std::vector<std::byte> keep;
    const auto v = parse_raw(R"({"t":{"dtype":"U8","shape":[2,2],"data_offsets":[0,4]},"__metadata__":{"k":"v"}}   )",
                             4, &keep);
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v.at("t").to_float(), (std::vector<float>{0.f, 1.f, 2.f, 3.f}));
    EXPECT_EQ(v.metadata().at("k"), "v");
    // An empty header object with no data is a valid empty file.
    EXPECT_EQ(parse_raw("{}", 0, &keep).size(), 0u);
    // mx.save_safetensors without metadata writes "__metadata__": null (no metadata).
    const auto n = parse_raw(R"({"__metadata__":null,"t":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", 4, &keep);
    EXPECT_EQ(n.size(), 1u);
    EXPECT_TRUE(n.metadata().empty());
}

TEST(SafetensorsReader, RejectsShortFilesAndBadHeaderLengths) {
    const std::vector<std::byte> tiny(7);
    expect_error([&] { (void)SafetensorsView::parse(tiny, "tiny.safetensors"); }, {"tiny.safetensors", "8-byte"});
    auto f = raw_file("{}", 0);
    f[5] = std::byte{1};  // 2^40
    expect_error([&] { (void)SafetensorsView::parse(f, "huge.safetensors"); }, {"huge.safetensors", "exceeds the limit"});
    auto g = raw_file("{}", 0);
    g[0] = std::byte{3};
    expect_error([&] { (void)SafetensorsView::parse(g, "long.safetensors"); }, {"long.safetensors", "runs past the end"});
    // The limit itself: 100 MB + 1 is rejected before looking at the file size.
    auto h = raw_file("{}", 0);
    const std::uint64_t n = kSafetensorsMaxHeaderBytes + 1;
    std::memcpy(h.data(), &n, 8);
    expect_error([&] { (void)SafetensorsView::parse(h, "lim.safetensors"); }, {"exceeds the limit of 100000000"});
}

TEST(SafetensorsReader, RejectsMalformedJson) {
    expect_bad(" {}", 0, {"does not start with '{'"});
    expect_bad("[]", 0, {"does not start with '{'"});
    expect_bad("", 0, {"does not start with '{'"});
    expect_bad(R"({"a": )", 0, {"not valid JSON", "of 6)"});
    expect_bad(R"({"a": 1}x)", 0, {"not valid JSON (error at byte 9 of 9)"});
    expect_bad("{\"a\xff\": 1}", 0, {"not valid JSON"});  // invalid UTF-8
    expect_bad(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"t":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
               2, {"'t'", "twice"});
}

TEST(SafetensorsReader, RejectsBadMetadata) {
    expect_bad(R"({"__metadata__":[1]})", 0, {"'__metadata__'", "not an object"});
    expect_bad(R"({"__metadata__":{"format":1}})", 0, {"'__metadata__'", "'format'", "not a string"});
}

TEST(SafetensorsReader, RejectsBadTensorEntries) {
    expect_bad(R"({"t":1})", 0, {"tensor 't'", "not an object"});
    expect_bad(R"({"t":{"shape":[1],"data_offsets":[0,1]}})", 1, {"tensor 't'", "'dtype'"});
    expect_bad(R"({"t":{"dtype":8,"shape":[1],"data_offsets":[0,1]}})", 1, {"tensor 't'", "'dtype'"});
    expect_bad(R"({"t":{"dtype":"F17","shape":[1],"data_offsets":[0,1]}})", 1, {"tensor 't'", "unknown dtype 'F17'"});
    expect_bad(R"({"t":{"dtype":"U8","data_offsets":[0,1]}})", 1, {"tensor 't'", "'shape'"});
    expect_bad(R"({"t":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", 1, {"tensor 't'", "'shape'"});
    expect_bad(R"({"t":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}})", 1, {"tensor 't'", "'shape'"});
    expect_bad(R"({"t":{"dtype":"U8","shape":[4294967296,4294967296,16],"data_offsets":[0,1]}})", 1,
               {"tensor 't'", "'shape'", "overflows"});
    expect_bad(R"({"t":{"dtype":"U8","shape":[1]}})", 1, {"tensor 't'", "'data_offsets'"});
    expect_bad(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", 1, {"tensor 't'", "'data_offsets'"});
    expect_bad(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}})", 1, {"tensor 't'", "'data_offsets'"});
    expect_bad(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[-1,1]}})", 1, {"tensor 't'", "'data_offsets'"});
    expect_bad(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}})", 1, {"tensor 't'", "ends before it begins"});
    expect_bad(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,5]}})", 1, {"tensor 't'", "runs past the data area"});
    expect_bad(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551615]}})", 1,
               {"tensor 't'", "runs past the data area"});
}

TEST(SafetensorsReader, RejectsShapeDtypeSizeMismatch) {
    expect_bad(R"({"t":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 20,
               {"tensor 't'", "F32", "[2, 3]", "6 x 4", "span 20"});
    expect_bad(R"({"t":{"dtype":"BF16","shape":[3],"data_offsets":[0,3]}})", 3, {"tensor 't'", "BF16"});
    expect_bad(R"({"t":{"dtype":"F64","shape":[],"data_offsets":[0,4]}})", 4, {"tensor 't'", "F64"});
}

TEST(SafetensorsReader, RejectsOverlapsGapsAndUncoveredData) {
    expect_bad(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
               12, {"tensor 'b'", "overlaps tensor 'a'"});
    expect_bad(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
               8, {"overlaps tensor"});
    expect_bad(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
               20, {"tensor 'b'", "gap of 4 bytes", "'a'"});
    expect_bad(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12, {"tensor 'a'", "gap of 4", "start"});
    expect_bad(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 9, {"not fully covered", "9 bytes"});
    expect_bad(R"({})", 3, {"not fully covered"});
    // Zero-size tensors may share an offset.
    std::vector<std::byte> keep;
    EXPECT_EQ(parse_raw(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"c":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
                        1, &keep)
                  .size(),
              3u);
}

TEST(SafetensorsReader, EveryTruncationOfAValidFileIsAFormatError) {
    const auto full = sample_writer().to_bytes();
    ASSERT_NO_THROW((void)SafetensorsView::parse(full, "full.safetensors"));
    for (std::size_t n = 0; n < full.size(); ++n) {
        const std::vector<std::byte> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
        try {
            (void)SafetensorsView::parse(cut, "cut.safetensors");
            ADD_FAILURE() << "prefix of " << n << " bytes accepted";
        } catch (const format_error& e) {
            EXPECT_NE(std::string(e.what()).find("cut.safetensors: "), std::string::npos) << e.what();
        }
    }
}

TEST(SafetensorsReader, OpenNamesAMissingFile) {
    expect_error([] { (void)SafetensorsFile::open("/nonexistent/dir/x.safetensors"); }, {"/nonexistent/dir/x.safetensors"});
}

}  // namespace
