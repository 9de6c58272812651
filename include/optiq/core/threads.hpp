#pragma once
// A small fixed thread pool with a blocking parallel_for: the range [0, n) is cut into one
// contiguous chunk per thread (the caller runs chunk 0), so a matmul splits its output rows
// without any per-element dispatch. No global pool: the owner (a Transformer, a benchmark) holds one.
//
//   ThreadPool pool(2);
//   pool.parallel_for(rows, [&](std::size_t begin, std::size_t end, std::size_t worker) { ... });
//
// A decode step calls parallel_for a few hundred times, each job a few microseconds long, so the
// hand-off must cost far less than waking a sleeping thread (a futex round trip, 5-50 us). Idle
// workers therefore spin on the job counter for a bounded time (ThreadPoolOptions::spin_us; the
// caller spins the same way on the completion counter) and only then sleep on a condition
// variable. The bound keeps a loaded machine usable: a spinning thread gives its core back
// (std::this_thread::yield after the first few hundred polls, then sleeps), so threads that
// outnumber the free cores degrade to the blocking pool instead of burning each other's time
// slices the way an unbounded spin-wait does.
//
// An exception thrown by a chunk is rethrown in the caller after every chunk has finished (the
// first one, if several throw). parallel_for must not be called from two threads at once, nor
// from inside a chunk (nested calls run inline instead, on the calling worker).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#endif

namespace optiq {

struct ThreadPoolOptions {
    /// Microseconds an idle thread polls for the next job (and the caller for the last chunk)
    /// before it sleeps; 0 sleeps at once (the plain blocking pool).
    std::uint32_t spin_us = 200;
};

namespace detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/// Polls `done()` for up to `spin_us`: pause instructions first, then yields of the time slice
/// (so that on an oversubscribed core the thread being waited for gets to run). True when done()
/// became true while polling.
template <class Done>
bool spin_until(Done&& done, std::uint32_t spin_us) {
    if (spin_us == 0) return done();
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + std::chrono::microseconds(spin_us);
    for (std::uint32_t i = 0;; ++i) {
        if (done()) return true;
        if (i < 256) {
            cpu_relax();
            continue;
        }
        if ((i & 15) == 0 && clock::now() >= deadline) return done();
        if (i >= 2048) std::this_thread::yield();
        else cpu_relax();
    }
}

}  // namespace detail

class ThreadPool {
public:
    /// n_threads threads in all, the calling thread included (0: std::thread::hardware_concurrency()).
    explicit ThreadPool(std::size_t n_threads = 0, ThreadPoolOptions options = {}) : options_(options) {
        if (n_threads == 0) n_threads = std::max<std::size_t>(1, std::thread::hardware_concurrency());
        workers_.reserve(n_threads - 1);
        for (std::size_t i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { run(i); });
    }
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;
    ~ThreadPool() {
        {
            std::lock_guard lock(mutex_);
            stop_.store(true, std::memory_order_seq_cst);
        }
        wake_.notify_all();
        for (auto& t : workers_) t.join();
    }

    [[nodiscard]] std::size_t size() const noexcept { return workers_.size() + 1; }
    [[nodiscard]] const ThreadPoolOptions& options() const noexcept { return options_; }

    /// Calls f(begin, end, worker) on disjoint chunks covering [0, n); chunks are at least `grain`
    /// long, so small ranges run on fewer threads (inline when one chunk suffices).
    template <class F>
    void parallel_for(std::size_t n, F&& f, std::size_t grain = 1) {
        if (n == 0) return;
        grain = std::max<std::size_t>(grain, 1);
        const std::size_t chunks = std::min(size(), (n + grain - 1) / grain);
        if (chunks <= 1 || in_job_.load(std::memory_order_relaxed)) {
            f(std::size_t{0}, n, std::size_t{0});
            return;
        }
        struct Ctx {
            F* f;
            std::size_t n, chunks;
        } ctx{&f, n, chunks};
        run_job(&ctx, [](void* c, std::size_t i) {
            const auto& x = *static_cast<Ctx*>(c);
            if (i < x.chunks) (*x.f)(x.n * i / x.chunks, x.n * (i + 1) / x.chunks, i);
        });
    }

