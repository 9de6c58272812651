#include "optiq/backend/simd/arch.hpp"

#include <gtest/gtest.h>

#include <string_view>

#include "optiq/backend/tags.hpp"

namespace optiq::backend::test {
namespace {

// A kernel overloaded for some tags only: richer tags reach the nearest base by conversion.
std::string_view which(arch::scalar) { return "scalar"; }
#if defined(OPTIQ_SIMD_X86)
OPTIQ_TARGET_AVX2 std::string_view which(arch::avx2) { return "avx2"; }
#endif

TEST(Arch, DispatchCallsTheBestSupportedTag) {
    const auto best = arch::best_arch();
    const auto name = arch::dispatch([](auto tag) { return decltype(tag)::name; });
    EXPECT_EQ(name, arch::arch_name(best));
    // A requested arch above what the CPU has falls back; scalar is always honoured.
    EXPECT_EQ(arch::dispatch([](auto tag) { return decltype(tag)::name; }, arch::Arch::scalar), "scalar");
#if defined(OPTIQ_SIMD_X86)
    if (best == arch::Arch::avx512) {
        EXPECT_EQ(arch::dispatch([](auto tag) { return decltype(tag)::name; }, arch::Arch::avx2), "avx2");
        EXPECT_EQ(arch::dispatch([](auto tag) { return which(tag); }), "avx2");  // avx512 -> avx2 overload
    }
    if (best != arch::Arch::scalar) {
        EXPECT_EQ(arch::dispatch([](auto tag) { return which(tag); }), "avx2");
    }
    if (best == arch::Arch::scalar) {
        EXPECT_EQ(arch::dispatch([](auto tag) { return decltype(tag)::name; }, arch::Arch::avx512), "scalar");
    }
#endif
    EXPECT_EQ(arch::dispatch([](auto tag) { return which(tag); }, arch::Arch::scalar), "scalar");
}

TEST(Arch, BackendTagsAreBackends) {
    static_assert(Backend<reference> && Backend<simd>);
    static_assert(!Backend<int>);
    EXPECT_EQ(arch::arch_name(arch::Arch::neon), "neon");
}

}  // namespace
}  // namespace optiq::backend::test
