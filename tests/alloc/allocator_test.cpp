#include "optiq/alloc/allocator.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "alloc_test_util.hpp"
#include "optiq/alloc/solver/exact.hpp"
#include "optiq/alloc/solver/greedy.hpp"

namespace {

using namespace optiq::alloc;
namespace fs = std::filesystem;

/// A sensitivity that counts its measurements.
struct CountingSensitivity {
    std::string id;
    int* calls;
    [[nodiscard]] std::string cache_key() const { return id; }
    [[nodiscard]] CostTable measure(std::span<const int> bits) const {
        ++*calls;
        return optiq::alloc::test::random_table(42, 21, std::vector<int>(bits.begin(), bits.end()));
    }
};
static_assert(optiq::Sensitivity<CountingSensitivity>);

struct TempFile {
    fs::path path;
    TempFile() {
        std::random_device rd;
        path = fs::temp_directory_path() / ("optiq_alloc_test_" + std::to_string(rd()) + ".json");
    }
    ~TempFile() {
        std::error_code ec;
        fs::remove(path, ec);
    }
};

TEST(Allocator, CacheIsReusedWhileKeyIsUnchanged) {
    TempFile f;
    int calls = 0;
    using A = Allocator<CountingSensitivity, ExactKnapsack>;
    A a1({"model-x", &calls}, {}, {{4, 8}, f.path});
    const Allocation r1 = a1.allocate(5.0);
    EXPECT_EQ(calls, 1);
    EXPECT_FALSE(a1.from_cache());
    ASSERT_TRUE(fs::exists(f.path));
    (void)a1.allocate(6.0);
    EXPECT_EQ(calls, 1);  // measured once per allocator

    A a2({"model-x", &calls}, {}, {{4, 8}, f.path});
    const Allocation r2 = a2.allocate(5.0);
    EXPECT_EQ(calls, 1);  // read back, not measured
    EXPECT_TRUE(a2.from_cache());
    EXPECT_EQ(r1.bits, r2.bits);
    EXPECT_EQ(a1.table().to_json(), a2.table().to_json());  // doubles round trip exactly
    EXPECT_EQ(a2.bit_map(5.0).size(), 21u);
    EXPECT_EQ(a2.bit_map(5.0).at("model.layers.0.self_attn.q_proj"), r1.bits[0]);

    // Another model identity or other candidate bits: measured again, cache rewritten.
    A a3({"model-y", &calls}, {}, {{4, 8}, f.path});
    (void)a3.table();
    EXPECT_EQ(calls, 2);
    EXPECT_FALSE(a3.from_cache());
    A a4({"model-y", &calls}, {}, {{2, 4, 8}, f.path});
    (void)a4.table();
    EXPECT_EQ(calls, 3);
    A a5({"model-y", &calls}, {}, {{2, 4, 8}, f.path});
    (void)a5.table();
    EXPECT_EQ(calls, 3);
    EXPECT_TRUE(a5.from_cache());
}

TEST(Allocator, GreedyComposesAndCorruptCacheIsAnError) {
    TempFile f;
    {
        std::ofstream(f.path) << "{\"optiq_cost_table\": 1, \"key\": ";
    }
    int calls = 0;
    Allocator<CountingSensitivity, GreedyKnapsack> a({"m", &calls}, GreedyKnapsack{}, {{4, 8}, f.path});
    EXPECT_THROW((void)a.table(), optiq::format_error);
    Allocator<CountingSensitivity, GreedyKnapsack> b({"m", &calls}, GreedyKnapsack{}, {{4, 8}, {}});
    const Allocation r = b.allocate(4.5);
    EXPECT_GE(r.bpw, 4.5);
}

TEST(CostTable, JsonRoundTripAndValidation) {
    const CostTable t = optiq::alloc::test::random_table(3, 9, {2, 4, 8});
    const CostTable u = CostTable::from_json(nlohmann::json::parse(t.to_json().dump()));
    ASSERT_EQ(u.size(), t.size());
    for (std::size_t i = 0; i < t.size(); ++i) {
        EXPECT_EQ(u.unit(i).name, t.unit(i).name);
        EXPECT_EQ(u.unit(i).param_count, t.unit(i).param_count);
        EXPECT_EQ(u.unit(i).is_protected, t.unit(i).is_protected);
        EXPECT_EQ(u.unit(i).kind, t.unit(i).kind);
        EXPECT_EQ(u.costs(i), t.costs(i));
    }
    EXPECT_THROW(CostTable({4, 4}), optiq::config_error);
    CostTable v({4, 8});
    EXPECT_THROW(v.add(make_unit("a", 0, 1), {1, 0}), optiq::value_error);
    EXPECT_THROW(v.add(make_unit("a", 1, 1), {1}), optiq::shape_error);
    EXPECT_EQ(block_index("model.layers.12.mlp.up_proj"), 12);
    EXPECT_EQ(block_index("language_model.model.layers.3.self_attn.q_proj"), 3);
    EXPECT_EQ(block_index("lm_head"), -1);
    EXPECT_EQ(block_index("model.sublayers.3.x"), -1);
    EXPECT_TRUE(is_protected_name("model.embed_tokens", 30));
    EXPECT_TRUE(is_protected_name("model.layers.29.mlp.up_proj", 30));
    EXPECT_FALSE(is_protected_name("model.layers.28.mlp.up_proj", 30));
}

}  // namespace
