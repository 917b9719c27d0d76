// thread_pool.hpp — the threads that parallel regions run on when OpenMP is absent (Apple clang,
// -DNANOGPT_USE_OPENMP=OFF): a small pool of std::threads that plays the part of an OpenMP team.
//
// A training step runs hundreds of short parallel regions, so starting threads per region would
// cost more than the regions themselves. The workers are created once (more are added only when
// a larger team is asked for) and then wait for work: first spinning for about a millisecond,
// because the next region usually follows within microseconds, then parking on a condition
// variable so an idle program leaves the cores alone. That is what OpenMP runtimes do by default;
// OMP_WAIT_POLICY=PASSIVE skips the spinning here as it does there, and so does a pool with more
// threads than the hardware has (spinning would then take the core from a thread with work, the
// case libgomp also stops spinning for).
// A region runs task(tid, nt) on the caller (tid 0) and nt - 1 workers; barrier() is the twin of
// `#pragma omp barrier`. One region runs at a time: a region started inside a region, or by a
// second application thread while one runs, gets a team of one, as nested OpenMP regions do.
// Used only through parallel.hpp.
#pragma once

#include <algorithm>           // std::max
#include <atomic>              // std::atomic
#include <chrono>              // std::chrono::steady_clock
#include <condition_variable>  // std::condition_variable
#include <cstdint>             // std::uint64_t
#include <cstdlib>             // std::getenv, std::atoi
#include <cstring>             // std::strcmp
#include <memory>              // std::unique_ptr
#include <mutex>               // std::mutex, std::unique_lock
#include <new>                 // std::bad_alloc
#include <system_error>        // std::system_error
#include <thread>              // std::thread, std::this_thread::yield
#include <vector>              // std::vector

namespace nanogpt::detail {

/// Tells the core this thread is spin-waiting (x86 `pause`, Arm `yield`), which frees the
/// execution resources for the other hardware thread and saves power.
inline void cpu_relax() {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_ia32_pause();
#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
    asm volatile("yield");
#endif
}

class ThreadPool {
public:
    using Task = void (*)(const void* context, int tid, int nt);

    ThreadPool() {
        const char* policy = std::getenv("OMP_WAIT_POLICY");
        passive_ = policy != nullptr && (std::strcmp(policy, "PASSIVE") == 0 ||
                                         std::strcmp(policy, "passive") == 0);
    }
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;
    ~ThreadPool() {
        stopping_.store(true);
        for (auto& w : workers_) w->go.fetch_add(1);
        { std::lock_guard<std::mutex> lock(park_mutex_); }
        park_cv_.notify_all();
        for (auto& w : workers_) w->thread.join();
    }

    /// True on a pool worker, and on the thread that started a region while the region runs.
    static bool in_region() { return in_region_flag(); }

    /// Runs task(context, tid, nt) for tid in [0, nt) at once, the caller taking tid 0, and
    /// returns when all have finished. nt is `threads`, or 1 when the pool is busy or nested, or
    /// fewer when the system refuses to create threads. Never throws.
    void run(int threads, Task task, const void* context) {
        if (threads <= 1 || in_region()) return task(context, 0, 1);
        std::unique_lock<std::mutex> busy(run_mutex_, std::try_to_lock);
        if (!busy.owns_lock()) return task(context, 0, 1);
        const int nt = std::min(threads, grow(threads - 1) + 1);
        if (nt <= 1) return task(context, 0, 1);
        task_ = task;
        context_ = context;
        team_ = nt;
        pending_.store(nt - 1);
        for (int w = 0; w < nt - 1; ++w) workers_[static_cast<std::size_t>(w)]->go.fetch_add(1);
        if (parked_.load() > 0) {  // see worker_loop for why this cannot miss a sleeper
            { std::lock_guard<std::mutex> lock(park_mutex_); }
            park_cv_.notify_all();
        }
        in_region_flag() = true;
        task(context, 0, nt);
        in_region_flag() = false;
        for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins)
            spins < 4096 ? cpu_relax() : std::this_thread::yield();
    }

