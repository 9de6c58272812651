#include "optiq/precondition/identity.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "optiq/core/rng.hpp"
#include "optiq/precondition/concepts.hpp"

namespace {

static_assert(optiq::Preconditioner<optiq::Identity>);

TEST(Identity, CopiesAndHandlesAliasing) {
    optiq::Rng rng(7);
    for (const std::size_t d : {1u, 2u, 80u, 128u}) {
        const optiq::Identity id(d);
        EXPECT_EQ(id.dim(), d);
        std::vector<float> x(d);
        for (auto& v : x) v = static_cast<float>(rng.normal());
        std::vector<float> y(d, -1.0f);
        id.forward(x, y);
        EXPECT_EQ(y, x);
        std::fill(y.begin(), y.end(), -1.0f);
        id.inverse(x, y);
        EXPECT_EQ(y, x);
        std::vector<float> z = x;
        id.forward(z, z);
        EXPECT_EQ(z, x);
        id.inverse(z, z);
        EXPECT_EQ(z, x);
    }
}

TEST(Identity, RejectsBadShapes) {
    EXPECT_THROW(optiq::Identity(0), optiq::shape_error);
    const optiq::Identity id(4);
    std::vector<float> a(4), b(3);
    EXPECT_THROW(id.forward(a, b), optiq::shape_error);
    EXPECT_THROW(id.forward(b, a), optiq::shape_error);
    EXPECT_THROW(id.inverse(a, b), optiq::shape_error);
    EXPECT_THROW(id.inverse(b, a), optiq::shape_error);
}

}  // namespace