    /// Calls f(worker) once on every thread of the pool (the caller is worker 0): for work that
    /// splits itself, e.g. rows taken from a shared counter.
    template <class F>
    void run_on_all(F&& f) {
        if (size() == 1 || in_job_.load(std::memory_order_relaxed)) {
            f(std::size_t{0});
            return;
        }
        run_job(&f, [](void* c, std::size_t i) { (*static_cast<F*>(c))(i); });
    }

private:
    using JobFn = void (*)(void*, std::size_t);

    void run_job(void* ctx, JobFn fn) {
        in_job_.store(true, std::memory_order_relaxed);
        job_ctx_ = ctx;
        job_fn_ = fn;
        error_ = nullptr;
        pending_.store(workers_.size(), std::memory_order_relaxed);
        // seq_cst pairs with the sleeper's seq_cst increment of sleepers_ followed by its load of
        // generation_: either it sees the new job or this thread sees it asleep and wakes it.
        generation_.fetch_add(1, std::memory_order_seq_cst);
        if (sleepers_.load(std::memory_order_seq_cst) > 0) {
            std::lock_guard lock(mutex_);
            wake_.notify_all();
        }
        try {
            fn(ctx, 0);
        } catch (...) {
            record(std::current_exception());
        }
        const auto all_done = [this] { return pending_.load(std::memory_order_acquire) == 0; };
        if (!detail::spin_until(all_done, options_.spin_us)) {
            std::unique_lock lock(mutex_);
            caller_waiting_.store(true, std::memory_order_seq_cst);
            done_.wait(lock, all_done);
            caller_waiting_.store(false, std::memory_order_relaxed);
        }
        in_job_.store(false, std::memory_order_relaxed);
        if (error_) {
            auto e = error_;
            error_ = nullptr;
            std::rethrow_exception(e);
        }
    }

    void record(std::exception_ptr e) {
        std::lock_guard lock(mutex_);
        if (!error_) error_ = std::move(e);
    }

    void run(std::size_t index) {
        std::uint64_t seen = 0;
        for (;;) {
            const auto has_job = [&] {
                return generation_.load(std::memory_order_acquire) != seen || stop_.load(std::memory_order_acquire);
            };
            if (!detail::spin_until(has_job, options_.spin_us)) {
                std::unique_lock lock(mutex_);
                sleepers_.fetch_add(1, std::memory_order_seq_cst);
                wake_.wait(lock, [&] {
                    return generation_.load(std::memory_order_seq_cst) != seen || stop_.load(std::memory_order_seq_cst);
                });
                sleepers_.fetch_sub(1, std::memory_order_relaxed);
            }
            if (stop_.load(std::memory_order_acquire)) return;
            seen = generation_.load(std::memory_order_acquire);
            try {
                job_fn_(job_ctx_, index);
            } catch (...) {
                record(std::current_exception());
            }
            if (pending_.fetch_sub(1, std::memory_order_seq_cst) == 1 && caller_waiting_.load(std::memory_order_seq_cst)) {
                std::lock_guard lock(mutex_);
                done_.notify_one();
            }
        }
    }

    ThreadPoolOptions options_;
    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable wake_, done_;
    void* job_ctx_ = nullptr;
    JobFn job_fn_ = nullptr;
    std::atomic<std::size_t> pending_{0};
    std::atomic<std::uint64_t> generation_{0};
    std::atomic<int> sleepers_{0};
    std::atomic<bool> caller_waiting_{false};
    std::atomic<bool> stop_{false};
    std::exception_ptr error_;
    std::atomic<bool> in_job_{false};  // a job is running: nested calls run inline
};

}  // namespace optiq