    /// Waits until every member of the running region has reached the barrier. Writes made
    /// before it are visible to all members after it.
    void barrier() {
        const std::uint64_t phase = barrier_phase_.load(std::memory_order_acquire);
        if (barrier_count_.fetch_add(1, std::memory_order_acq_rel) + 1 == team_) {
            barrier_count_.store(0, std::memory_order_relaxed);
            barrier_phase_.store(phase + 1, std::memory_order_release);
            return;
        }
        for (int spins = 0; barrier_phase_.load(std::memory_order_acquire) == phase; ++spins)
            spins < 4096 ? cpu_relax() : std::this_thread::yield();
    }

private:
    struct Worker {
        alignas(64) std::atomic<std::uint64_t> go{0};  // bumped once per region it is part of
        std::thread thread;
    };

    static bool& in_region_flag() {
        thread_local bool flag = false;
        return flag;
    }

    // Makes sure `wanted` workers exist; returns how many do (fewer only if thread creation
    // failed). Called by the region's owner only, so workers_ never changes under a region.
    int grow(int wanted) {
        while (static_cast<int>(workers_.size()) < wanted) {
            try {
                auto w = std::make_unique<Worker>();
                Worker* self = w.get();
                workers_.push_back(std::move(w));
                try {
                    self->thread = std::thread([this, self, index = int(workers_.size())] {
                        worker_loop(*self, index);
                    });
                } catch (const std::system_error&) {
                    workers_.pop_back();
                    break;
                }
            } catch (const std::bad_alloc&) {
                break;
            }
        }
        const unsigned hardware = std::thread::hardware_concurrency();
        if (hardware != 0 && workers_.size() + 1 > hardware) oversubscribed_.store(true);
        return static_cast<int>(workers_.size());
    }

    // Parking: the owner bumps `go` and then reads parked_; a worker raises parked_ and then
    // reads `go` (all sequentially consistent). So either the worker sees the new `go` and does
    // not sleep, or the owner sees it parked and notifies, after taking the mutex the worker
    // holds until it is inside wait().
    void worker_loop(Worker& self, int tid) {
        in_region_flag() = true;  // a region started from inside a task runs on one thread
        std::uint64_t seen = 0;
        for (;;) {
            if (!passive_ && !oversubscribed_.load(std::memory_order_relaxed)) {
                const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1);
                for (int spins = 1; self.go.load(std::memory_order_acquire) == seen; ++spins) {
                    cpu_relax();
                    if (spins % 256 == 0 && std::chrono::steady_clock::now() > until) break;
                }
            }
            if (self.go.load() == seen) {
                std::unique_lock<std::mutex> lock(park_mutex_);
                parked_.fetch_add(1);
                park_cv_.wait(lock, [&] { return self.go.load() != seen; });
                parked_.fetch_sub(1);
            }
            seen = self.go.load(std::memory_order_acquire);
            if (stopping_.load()) return;
            task_(context_, tid, team_);
            pending_.fetch_sub(1, std::memory_order_release);
        }
    }

    std::vector<std::unique_ptr<Worker>> workers_;
    std::mutex run_mutex_;  // held by the thread whose region is running
    std::mutex park_mutex_;
    std::condition_variable park_cv_;
    std::atomic<int> parked_{0};
    std::atomic<int> pending_{0};  // workers of the running region not finished yet
    std::atomic<bool> stopping_{false};
    std::atomic<bool> oversubscribed_{false};  // more threads than hardware threads
    bool passive_ = false;
    // The running region, written by its owner before the workers' `go` is bumped (release)
    // and read by them after they see it (acquire); not touched again until all have finished.
    Task task_ = nullptr;
    const void* context_ = nullptr;
    int team_ = 1;
    std::atomic<int> barrier_count_{0};
    std::atomic<std::uint64_t> barrier_phase_{0};
};

/// The process's pool, created on first use.
inline ThreadPool& thread_pool() {
    static ThreadPool pool;
    return pool;
}

}  // namespace nanogpt::detail
