// Per-vector encode/decode into caller storage (quant/concepts.hpp VectorCodec): a record is
// exactly the batch encoding's record, decode_vector equals the batch decode, and one scratch is
// reused across vectors of different content (no state leaks from one vector to the next).
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "optiq/core/rng.hpp"
#include "optiq/quant/methods/kivi.hpp"
#include "optiq/quant/methods/mlx_affine.hpp"
#include "optiq/quant/methods/polar.hpp"
#include "optiq/quant/methods/qjl.hpp"
#include "optiq/quant/methods/rvq.hpp"
#include "optiq/quant/methods/turboquant.hpp"

namespace optiq {
namespace {

std::vector<float> gaussian_rows(std::size_t n, std::size_t d, std::uint64_t seed) {
    Rng rng(seed);
    std::vector<float> x(n * d);
    for (std::size_t i = 0; i < x.size(); ++i) {
        // rows of very different norms, so a stale norm or scale would show
        x[i] = static_cast<float>(rng.normal()) * static_cast<float>(1 + (i / d) % 5) * ((i / d) % 2 ? 0.01f : 3.0f);
    }
    return x;
}

template <VectorCodec Q>
void expect_per_vector_matches_batch(const Q& q, std::size_t n = 9) {
    SCOPED_TRACE(q.name());
    const std::size_t d = q.dim(), w = q.words_per_vector(), s = q.side_per_vector();
    const auto x = gaussian_rows(n, d, 77);
    const EncodedBatch b = q.encode(x);
    std::vector<float> batch_out(n * d);
    q.decode(b, batch_out);

    auto scratch = q.make_scratch();
    std::vector<std::uint32_t> words(w, 0xDEADBEEFu);
    std::vector<float> side(s, -7.0f);
    std::vector<float> out(d);
    for (std::size_t i = 0; i < n; ++i) {
        q.encode_vector(std::span<const float>(x).subspan(i * d, d), words, side, scratch);
        for (std::size_t j = 0; j < w; ++j) ASSERT_EQ(words[j], b.words[i * w + j]) << "vector " << i << " word " << j;
        for (std::size_t j = 0; j < s; ++j) ASSERT_EQ(side[j], b.side[i * s + j]) << "vector " << i << " side " << j;
        q.decode_vector(words, side, out, scratch);
        for (std::size_t j = 0; j < d; ++j) ASSERT_EQ(out[j], batch_out[i * d + j]) << "vector " << i << " coord " << j;
    }
}

TEST(VectorCodec, TurboQuantMseRecordsAreTheBatchRecords) {
    expect_per_vector_matches_batch(TurboQuantMSE<4>(128, 5));
    expect_per_vector_matches_batch(make_turboquant_mse(64, 3, 6));
    expect_per_vector_matches_batch(TurboQuantMSE<2, HaarRotation>(32, 7));
}

TEST(VectorCodec, MlxAffineRecordsAreTheBatchRecords) { expect_per_vector_matches_batch(make_mlx_affine(128, 4, 32)); }

TEST(VectorCodec, TurboQuantProdRecordsAreTheBatchRecords) {
    expect_per_vector_matches_batch(TurboQuantProd<>(128, 3, 8));
    expect_per_vector_matches_batch(TurboQuantProd<>(64, 1, 9));          // QJL only
    expect_per_vector_matches_batch(TurboQuantProd<>(64, 4, 10, 40));     // m != d
}

TEST(VectorCodec, RvqRecordsAreTheBatchRecords) {
    expect_per_vector_matches_batch(RVQ<>(128, 2, 11));
    expect_per_vector_matches_batch(RVQ<>(64, 3, 12));
}

TEST(VectorCodec, QjlRecordsAreTheBatchRecords) {
    expect_per_vector_matches_batch(QJL(128, 13));
    expect_per_vector_matches_batch(QJL(64, 14, 100));
}

TEST(VectorCodec, PolarRecordsAreTheBatchRecords) {
    expect_per_vector_matches_batch(PolarQuant<>(128, PolarQuant<>::paper_bits(), 15));
    expect_per_vector_matches_batch(PolarQuant<>(64, 3, 2, 16));
}

TEST(VectorCodec, KiviValuesRecordsAreTheBatchRecords) {
    expect_per_vector_matches_batch(KiviValues(128, 2, 32));
    expect_per_vector_matches_batch(KiviValues(64, 4, 16));
}

TEST(VectorCodec, KiviKeysBlocksAreTheBatchEncoding) {
    const std::size_t d = 64, g = 8, n = 20;  // blocks of 8, 8 and a partial block of 4
    const KiviKeys q(d, 3, g);
    const auto x = gaussian_rows(n, d, 21);
    const EncodedBatch b = q.encode(x);
    std::vector<float> batch_out(n * d);
    q.decode(b, batch_out);
    auto scratch = q.make_scratch();
    const std::size_t w = q.words_per_vector();
    std::vector<std::uint32_t> words(g * w);
    std::vector<float> params(q.block_params());
    ASSERT_EQ(params.size(), 2 * d);
    std::vector<float> out(g * d);
    for (std::size_t t0 = 0, blk = 0; t0 < n; t0 += g, ++blk) {
        const std::size_t t = std::min(g, n - t0);
        const auto wspan = std::span<std::uint32_t>(words).subspan(0, t * w);
        q.encode_block(std::span<const float>(x).subspan(t0 * d, t * d), wspan, params, scratch);
        for (std::size_t j = 0; j < t * w; ++j) ASSERT_EQ(words[j], b.words[t0 * w + j]) << "block " << blk;
        for (std::size_t j = 0; j < 2 * d; ++j) ASSERT_EQ(params[j], b.shared[blk * 2 * d + j]) << "block " << blk;
        q.decode_block(wspan, params, std::span<float>(out).subspan(0, t * d), scratch);
        for (std::size_t j = 0; j < t * d; ++j) ASSERT_EQ(out[j], batch_out[t0 * d + j]) << "block " << blk;
    }
}

TEST(VectorCodec, QuantizerPerVectorWithoutScratchAgrees) {
    const auto q = make_turboquant_mse(64, 4, 3);
    const auto x = gaussian_rows(1, 64, 5);
    std::vector<std::uint32_t> w1(q.words_per_vector()), w2(q.words_per_vector());
    std::vector<float> s1(q.side_per_vector()), s2(q.side_per_vector());
    auto scratch = q.make_scratch();
    q.encode_vector(x, w1, s1);
    q.encode_vector(x, w2, s2, scratch);
    EXPECT_EQ(w1, w2);
    EXPECT_EQ(s1, s2);
    // The rotated-space reconstruction of PolarQuant, rotated back, is its decode.
    const PolarQuant<> p(64, 2, 3, 4);
    auto ps = p.make_scratch();
    std::vector<std::uint32_t> pw(p.words_per_vector());
    std::vector<float> pr(p.side_per_vector()), y(64), back(64), dec(64);
    p.encode_vector(x, pw, pr, ps);
    std::vector<std::uint8_t> codes(32);
    p.reconstruct_rotated(pw, pr, y, codes);
    p.preconditioner().inverse(y, back);
    p.decode_vector(pw, pr, dec, ps);
    EXPECT_EQ(back, dec);
}

}  // namespace
}  // namespace optiq
