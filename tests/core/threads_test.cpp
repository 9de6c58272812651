#include "optiq/core/threads.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

namespace optiq {
namespace {

TEST(ThreadPool, ParallelForCoversTheRangeOnceInContiguousChunks) {
    for (std::size_t threads : {1u, 2u, 3u}) {
        ThreadPool pool(threads);
        EXPECT_EQ(pool.size(), threads);
        for (std::size_t n : {0u, 1u, 2u, 5u, 1000u}) {
            std::vector<int> hits(n);
            std::atomic<std::size_t> calls{0};
            pool.parallel_for(n, [&](std::size_t b, std::size_t e, std::size_t worker) {
                EXPECT_LT(b, e);
                EXPECT_LT(worker, threads);
                for (std::size_t i = b; i < e; ++i) ++hits[i];
                ++calls;
            });
            EXPECT_EQ(hits, std::vector<int>(n, 1)) << threads << " threads, n " << n;
            EXPECT_EQ(calls.load(), std::min(n, threads));
        }
    }
}

TEST(ThreadPool, GrainKeepsSmallRangesInline) {
    ThreadPool pool(2);
    std::size_t calls = 0;
    pool.parallel_for(10, [&](std::size_t b, std::size_t e, std::size_t w) {
        EXPECT_EQ(b, 0u);
        EXPECT_EQ(e, 10u);
        EXPECT_EQ(w, 0u);
        ++calls;
    }, 16);
    EXPECT_EQ(calls, 1u);
}

TEST(ThreadPool, ExceptionsReachTheCallerAndThePoolStaysUsable) {
    ThreadPool pool(2);
    EXPECT_THROW(pool.parallel_for(100, [](std::size_t b, std::size_t, std::size_t) {
        if (b > 0) throw std::runtime_error("worker");
    }), std::runtime_error);
    EXPECT_THROW(pool.parallel_for(100, [](std::size_t b, std::size_t, std::size_t) {
        if (b == 0) throw std::runtime_error("caller");
    }), std::runtime_error);
    std::atomic<int> sum{0};
    for (int rep = 0; rep < 200; ++rep)
        pool.parallel_for(64, [&](std::size_t b, std::size_t e, std::size_t) { sum += static_cast<int>(e - b); });
    EXPECT_EQ(sum.load(), 200 * 64);
}

TEST(ThreadPool, NestedCallsRunInline) {
    ThreadPool pool(2);
    std::atomic<int> inner{0};
    pool.parallel_for(4, [&](std::size_t b, std::size_t e, std::size_t) {
        for (std::size_t i = b; i < e; ++i)
            pool.parallel_for(8, [&](std::size_t b2, std::size_t e2, std::size_t) { inner += static_cast<int>(e2 - b2); });
    });
    EXPECT_EQ(inner.load(), 32);
}

}  // namespace
}  // namespace optiq
