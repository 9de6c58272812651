#include "optiq/io/gguf.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "gguf_builder.hpp"
#include "io_test_util.hpp"

namespace {

using namespace optiq::io;
using optiq::format_error;
using optiq::io::test::expect_error;
using optiq::io::test::GgufBuilder;

template <class T>
std::vector<std::byte> bytes_of(const std::vector<T>& v) {
    std::vector<std::byte> b(v.size() * sizeof(T));
    if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
    return b;
}

GgufFile parse(const GgufBuilder& b, std::string name = "t.gguf") { return GgufFile::from_bytes(b.build(), std::move(name)); }

/// A small valid file with metadata of every type and tensors of several types.
GgufBuilder sample() {
    GgufBuilder b;
    b.kv_string("general.architecture", "llama");
    b.kv_u8("u8", 200);
    b.kv_i8("i8", -100);
    b.kv_u16("u16", 60000);
    b.kv_i16("i16", -30000);
    b.kv_u32("llama.block_count", 2);
    b.kv_i32("i32", -5);
    b.kv_f32("llama.rope.freq_base", 10000.f);
    b.kv_bool("tokenizer.ggml.add_bos_token", false);
    b.kv_u64("u64", 1ull << 40);
    b.kv_i64("i64", -(1ll << 40));
    b.kv_f64("f64", 0.1);
    b.kv_strings("tokenizer.ggml.tokens", {"<unk>", "a", "", "\xe2\x96\x81the"});
    b.kv_array<std::int32_t>("tokenizer.ggml.token_type", 5, {2, 1, 1, 3});
    b.kv_array<float>("scores", 6, {0.5f, -1.f});
    b.kv_array<std::uint8_t>("bools", 7, {1, 0, 1});
    b.tensor("token_embd.weight", {4, 3}, 0, bytes_of(std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
    b.tensor("f16", {2}, 1, bytes_of(std::vector<std::uint16_t>{0x3C00, 0xC100}));  // 1, -2.5
    b.tensor("bf16", {2}, 30, bytes_of(std::vector<std::uint16_t>{0x3F80, 0x4040}));  // 1, 3
    // Q8_0, one block: d = 0.5, q[j] = j - 16.
    std::vector<std::uint8_t> q8(34);
    const std::uint16_t d = optiq::float_to_f16_bits(0.5f);
    std::memcpy(q8.data(), &d, 2);
    for (int j = 0; j < 32; ++j) q8[2 + j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(j - 16));
    b.tensor("blk.0.q8", {32, 1}, 8, bytes_of(q8));
    return b;
}

TEST(GgufReader, MetadataOfEveryType) {
    for (std::uint32_t version : {2u, 3u}) {
        auto b = sample();
        b.version = version;
        const auto f = parse(b);
        EXPECT_EQ(f.version(), version);
        const auto& m = f.metadata();
        EXPECT_EQ(m.size(), 16u);
        EXPECT_EQ(f.architecture(), "llama");
        EXPECT_EQ(m.get<std::uint8_t>("u8"), 200);
        EXPECT_EQ(m.get<std::int8_t>("i8"), -100);
        EXPECT_EQ(m.get<std::uint16_t>("u16"), 60000);
        EXPECT_EQ(m.get<std::int16_t>("i16"), -30000);
        EXPECT_EQ(m.get<std::uint32_t>("llama.block_count"), 2u);
        EXPECT_EQ(m.get<std::int32_t>("i32"), -5);
        EXPECT_EQ(m.get<float>("llama.rope.freq_base"), 10000.f);
        EXPECT_EQ(m.get<bool>("tokenizer.ggml.add_bos_token"), false);
        EXPECT_EQ(m.get<std::uint64_t>("u64"), 1ull << 40);
        EXPECT_EQ(m.get<std::int64_t>("i64"), -(1ll << 40));
        EXPECT_EQ(m.get<double>("f64"), 0.1);
        EXPECT_EQ(m.get_int("llama.block_count"), 2);
        EXPECT_EQ(m.get_int("i8"), -100);
        EXPECT_EQ(m.get_int("u64"), 1ll << 40);
        EXPECT_EQ(m.get_float("llama.rope.freq_base"), 10000.0);
        EXPECT_EQ(m.get_float("u16"), 60000.0);
        EXPECT_EQ(m.get_int_or("missing", 7), 7);
        EXPECT_EQ(m.get_or<std::string>("missing", "x"), "x");
        EXPECT_EQ(m.get_array<std::string>("tokenizer.ggml.tokens"),
                  (std::vector<std::string>{"<unk>", "a", "", "\xe2\x96\x81the"}));
        EXPECT_EQ(m.get_array<std::int32_t>("tokenizer.ggml.token_type"), (std::vector<std::int32_t>{2, 1, 1, 3}));
        EXPECT_EQ(m.get_array<float>("scores"), (std::vector<float>{0.5f, -1.f}));
        EXPECT_EQ(m.get_array<bool>("bools"), (std::vector<bool>{true, false, true}));
        EXPECT_EQ(m.get_array("tokenizer.ggml.tokens").size(), 4u);
        EXPECT_EQ(m.get_array("tokenizer.ggml.tokens").type, GgufValueType::string);
        EXPECT_EQ(m.entries().front().first, "general.architecture");  // file order kept

        expect_error([&] { (void)m.get<std::string>("llama.block_count"); }, {"t.gguf", "'llama.block_count'", "uint32"});
        expect_error([&] { (void)m.get<std::uint32_t>("nope"); }, {"t.gguf", "'nope'", "missing"});
        expect_error([&] { (void)m.get_int("f64"); }, {"t.gguf", "'f64'", "float64"});
        expect_error([&] { (void)m.get_array("u8"); }, {"t.gguf", "'u8'", "not an array"});
        expect_error([&] { (void)m.get_array<std::uint32_t>("tokenizer.ggml.token_type"); },
                     {"'tokenizer.ggml.token_type'", "int32"});
    }
}

TEST(GgufReader, NestedArrays) {
    GgufBuilder b;
    std::vector<std::byte> v;
    auto put = [&](auto x) {
        const auto* p = reinterpret_cast<const std::byte*>(&x);
        v.insert(v.end(), p, p + sizeof(x));
    };
    put(std::uint32_t{9}), put(std::uint64_t{2});                                    // array of 2 arrays
    put(std::uint32_t{4}), put(std::uint64_t{2}), put(std::uint32_t{1}), put(std::uint32_t{2});
    put(std::uint32_t{8}), put(std::uint64_t{1}), put(std::uint64_t{2}), put('h'), put('i');
    b.kv_raw("nested", 9, v);
    const auto f = parse(b);
    const auto& outer = f.metadata().get_array<GgufArray>("nested");
    ASSERT_EQ(outer.size(), 2u);
    EXPECT_EQ(std::get<std::vector<std::uint32_t>>(outer[0].items), (std::vector<std::uint32_t>{1, 2}));
    EXPECT_EQ(std::get<std::vector<std::string>>(outer[1].items), (std::vector<std::string>{"hi"}));
}

TEST(GgufReader, TensorsShapesAndDequantization) {
    const auto f = parse(sample());
    ASSERT_EQ(f.size(), 4u);
    EXPECT_EQ(f.alignment(), 32u);
    EXPECT_EQ(f.data_offset() % 32, 0u);
    EXPECT_EQ(f.tensors()[0].name, "token_embd.weight");  // file order
    const auto& e = f.at("token_embd.weight");
    EXPECT_EQ(e.ne, (std::vector<std::uint64_t>{4, 3}));
    EXPECT_EQ(e.shape, (std::vector<std::size_t>{3, 4}));  // row-major: ne reversed
    EXPECT_EQ(e.row_length(), 4u);
    EXPECT_EQ(e.rows(), 3u);
    EXPECT_EQ(e.row_bytes(), 16u);
    auto v = e.to_float();
    EXPECT_EQ(v[5], 5.f);
    ASSERT_TRUE(e.view().has_value());
    EXPECT_EQ(e.view()->dtype, DType::f32);
    EXPECT_EQ(e.view()->shape, (std::vector<std::size_t>{3, 4}));
    EXPECT_EQ(f.at("f16").to_float(), (std::vector<float>{1.f, -2.5f}));
    EXPECT_EQ(f.at("bf16").to_float(), (std::vector<float>{1.f, 3.f}));
    const auto& q = f.at("blk.0.q8");
    EXPECT_EQ(q.type, GgmlType::q8_0);
    EXPECT_EQ(q.bytes.size(), 34u);
    EXPECT_FALSE(q.view().has_value());
    v = q.to_float();
    ASSERT_EQ(v.size(), 32u);
    for (int j = 0; j < 32; ++j) EXPECT_EQ(v[j], 0.5f * static_cast<float>(j - 16));
    EXPECT_EQ(f.find("missing"), nullptr);
    expect_error([&] { (void)f.at("missing"); }, {"t.gguf", "'missing'"});
}

TEST(GgufReader, OpensFromDiskMappedOrRead) {
    optiq::io::test::TempDir dir;
    const auto path = dir / "s.gguf";
    optiq::io::test::write_file(path, sample().build());
    for (auto mode : {MappedFile::Mode::automatic, MappedFile::Mode::read_into_memory}) {
        const auto f = GgufFile::open(path, mode);
        EXPECT_EQ(f.path(), path.string());
        EXPECT_EQ(f.at("f16").to_float(), (std::vector<float>{1.f, -2.5f}));
        expect_error([&] { (void)f.metadata().get<float>("u8"); }, {path.string(), "'u8'"});
    }
    expect_error([&] { (void)GgufFile::open(dir / "absent.gguf"); }, {"absent.gguf", "cannot open"});
}

TEST(GgufReader, AlignmentFromMetadata) {
    auto b = sample();
    b.kv_u32("general.alignment", 64);
    b.alignment = 64;
    const auto f = parse(b);
    EXPECT_EQ(f.alignment(), 64u);
    EXPECT_EQ(f.data_offset() % 64, 0u);
    for (const auto& t : f.tensors()) EXPECT_EQ(t.offset % 64, 0u);
    EXPECT_EQ(f.at("f16").to_float(), (std::vector<float>{1.f, -2.5f}));

    auto bad = sample();
    bad.kv_u32("general.alignment", 48);
    expect_error([&] { (void)parse(bad); }, {"t.gguf", "'general.alignment'", "power of two"});
    auto zero = sample();
    zero.kv_u32("general.alignment", 0);
    expect_error([&] { (void)parse(zero); }, {"'general.alignment'"});
    auto typed = sample();
    typed.kv_u64("general.alignment", 32);
    expect_error([&] { (void)parse(typed); }, {"'general.alignment'", "uint64"});
}

TEST(GgufReader, RejectsBadHeaders) {
    auto magic = sample();
    std::memcpy(magic.magic, "GGUG", 4);
    expect_error([&] { (void)parse(magic, "m.gguf"); }, {"m.gguf", "magic"});
    auto v1 = sample();
    v1.version = 1;
    expect_error([&] { (void)parse(v1); }, {"t.gguf", "version 1"});
    auto v4 = sample();
    v4.version = 4;
    expect_error([&] { (void)parse(v4); }, {"t.gguf", "version 4"});
    auto be = sample();
    be.version = 3u << 24;
    expect_error([&] { (void)parse(be); }, {"t.gguf", "big-endian"});
    auto many = sample();
    many.tensor_count_override = 1ull << 60;
    expect_error([&] { (void)parse(many); }, {"t.gguf", "tensor count"});
    auto kvs = sample();
    kvs.kv_count_override = 1ull << 62;
    expect_error([&] { (void)parse(kvs); }, {"t.gguf", "metadata count"});
}

TEST(GgufReader, RejectsBadMetadata) {
    GgufBuilder b;
    b.kv_u32("a", 1);
    b.kv_u32("a", 2);
    expect_error([&] { (void)parse(b); }, {"t.gguf", "'a'", "twice"});

    GgufBuilder t;
    t.kv_raw("weird", 13, {});
    expect_error([&] { (void)parse(t); }, {"t.gguf", "'weird'", "unknown value type 13"});

    GgufBuilder bo;
    bo.kv_raw("flag", 7, {std::byte{2}});
    expect_error([&] { (void)parse(bo); }, {"t.gguf", "'flag'", "bool"});

    GgufBuilder s;
    std::vector<std::byte> len(8, std::byte{0xFF});  // string length 2^64 - 1
    s.kv_raw("s", 8, len);
    expect_error([&] { (void)parse(s); }, {"t.gguf", "'s'", "truncated"});

    GgufBuilder a;
    std::vector<std::byte> arr(12, std::byte{0});
    arr[0] = std::byte{4};                              // uint32 elements
    std::memset(arr.data() + 4, 0xFF, 8);               // 2^64 - 1 of them
    a.kv_raw("arr", 9, arr);
    expect_error([&] { (void)parse(a); }, {"t.gguf", "'arr'", "array length"});

    GgufBuilder at;
    std::vector<std::byte> arr2(12, std::byte{0});
    arr2[0] = std::byte{77};
    at.kv_raw("arr", 9, arr2);
    expect_error([&] { (void)parse(at); }, {"t.gguf", "'arr'", "element type 77"});

    GgufBuilder deep;  // arrays nested 20 deep
    std::vector<std::byte> d;
    for (int i = 0; i < 20; ++i) {
        const std::uint32_t ty = 9;
        const std::uint64_t n = 1;
        d.insert(d.end(), reinterpret_cast<const std::byte*>(&ty), reinterpret_cast<const std::byte*>(&ty) + 4);
        d.insert(d.end(), reinterpret_cast<const std::byte*>(&n), reinterpret_cast<const std::byte*>(&n) + 8);
    }
    d.resize(d.size() + 12, std::byte{0});
    deep.kv_raw("deep", 9, d);
    expect_error([&] { (void)parse(deep); }, {"t.gguf", "'deep'", "nested"});
}

TEST(GgufReader, RejectsBadTensorInfos) {
    auto dup = sample();
    dup.tensor("f16", {2}, 1, bytes_of(std::vector<std::uint16_t>{0, 0}));
    expect_error([&] { (void)parse(dup); }, {"t.gguf", "tensor 'f16'", "twice"});

    auto type = sample();
    type.tensor("odd", {2}, 5, bytes_of(std::vector<std::uint16_t>{0, 0}));  // 4 and 5 were removed types
    expect_error([&] { (void)parse(type); }, {"t.gguf", "tensor 'odd'", "unknown ggml type 5"});

    auto dims = sample();
    dims.tensor("five", {1, 1, 1, 1, 1}, 0, bytes_of(std::vector<float>{1.f}));
    expect_error([&] { (void)parse(dims); }, {"t.gguf", "tensor 'five'", "n_dims 5"});

    auto block = sample();
    block.tensor("q", {16}, 2, std::vector<std::byte>(18));  // Q4_0 rows must be whole blocks of 32
    expect_error([&] { (void)parse(block); }, {"t.gguf", "tensor 'q'", "block size 32"});

    auto overflow = sample();
    overflow.tensor("big", {1ull << 32, 1ull << 32, 4}, 0, {});
    expect_error([&] { (void)parse(overflow); }, {"t.gguf", "tensor 'big'", "overflow"});

    auto misaligned = sample();
    misaligned.tensors[1].offset = 8;
    expect_error([&] { (void)parse(misaligned); }, {"t.gguf", "tensor 'f16'", "alignment"});

    auto overlap = sample();
    overlap.tensors[2].offset = 32;  // onto f16's place
    expect_error([&] { (void)parse(overlap); }, {"t.gguf", "overlaps tensor"});

    auto past = sample();
    past.tensor("far", {4}, 0, bytes_of(std::vector<float>{1, 2, 3, 4}));
    past.tensors.back().offset = 1ull << 40;
    // The builder cannot place data 1 TB out: build the rest, then point "far" there.
    past.tensors.back().data.clear();
    expect_error([&] { (void)parse(past); }, {"t.gguf", "tensor 'far'", "runs past the end"});
}

TEST(GgufReader, TensorByteSizesThatOverflowAreRejected) {
    // F32 with ne = [2^62] is 2^64 bytes: the size once wrapped to 0, the tensor parsed with an empty
    // span and to_float() threw std::length_error for 2^62 floats.
    struct Case {
        std::vector<std::uint64_t> ne;
        std::uint32_t type;
    };
    const Case wraps[] = {{{1ull << 62}, 0},                  // F32: 2^64 bytes
                          {{1ull << 31, 1ull << 31}, 0},      // the same count from two dims
                          {{1ull << 61, 2}, 28},               // F64: 2^65 bytes
                          {{1ull << 62, 1}, 27}};              // I64 (quantized types take fewer bytes than elements)
    for (const Case& c : wraps) {
        auto b = sample();
        b.tensor("huge", c.ne, c.type, {});
        // First, at offset 0, where a wrapped size of 0 bytes fits the data section.
        std::rotate(b.tensors.rbegin(), b.tensors.rbegin() + 1, b.tensors.rend());
        expect_error([&] { (void)parse(b); }, {"t.gguf", "tensor 'huge'", "more than 2^64 bytes"});
    }
    // Sizes that fit in 64 bits but not in the file are still refused before anything is allocated.
    auto big = sample();
    big.tensor("big", {1ull << 61}, 1, {});  // F16: 2^62 bytes
    expect_error([&] { (void)parse(big); }, {"t.gguf", "tensor 'big'", "runs past the end"});
    // Huge dims with a zero dim hold no elements: valid, and nothing is allocated for them.
    auto empty = sample();
    empty.tensor("empty", {1ull << 40, 0, 1ull << 20}, 0, {});
    std::rotate(empty.tensors.rbegin(), empty.tensors.rbegin() + 1, empty.tensors.rend());  // first, at offset 0
    const auto f = parse(empty);
    EXPECT_EQ(f.at("empty").numel(), 0u);
    EXPECT_TRUE(f.at("empty").to_float().empty());
}

TEST(GgufReader, EveryTruncationIsAFormatErrorNamingTheFile) {
    const auto full = sample().build();
    ASSERT_NO_THROW((void)GgufFile::from_bytes(full, "full.gguf"));
    std::size_t header_errors = 0;
    for (std::size_t n = 0; n < full.size(); ++n) {
        std::vector<std::byte> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
        try {
            (void)GgufFile::from_bytes(std::move(cut), "cut.gguf");
            ADD_FAILURE() << "prefix of " << n << " bytes accepted";
        } catch (const format_error& e) {
            const std::string msg = e.what();
            EXPECT_NE(msg.find("cut.gguf: "), std::string::npos) << msg;
            if (msg.find("truncated at") != std::string::npos) ++header_errors;
        }
    }
    EXPECT_GT(header_errors, full.size() / 4);  // most cuts land in the header and say which field
}

TEST(GgufReader, TruncationMessagesNameTheField) {
    GgufBuilder b;
    b.kv_string("general.architecture", "llama");
    const auto full = b.build();
    auto cut_at = [&](std::size_t n) {
        return GgufFile::from_bytes(std::vector<std::byte>(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n)),
                                    "c.gguf");
    };
    expect_error([&] { (void)cut_at(6); }, {"c.gguf", "truncated at version"});
    expect_error([&] { (void)cut_at(12); }, {"c.gguf", "truncated at tensor count"});
    expect_error([&] { (void)cut_at(60); }, {"c.gguf", "truncated at metadata 'general.architecture' value"});
}

TEST(GgufPermute, MatchesTheNumpyFormula) {
    // hd = 8, one head, rows r0..r7: gguf = hf.reshape(1, 2, 4, in).swapaxes(1, 2) = r0 r4 r1 r5 r2 r6 r3 r7.
    const std::size_t cols = 3;
    std::vector<float> hf(8 * cols);
    std::iota(hf.begin(), hf.end(), 0.f);
    std::vector<float> gguf(hf.size());
    permute_qk_rows_hf_to_gguf(std::as_bytes(std::span(hf)), std::as_writable_bytes(std::span(gguf)), 1, cols * 4);
    const int order[] = {0, 4, 1, 5, 2, 6, 3, 7};
    for (int r = 0; r < 8; ++r)
        for (std::size_t c = 0; c < cols; ++c) EXPECT_EQ(gguf[r * cols + c], hf[order[r] * cols + c]);
    EXPECT_EQ(permute_qk_rows_gguf_to_hf(gguf, 1, cols), hf);

    // Several heads (3 heads of 4 rows): each head permuted on its own.
    std::vector<float> h3(12 * 2);
    std::iota(h3.begin(), h3.end(), 0.f);
    std::vector<float> g3(h3.size());
    permute_qk_rows_hf_to_gguf(std::as_bytes(std::span(h3)), std::as_writable_bytes(std::span(g3)), 3, 8);
    EXPECT_EQ(g3[2 * 2], h3[1 * 2]);        // head 0: r0 r2 r1 r3
    EXPECT_EQ(g3[5 * 2], h3[6 * 2]);        // head 1: r4 r6 r5 r7
    EXPECT_EQ(permute_qk_rows_gguf_to_hf(g3, 3, 2), h3);
    expect_error<optiq::shape_error>([&] { (void)permute_qk_rows_gguf_to_hf(g3, 5, 2); }, {"5 heads"});
}

TEST(GgufNames, MapToHuggingFaceNames) {
    EXPECT_EQ(gguf_to_hf_name("token_embd.weight"), "model.embed_tokens.weight");
    EXPECT_EQ(gguf_to_hf_name("output_norm.weight"), "model.norm.weight");
    EXPECT_EQ(gguf_to_hf_name("output.weight"), "lm_head.weight");
    EXPECT_EQ(gguf_to_hf_name("blk.0.attn_q.weight"), "model.layers.0.self_attn.q_proj.weight");
    EXPECT_EQ(gguf_to_hf_name("blk.12.attn_k.bias"), "model.layers.12.self_attn.k_proj.bias");
    EXPECT_EQ(gguf_to_hf_name("blk.3.attn_output.weight"), "model.layers.3.self_attn.o_proj.weight");
    EXPECT_EQ(gguf_to_hf_name("blk.3.ffn_norm.weight"), "model.layers.3.post_attention_layernorm.weight");
    EXPECT_EQ(gguf_to_hf_name("blk.3.ffn_down.weight"), "model.layers.3.mlp.down_proj.weight");
    EXPECT_EQ(gguf_to_hf_name("blk.7.attn_k_norm.weight"), "model.layers.7.self_attn.k_norm.weight");
    EXPECT_FALSE(gguf_to_hf_name("blk.x.attn_q.weight").has_value());
    EXPECT_FALSE(gguf_to_hf_name("blk..attn_q.weight").has_value());
    EXPECT_FALSE(gguf_to_hf_name("blk.1.ffn_gate_inp.weight").has_value());  // MoE router: not in the table
    EXPECT_FALSE(gguf_to_hf_name("rope_freqs").has_value());
}

// ---- the real SmolLM2-135M-Instruct Q4_1 file, fetched by scripts/fetch_models.sh ----

TEST(GgufSmolLM2, RealFile) {
    const auto path = optiq::io::test::cache_dir() / "SmolLM2-135M-Instruct.Q4_1.gguf";
    if (!std::filesystem::exists(path)) {
        if (optiq::io::test::ci()) FAIL() << path << " is missing (CI=true): run scripts/fetch_models.sh";
        GTEST_SKIP() << path << " is missing: run scripts/fetch_models.sh to fetch it";
    }
    const auto f = GgufFile::open(path);
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.architecture(), "llama");
    const auto& m = f.metadata();
    EXPECT_EQ(m.get<std::uint32_t>("llama.block_count"), 30u);
    EXPECT_EQ(m.get<std::uint32_t>("llama.embedding_length"), 576u);
    EXPECT_EQ(m.get<std::uint32_t>("llama.attention.head_count"), 9u);
    EXPECT_EQ(m.get<std::uint32_t>("llama.attention.head_count_kv"), 3u);
    EXPECT_EQ(m.get<std::uint32_t>("llama.feed_forward_length"), 1536u);
    EXPECT_EQ(m.get<std::string>("tokenizer.ggml.pre"), "smollm");
    EXPECT_EQ(m.get<bool>("tokenizer.ggml.add_bos_token"), false);
    const auto& tokens = m.get_array<std::string>("tokenizer.ggml.tokens");
    ASSERT_EQ(tokens.size(), 49152u);
    EXPECT_EQ(tokens[0], "<|endoftext|>");
    EXPECT_EQ(m.get_array<std::int32_t>("tokenizer.ggml.token_type").size(), 49152u);
    EXPECT_GT(m.get_array<std::string>("tokenizer.ggml.merges").size(), 40000u);
    EXPECT_NE(m.get<std::string>("tokenizer.chat_template").find("<|im_start|>"), std::string::npos);

    ASSERT_EQ(f.size(), 272u);  // 30 * 9 + token_embd + output_norm
    std::map<GgmlType, int> types;
    for (const auto& t : f.tensors()) ++types[t.type];
    EXPECT_EQ(types[GgmlType::f32], 61);
    EXPECT_EQ(types[GgmlType::q4_1], 210);
    EXPECT_EQ(types[GgmlType::q8_0], 1);
    const auto& emb = f.at("token_embd.weight");
    EXPECT_EQ(emb.type, GgmlType::q8_0);
    EXPECT_EQ(emb.shape, (std::vector<std::size_t>{49152, 576}));
    const auto& q = f.at("blk.0.attn_q.weight");
    EXPECT_EQ(q.type, GgmlType::q4_1);
    EXPECT_EQ(q.shape, (std::vector<std::size_t>{576, 576}));
    EXPECT_EQ(f.at("blk.0.attn_k.weight").shape, (std::vector<std::size_t>{192, 576}));
    EXPECT_EQ(f.at("blk.29.ffn_down.weight").shape, (std::vector<std::size_t>{576, 1536}));
    // Dequantized weights are finite and of a sensible magnitude; Q4_1 values sit on each block's grid.
    const auto w = q.to_float();
    double sq = 0;
    for (float x : w) {
        ASSERT_TRUE(std::isfinite(x));
        sq += double(x) * x;
    }
    const double rms = std::sqrt(sq / static_cast<double>(w.size()));
    EXPECT_GT(rms, 0.01);
    EXPECT_LT(rms, 1.0);
    EXPECT_EQ(w[0], -0.09631348f);  // gguf.quants.dequantize gives -0.09631348 (tests/interop checks every value)
    const auto norm = f.at("blk.0.attn_norm.weight");
    ASSERT_TRUE(norm.view().has_value());
    EXPECT_EQ(norm.shape, (std::vector<std::size_t>{576}));
    // Every tensor name maps to a Hugging Face name, each once.
    std::set<std::string> hf_names;
    for (const auto& t : f.tensors()) {
        const auto n = gguf_to_hf_name(t.name);
        ASSERT_TRUE(n.has_value()) << t.name;
        hf_names.insert(*n);
    }
    EXPECT_EQ(hf_names.size(), 272u);
    EXPECT_TRUE(hf_names.count("model.layers.29.mlp.up_proj.weight"));
    // Restoring HF order is a permutation of rows: the multiset of rows is unchanged.
    const auto hf = permute_qk_rows_gguf_to_hf(w, 9, 576);
    EXPECT_EQ(hf[0], w[0]);                   // row 0 stays
    EXPECT_EQ(hf[32 * 576], w[1 * 576]);      // HF row 32 (second half of head 0) was GGUF row 1
}

}  // namespace
