#pragma once
// A small fixed thread pool with a blocking parallel_for: the range [0, n) is cut into one
// contiguous chunk per thread (the caller runs chunk 0), so a matmul splits its output rows
// without any per-element dispatch. No global pool: the owner (a Transformer, a benchmark) holds one.
//
//   ThreadPool pool(2);
//   pool.parallel_for(rows, [&](std::size_t begin, std::size_t end, std::size_t worker) { ... });
//
// An exception thrown by a chunk is rethrown in the caller after every chunk has finished (the
// first one, if several throw). parallel_for must not be called from two threads at once, nor
// from inside a chunk (nested calls run inline instead, on the calling worker).
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace optiq {

class ThreadPool {
public:
    /// n_threads threads in all, the calling thread included (0: std::thread::hardware_concurrency()).
    explicit ThreadPool(std::size_t n_threads = 0) {
        if (n_threads == 0) n_threads = std::max<std::size_t>(1, std::thread::hardware_concurrency());
        workers_.reserve(n_threads - 1);
        for (std::size_t i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { run(i); });
    }
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;
    ~ThreadPool() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        wake_.notify_all();
        for (auto& t : workers_) t.join();
    }

    [[nodiscard]] std::size_t size() const noexcept { return workers_.size() + 1; }

    /// Calls f(begin, end, worker) on disjoint chunks covering [0, n); chunks are at least `grain`
    /// long, so small ranges run on fewer threads (inline when one chunk suffices).
    template <class F>
    void parallel_for(std::size_t n, F&& f, std::size_t grain = 1) {
        if (n == 0) return;
        grain = std::max<std::size_t>(grain, 1);
        const std::size_t chunks = std::min(size(), (n + grain - 1) / grain);
        if (chunks <= 1 || in_job_) {
            f(std::size_t{0}, n, std::size_t{0});
            return;
        }
        const auto chunk = [n, chunks](std::size_t i) { return n * i / chunks; };
        std::function<void(std::size_t)> job = [&](std::size_t i) {
            if (i < chunks) f(chunk(i), chunk(i + 1), i);
        };
        in_job_ = true;
        {
            std::lock_guard lock(mutex_);
            job_ = &job;
            pending_ = workers_.size();
            error_ = nullptr;
            ++generation_;
        }
        wake_.notify_all();
        try {
            job(0);
        } catch (...) {
            std::lock_guard lock(mutex_);
            if (!error_) error_ = std::current_exception();
        }
        std::unique_lock lock(mutex_);
        done_.wait(lock, [this] { return pending_ == 0; });
        job_ = nullptr;
        in_job_ = false;
        if (error_) {
            auto e = error_;
            error_ = nullptr;
            std::rethrow_exception(e);
        }
    }

private:
    void run(std::size_t index) {
        std::size_t seen = 0;
        for (;;) {
            std::function<void(std::size_t)>* job = nullptr;
            {
                std::unique_lock lock(mutex_);
                wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
                if (stop_) return;
                seen = generation_;
                job = job_;
            }
            try {
                (*job)(index);
            } catch (...) {
                std::lock_guard lock(mutex_);
                if (!error_) error_ = std::current_exception();
            }
            {
                std::lock_guard lock(mutex_);
                if (--pending_ == 0) done_.notify_one();
            }
        }
    }

    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable wake_, done_;
    std::function<void(std::size_t)>* job_ = nullptr;
    std::size_t pending_ = 0;
    std::size_t generation_ = 0;
    std::exception_ptr error_;
    bool stop_ = false;
    std::atomic<bool> in_job_{false};  // a job is running: nested calls run inline
};

}  // namespace optiq
