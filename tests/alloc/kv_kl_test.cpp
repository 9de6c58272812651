#include "optiq/alloc/sensitivity/kv_kl.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "../model/model_test_util.hpp"
#include "optiq/alloc/allocator.hpp"
#include "optiq/alloc/concepts.hpp"
#include "optiq/alloc/solver/exact.hpp"
#include "optiq/alloc/solver/greedy.hpp"
#include "optiq/tokenizer/any_tokenizer.hpp"

namespace {

using namespace optiq::alloc;
using optiq::model::TokenId;
namespace mt = optiq::model::test;

static_assert(optiq::Sensitivity<KVKLSensitivity>);

// In-distribution text for stories260K (TinyStories), long enough for windows that cross the
// 64-token prefill chunk.
const char* kText =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw "
    "a big, red ball. She wanted to play with it. She ran to the ball and kicked it. The ball went up high in the "
    "sky. Lily was happy. Then a small dog came to the park. The dog was brown and had a long tail. Lily said, "
    "\"Hello, dog! Do you want to play with me?\" The dog barked and wagged its tail. They played with the ball all "
    "day. When the sun went down, Lily's mom called her home. Lily said goodbye to the dog and went home. She ate "
    "her dinner and went to bed. She dreamed about the dog and the red ball. The next day, Tom came to play with "
    "Lily. Tom had a toy car. The car was blue and fast. Lily and Tom took turns with the car. They laughed and "
    "had fun together. Tom said, \"Thank you for playing with me, Lily.\" Lily smiled and said, \"You are my best "
    "friend, Tom.\"";

std::vector<TokenId> story_tokens() {
    static const auto tok = optiq::tokenizer::load_tokenizer(mt::stories_bin(), mt::stories_tok());
    return tok.encode(kText);
}

std::vector<std::vector<TokenId>> calibration(std::size_t n = 3, std::size_t len = 96) {
    const auto ids = story_tokens();
    return kv_calibration_windows(ids, n, len, TokenId{1});
}

KVKLSensitivity::Options opts(std::string method, KLPositions pos, PrefixReuse reuse = PrefixReuse::automatic) {
    KVKLSensitivity::Options o;
    o.method = std::move(method);
    o.group_size = 8;  // stories260K's head_dim is 8
    o.positions = pos;
    o.reuse = reuse;
    o.progress = false;
    return o;
}

TEST(KVKLSensitivity, LogitsKlOfKnownDistributions) {
    // p = (1/2, 1/2), q = (1/4, 3/4): KL = 1/2 ln 2 + 1/2 ln(2/3) = 1/2 ln(4/3).
    const float p[] = {0.0f, 0.0f}, q[] = {0.0f, std::log(3.0f)};
    EXPECT_NEAR(KVKLSensitivity::logits_kl(p, q), 0.5 * std::log(4.0 / 3.0), 1e-7);
    // Softmax is shift invariant: a constant added to every logit changes nothing.
    const float p2[] = {100.0f, 100.0f};
    EXPECT_NEAR(KVKLSensitivity::logits_kl(p2, q), 0.5 * std::log(4.0 / 3.0), 1e-7);
    EXPECT_EQ(KVKLSensitivity::logits_kl(q, q), 0.0);
    const float three[] = {0, 0, 0};
    EXPECT_THROW((void)KVKLSensitivity::logits_kl(p, three), optiq::shape_error);
}

TEST(KVKLSensitivity, CalibrationWindowsSpreadOverTheText) {
    std::vector<TokenId> ids(100);
    for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<TokenId>(i + 10);
    const auto w = kv_calibration_windows(ids, 3, 20, TokenId{1});
    ASSERT_EQ(w.size(), 3u);
    // Starts 0, 40, 80: first at the start, last ending at the end.
    EXPECT_EQ(w[0][0], 1);
    EXPECT_EQ(w[0][1], 11);
    EXPECT_EQ(w[1][1], 51);
    EXPECT_EQ(w[2][1], 91);
    EXPECT_EQ(w[2].back(), 109);
    for (const auto& x : w) EXPECT_EQ(x.size(), 20u);
    EXPECT_EQ(kv_calibration_windows(ids, 1, 100)[0], ids);
    EXPECT_THROW((void)kv_calibration_windows(ids, 2, 101), optiq::value_error);
    EXPECT_THROW((void)kv_calibration_windows(ids, 0, 10), optiq::config_error);
}

TEST(KVKLSensitivity, F32CandidateIsExactlyZeroAndUnitsAreKvLayers) {
    auto m = mt::stories();
    const std::vector<int> bits = {2, 4, 8, 32};
    for (KLPositions pos : {KLPositions::last, KLPositions::all}) {
        const KVKLSensitivity s(m, "stories260K", calibration(), opts("affine", pos));
        const CostTable t = s.measure(bits);
        ASSERT_EQ(t.size(), m.config().n_layers);
        for (std::size_t l = 0; l < t.size(); ++l) {
            const Unit& u = t.unit(l);
            EXPECT_EQ(u.name, "model.layers." + std::to_string(l) + ".self_attn");
            EXPECT_EQ(u.kind, UnitKind::kv_layer);
            EXPECT_EQ(u.block, static_cast<int>(l));
            EXPECT_FALSE(u.is_protected);
            // Keys and values of 4 KV heads of 8: 64 cache elements per token.
            EXPECT_EQ(u.param_count, 64u);
            EXPECT_EQ(t.cost(l, 3), 0.0) << "layer " << l << " positions " << kl_positions_name(pos);
            EXPECT_GT(t.cost(l, 0), 0.0) << "layer " << l;
        }
    }
}

TEST(KVKLSensitivity, KlFallsAsBitsGrowInEveryLayer) {
    auto m = mt::stories();
    const std::vector<int> bits = {2, 4, 8, 16, 32};
    for (const char* method : {"affine", "tq_mse"}) {
        const KVKLSensitivity s(m, "stories260K", calibration(), opts(method, KLPositions::all));
        const CostTable t = s.measure(bits);
        for (std::size_t l = 0; l < t.size(); ++l) {
            for (std::size_t c = 0; c + 1 < bits.size(); ++c)
                EXPECT_GT(t.cost(l, c), t.cost(l, c + 1))
                    << method << " layer " << l << ": " << bits[c] << " vs " << bits[c + 1] << " bits";
            EXPECT_EQ(t.cost(l, 4), 0.0);
        }
    }
}

TEST(KVKLSensitivity, PrefixReuseEqualsFullRerun) {
    auto m = mt::stories();
    const std::vector<int> bits = {2, 4, 8};
    for (KLPositions pos : {KLPositions::last, KLPositions::all}) {
        const KVKLSensitivity reuse(m, "stories260K", calibration(), opts("tq_mse", pos, PrefixReuse::always));
        const KVKLSensitivity full(m, "stories260K", calibration(), opts("tq_mse", pos, PrefixReuse::never));
        const CostTable a = reuse.measure(bits), b = full.measure(bits);
        ASSERT_EQ(a.size(), b.size());
        for (std::size_t l = 0; l < a.size(); ++l)
            for (std::size_t c = 0; c < bits.size(); ++c)
                EXPECT_NEAR(a.cost(l, c), b.cost(l, c), 1e-6)
                    << "layer " << l << " bits " << bits[c] << " positions " << kl_positions_name(pos);
        EXPECT_EQ(reuse.cache_key(), full.cache_key());  // the path changes no result
    }
    // The cost model: stories260K's head (512 x 64) outweighs one layer's linears at the last
    // position, so layer 0 reruns whole and later layers reuse; all positions always reuse.
    const KVKLSensitivity autom(m, "stories260K", calibration(), opts("affine", KLPositions::last));
    EXPECT_FALSE(autom.reuses_prefix(0, 96));
    EXPECT_TRUE(autom.reuses_prefix(1, 96));
    const KVKLSensitivity all(m, "stories260K", calibration(), opts("affine", KLPositions::all));
    EXPECT_TRUE(all.reuses_prefix(0, 96));
}

TEST(KVKLSensitivity, MeasureLeavesTheReferenceModel) {
    auto m = mt::stories();
    const auto ids = story_tokens();
    const std::vector<TokenId> prompt(ids.begin(), ids.begin() + 40);
    const std::vector<float> before = m.logits_all(prompt);
    const KVKLSensitivity s(m, "stories260K", calibration(2, 48), opts("affine", KLPositions::last));
    (void)s.measure(std::vector<int>{2, 4});
    EXPECT_EQ(m.logits_all(prompt), before);
}

TEST(KVKLSensitivity, TableIsReusedFromDiskWhileTheKeyHolds) {
    auto m = mt::stories();
    optiq::io::test::TempDir dir;
    const auto path = dir / "kv_table.json";
    Allocator<KVKLSensitivity, GreedyKnapsack>::Options ao;
    ao.candidate_bits = {4, 8};
    ao.cache_path = path;
    const auto make = [&](std::string method, std::vector<std::vector<TokenId>> calib) {
        return Allocator<KVKLSensitivity, GreedyKnapsack>(
            KVKLSensitivity(m, "stories260K", std::move(calib), opts(std::move(method), KLPositions::last)),
            GreedyKnapsack(kv_greedy_options()), ao);
    };
    auto first = make("affine", calibration());
    const CostTable measured = first.table();
    EXPECT_FALSE(first.from_cache());
    ASSERT_TRUE(std::filesystem::exists(path));

    auto second = make("affine", calibration());
    EXPECT_EQ(second.table().to_json(), measured.to_json());
    EXPECT_TRUE(second.from_cache());

    // Another method or other calibration tokens name another table: measured again.
    auto other_method = make("tq_mse", calibration());
    (void)other_method.table();
    EXPECT_FALSE(other_method.from_cache());
    auto other_calib = make("tq_mse", calibration(2, 96));
    (void)other_calib.table();
    EXPECT_FALSE(other_calib.from_cache());
    KVKLSensitivity::Options g16 = opts("affine", KLPositions::last);
    g16.group_size = 4;
    EXPECT_NE(KVKLSensitivity(m, "stories260K", calibration(), g16).cache_key(),
              KVKLSensitivity(m, "stories260K", calibration(), opts("affine", KLPositions::last)).cache_key());
    EXPECT_NE(KVKLSensitivity(m, "stories260K", calibration(), opts("affine", KLPositions::all)).cache_key(),
              KVKLSensitivity(m, "stories260K", calibration(), opts("affine", KLPositions::last)).cache_key());
    EXPECT_NE(KVKLSensitivity(m, "other", calibration(), opts("affine", KLPositions::last)).cache_key(),
              KVKLSensitivity(m, "stories260K", calibration(), opts("affine", KLPositions::last)).cache_key());
}

TEST(KVKLSensitivity, GreedyAllocationBecomesAKvConfig) {
    auto m = mt::stories();
    const KVKLSensitivity s(m, "stories260K", calibration(), opts("tq_mse", KLPositions::all));
    const CostTable t = s.measure(std::vector<int>{4, 8});
    // mlx-optiq's KV rule: mean bits >= target, reached by the best dKL/dbits upgrades.
    const Allocation a = GreedyKnapsack(kv_greedy_options()).solve(t, 5.0);
    EXPECT_GE(a.bpw, 5.0);
    int upgraded = 0;
    for (int b : a.bits) upgraded += b == 8;
    EXPECT_EQ(upgraded, 2);  // 5 layers: (4*3 + 8*2)/5 = 5.6 is the first mean >= 5
    // The two upgraded layers are the two with the largest KL drop.
    std::vector<double> drop(t.size());
    for (std::size_t l = 0; l < t.size(); ++l) drop[l] = t.cost(l, 0) - t.cost(l, 1);
    for (std::size_t l = 0; l < t.size(); ++l)
        for (std::size_t k = 0; k < t.size(); ++k)
            if (a.bits[l] == 8 && a.bits[k] == 4) {
                EXPECT_GE(drop[l], drop[k]) << l << " vs " << k;
            }

    const optiq::kv::KVConfig cfg = kv_config_from_allocation(t, a, "tq_mse", 8);
    ASSERT_EQ(cfg.layers.size(), t.size());
    for (std::size_t l = 0; l < t.size(); ++l) {
        EXPECT_EQ(cfg.layers[l].layer_idx, static_cast<int>(l));
        EXPECT_EQ(cfg.layers[l].bits, a.bits[l]);
        EXPECT_EQ(cfg.layers[l].method, "tq_mse");
    }
    EXPECT_DOUBLE_EQ(cfg.mean_bits(), a.bpw);
    EXPECT_EQ(optiq::kv::parse_kv_config(optiq::kv::to_json(cfg)), cfg);
    // affine stays implicit (mlx-optiq's files carry no method); 16 and 32 bits are full precision.
    Allocation full = a;
    full.bits.assign(t.size(), 4);
    full.bits[0] = 32;
    const auto affine = kv_config_from_allocation(t, full, "affine", 64);
    EXPECT_FALSE(affine.layers[1].method.has_value());
    EXPECT_EQ(affine.layers[0].bits, 0);
    EXPECT_EQ(affine.layers[1].group_size, 64u);

    // The exact solver stays within the budget and is no worse than the greedy at its own bpw.
    const Allocation e = ExactKnapsack().solve(t, a.bpw);
    EXPECT_LE(e.bpw, a.bpw);
    EXPECT_LE(e.cost, a.cost + 1e-12);
}

TEST(KVKLSensitivity, SeparateKeyAndValueUnitsBecomeKAndVBits) {
    auto m = mt::stories();
    KVKLSensitivity::Options o = opts("affine", KLPositions::all);
    o.separate_kv = true;
    const KVKLSensitivity s(m, "stories260K", calibration(), o);
    const KVKLSensitivity joint(m, "stories260K", calibration(), opts("affine", KLPositions::all));
    EXPECT_NE(s.cache_key(), joint.cache_key());
    const std::vector<int> bits = {2, 8, 32};
    const CostTable t = s.measure(bits);
    const CostTable both = joint.measure(bits);
    const std::size_t L = m.config().n_layers;
    ASSERT_EQ(t.size(), 2 * L);
    for (std::size_t l = 0; l < L; ++l) {
        const Unit& k = t.unit(2 * l);
        const Unit& v = t.unit(2 * l + 1);
        EXPECT_EQ(k.name, "model.layers." + std::to_string(l) + ".self_attn.keys");
        EXPECT_EQ(v.name, "model.layers." + std::to_string(l) + ".self_attn.values");
        EXPECT_EQ(kv_unit_part(k.name), KVPart::keys);
        EXPECT_EQ(kv_unit_part(v.name), KVPart::values);
        EXPECT_EQ(k.block, static_cast<int>(l));
        EXPECT_EQ(k.param_count, 32u);  // half of the layer's 64 elements per token
        // Each half alone costs something at 2 bits, less at 8, nothing at f32; the two halves
        // are distinct runs (different caches), so their costs differ.
        for (std::size_t i : {2 * l, 2 * l + 1}) {
            EXPECT_GT(t.cost(i, 0), 0.0) << t.unit(i).name;
            EXPECT_GT(t.cost(i, 0), t.cost(i, 1)) << t.unit(i).name;
            EXPECT_EQ(t.cost(i, 2), 0.0) << t.unit(i).name;
        }
        EXPECT_NE(t.cost(2 * l, 0), t.cost(2 * l + 1, 0)) << "layer " << l;
        EXPECT_GT(both.cost(l, 0), 0.0);
    }
    // The caches measured: one part quantized, the other f16.
    EXPECT_EQ(s.layer_config(2, 4, KVPart::keys).value_bits(), 0);
    EXPECT_EQ(s.layer_config(2, 4, KVPart::keys).key_bits(), 4);
    EXPECT_EQ(s.layer_config(2, 4, KVPart::values).key_bits(), 0);

    // Keys at 8 and values at 2 in layer 1, f16 keys in layer 3: one entry per layer with k/v bits.
    Allocation a;
    a.bits.assign(t.size(), 2);
    a.bits[2] = 8;
    a.bits[6] = 16;
    const optiq::kv::KVConfig cfg = kv_config_from_allocation(t, a, "tq_mse", 8);
    ASSERT_EQ(cfg.layers.size(), L);
    EXPECT_EQ(cfg.layers[1].layer_idx, 1);
    EXPECT_EQ(cfg.layers[1].key_bits(), 8);
    EXPECT_EQ(cfg.layers[1].value_bits(), 2);
    EXPECT_EQ(cfg.layers[1].bits, 8);  // what a reader of "bits" alone (mlx-optiq) gets: the wider part
    EXPECT_EQ(cfg.layers[3].key_bits(), 0);
    EXPECT_EQ(cfg.layers[3].bits, 0);
    EXPECT_EQ(cfg.layers[0].bits, 2);
    EXPECT_EQ(optiq::kv::parse_kv_config(optiq::kv::to_json(cfg)), cfg);
    const nlohmann::ordered_json js = kv_sensitivity_json(t);
    EXPECT_TRUE(js.contains("0.keys"));
    EXPECT_TRUE(js.contains("4.values"));
    // A key unit without its value unit is refused.
    CostTable half(bits);
    half.add(t.unit(0), t.costs(0));
    Allocation one;
    one.bits = {4};
    EXPECT_THROW((void)kv_config_from_allocation(half, one, "affine", 8), optiq::config_error);
}

TEST(KVKLSensitivity, SensitivityJsonAndSpread) {
    CostTable t({4, 8});
    const double kl4[] = {5.6, 0.1, 0.3, 0.2, 0.05};
    for (std::size_t l = 0; l < 5; ++l) {
        Unit u;
        u.name = kv_unit_name(l);
        u.kind = UnitKind::kv_layer;
        u.block = static_cast<int>(l);
        u.param_count = 64;
        t.add(u, {kl4[l], kl4[l] / 10});
    }
    const auto j = kv_sensitivity_json(t);
    ASSERT_EQ(j.size(), 5u);
    EXPECT_EQ(j.begin().key(), "0");
    EXPECT_DOUBLE_EQ(j.at("0").at("4").get<double>(), 5.6);
    EXPECT_DOUBLE_EQ(j.at("4").at("8").get<double>(), 0.005);
    const KVSpread s = kv_sensitivity_spread(t);
    EXPECT_EQ(s.max_unit, 0u);
    EXPECT_DOUBLE_EQ(s.median, 0.2);
    EXPECT_DOUBLE_EQ(s.ratio, 28.0);
    // Even count: the mean of the two middle values.
    CostTable t4({4});
    for (std::size_t l = 0; l < 4; ++l) {
        Unit u;
        u.name = kv_unit_name(l);
        u.param_count = 1;
        t4.add(u, {static_cast<double>(l + 1)});
    }
    EXPECT_DOUBLE_EQ(kv_sensitivity_spread(t4).median, 2.5);
}

TEST(KVKLSensitivity, BadSettingsFailBeforeAnyRun) {
    auto m = mt::stories();
    const auto calib = calibration(1, 32);
    EXPECT_THROW(KVKLSensitivity(m, "s", calib, opts("int4", KLPositions::last)), optiq::config_error);
    EXPECT_THROW(KVKLSensitivity(m, "s", {}, opts("affine", KLPositions::last)), optiq::config_error);
    EXPECT_THROW(KVKLSensitivity(m, "s", std::vector<std::vector<TokenId>>(1), opts("affine", KLPositions::last)), optiq::value_error);
    const KVKLSensitivity s(m, "s", calib, opts("affine", KLPositions::last));
    EXPECT_THROW((void)s.measure(std::vector<int>{4, 9}), optiq::config_error);
    EXPECT_THROW((void)s.measure(std::vector<int>{4, 12}), optiq::config_error);
    const KVKLSensitivity rvq(m, "s", calib, opts("rvq", KLPositions::last));
    try {
        (void)rvq.measure(std::vector<int>{3, 4});
        ADD_FAILURE() << "odd rvq bits accepted";
    } catch (const optiq::config_error& e) {
        EXPECT_NE(std::string(e.what()).find("rvq"), std::string::npos) << e.what();
    }
    KVKLSensitivity::Options g64 = opts("affine", KLPositions::last);
    g64.group_size = 64;  // does not divide head_dim 8
    try {
        (void)KVKLSensitivity(m, "s", calib, g64).measure(std::vector<int>{4, 8});
        ADD_FAILURE() << "group 64 on head_dim 8 accepted";
    } catch (const optiq::config_error& e) {
        EXPECT_NE(std::string(e.what()).find("group_size"), std::string::npos) << e.what();
    }
    EXPECT_THROW((void)s.layer_config(0, 32), optiq::config_error);
    EXPECT_EQ(s.layer_config(3, 16).bits, 0);
    EXPECT_EQ(s.layer_config(3, 16).layer_idx, 3);
}

}  // namespace
