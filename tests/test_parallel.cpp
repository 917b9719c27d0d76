// Tests for detail/parallel.hpp and the std::thread pool under it (detail/thread_pool.hpp):
// OpenMP's static split, teams of the size asked for, every tid once, barriers that hold, many
// short regions in a row, nested regions and regions from two application threads at once,
// thread-count changes. The pool is tested directly in every build; the [pool] cases are the
// ones CI also runs under ThreadSanitizer.
#include <catch2/catch.hpp>

#include <algorithm>  // std::count, std::max
#include <atomic>     // std::atomic
#include <cstdint>    // std::int64_t
#include <functional> // std::ref
#include <string>     // std::string
#include <thread>     // std::thread
#include <vector>     // std::vector

#include "nanogpt/detail/parallel.hpp"
#include "nanogpt/detail/thread_pool.hpp"

namespace {

using nanogpt::detail::ThreadPool;

// Runs fn(tid, nt) on `pool` through the same type-erased entry parallel.hpp uses.
template <class Fn>
void run_on(ThreadPool& pool, int threads, const Fn& fn) {
    pool.run(
        threads,
        [](const void* context, int tid, int nt) { (*static_cast<const Fn*>(context))(tid, nt); },
        &fn);
}

// Restores the thread count a test changed.
struct ThreadCountGuard {
    int saved = nanogpt::detail::max_threads();
    ~ThreadCountGuard() { nanogpt::detail::set_threads(saved); }
};

}  // namespace

TEST_CASE("static_share splits like OpenMP's schedule(static)", "[parallel][pool]") {
    using nanogpt::detail::static_share;
    std::int64_t b = 0, e = 0;
    // 10 iterations over 3 threads: the first n % nt threads take one more.
    static_share(10, 0, 3, b, e);
    CHECK((b == 0 && e == 4));
    static_share(10, 1, 3, b, e);
    CHECK((b == 4 && e == 7));
    static_share(10, 2, 3, b, e);
    CHECK((b == 7 && e == 10));
    static_share(2, 2, 3, b, e);  // more threads than iterations: an empty share
    CHECK(b == e);
    for (std::int64_t n : {0, 1, 7, 64, 1001}) {
        for (int nt : {1, 2, 3, 8}) {
            std::int64_t next = 0, largest = 0, smallest = n;
            for (int t = 0; t < nt; ++t) {
                static_share(n, t, nt, b, e);
                INFO("n " << n << ", thread " << t << " of " << nt);
                CHECK(b == next);  // contiguous, in tid order
                next = e;
                largest = std::max(largest, e - b);
                smallest = std::min(smallest, e - b);
            }
            CHECK(next == n);
            CHECK(largest - smallest <= 1);
        }
    }
}

TEST_CASE("thread pool: a region runs every tid exactly once on distinct threads", "[pool]") {
    ThreadPool pool;
    for (int threads : {1, 2, 3, 5}) {
        std::vector<int> hits(8, 0), team(8, 0);
        std::vector<std::thread::id> who(8);
        run_on(pool, threads, [&](int tid, int nt) {
            ++hits[tid];
            team[tid] = nt;
            who[tid] = std::this_thread::get_id();
        });
        INFO(threads << " threads");
        for (int t = 0; t < 8; ++t) CHECK(hits[t] == (t < threads ? 1 : 0));
        for (int t = 0; t < threads; ++t) CHECK(team[t] == threads);
        CHECK(who[0] == std::this_thread::get_id());  // the caller is tid 0
        for (int t = 1; t < threads; ++t)
            for (int u = 0; u < t; ++u) CHECK(who[t] != who[u]);
    }
}

TEST_CASE("thread pool: a thousand short regions in a row, team sizes changing", "[pool]") {
    ThreadPool pool;
    std::vector<std::int64_t> per_tid(4, 0);
    std::int64_t expected_total = 0;
    for (int r = 0; r < 1000; ++r) {
        const int threads = 1 + r % 4;
        expected_total += threads;
        run_on(pool, threads, [&](int tid, int nt) {
            if (nt == threads) per_tid[tid] += 1;  // each tid writes only its own slot
        });
    }
    std::int64_t total = 0;
    for (auto n : per_tid) total += n;
    CHECK(total == expected_total);
    CHECK(per_tid[0] == 1000);
    CHECK(per_tid[3] == 250);
}

TEST_CASE("thread pool: barriers order the phases of a region", "[pool]") {
    ThreadPool pool;
    constexpr int kPhases = 300;
    for (int threads : {2, 3, 4}) {
        std::vector<int> slot(static_cast<std::size_t>(kPhases * threads), -1);
        std::atomic<int> wrong{0};
        run_on(pool, threads, [&](int tid, int nt) {
            for (int phase = 0; phase < kPhases; ++phase) {
                slot[static_cast<std::size_t>(phase * nt + tid)] = phase;
                pool.barrier();
                // After the barrier every member's write of this phase must be visible.
                for (int u = 0; u < nt; ++u)
                    if (slot[static_cast<std::size_t>(phase * nt + u)] != phase) ++wrong;
                pool.barrier();  // nobody runs ahead into writes of the next phase's row early
            }
        });
        INFO(threads << " threads");
        CHECK(wrong.load() == 0);
        CHECK(std::count(slot.begin(), slot.end(), -1) == 0);
    }
}

TEST_CASE("thread pool: a region inside a region runs on its caller alone", "[pool]") {
    ThreadPool pool;
    std::vector<int> inner_team(3, 0), inner_tid(3, -1);
    run_on(pool, 3, [&](int tid, int) {
        run_on(pool, 3, [&](int inner, int nt) {
            inner_team[tid] = nt;
            inner_tid[tid] = inner;
        });
    });
    for (int t = 0; t < 3; ++t) {
        CHECK(inner_team[t] == 1);
        CHECK(inner_tid[t] == 0);
    }
    CHECK_FALSE(ThreadPool::in_region());  // the flag is cleared after the region
}

TEST_CASE("thread pool: two application threads starting regions at once", "[pool]") {
    ThreadPool pool;
    // Whoever finds the pool busy runs its region alone; either way every tid of the team it
    // got runs once, and nothing is lost or run twice.
    auto client = [&pool](std::int64_t& covered) {
        for (int r = 0; r < 300; ++r) {
            std::vector<int> hits(3, 0);
            std::atomic<int> team{0};
            run_on(pool, 3, [&](int tid, int nt) {
                ++hits[tid];
                team.store(nt);
            });
            const int nt = team.load();
            bool ok = nt == 1 || nt == 3;
            for (int t = 0; t < 3; ++t) ok = ok && hits[t] == (t < nt ? 1 : 0);
            if (ok) covered += 1;
        }
    };
    std::int64_t covered_a = 0, covered_b = 0;
    std::thread a(client, std::ref(covered_a));
    client(covered_b);
    a.join();
    CHECK(covered_a == 300);
    CHECK(covered_b == 300);
}

TEST_CASE("parallel_for visits each index once for any thread count", "[parallel][pool]") {
    ThreadCountGuard guard;
    for (int threads : {1, 2, 3, 5}) {
        nanogpt::detail::set_threads(threads);
        CHECK(nanogpt::detail::max_threads() == threads);
        for (std::int64_t n : {0, 1, 2, 17, 1000}) {
            std::vector<int> hits(static_cast<std::size_t>(n), 0);
            nanogpt::detail::parallel_for(n, [&](std::int64_t i) { ++hits[i]; });
            INFO(threads << " threads, n " << n);
            CHECK(std::count(hits.begin(), hits.end(), 1) == n);
        }
    }
    nanogpt::detail::set_threads(0);  // ignored
    CHECK(nanogpt::detail::max_threads() == 5);
}

TEST_CASE("parallel_region gives the team asked for, one inside another", "[parallel][pool]") {
    ThreadCountGuard guard;
    std::vector<int> team(4, 0), nested(4, 0);
    nanogpt::detail::parallel_region(4, [&](int tid, int nt) {
        team[tid] = nt;
        nanogpt::detail::parallel_region(2, [&](int, int inner_nt) { nested[tid] = inner_nt; });
        nanogpt::detail::team_barrier();
    });
    for (int t = 0; t < 4; ++t) {
        CHECK(team[t] == 4);
        CHECK(nested[t] == 1);
    }
    CHECK_FALSE(nanogpt::detail::in_parallel());
    CHECK(std::string(nanogpt::detail::threading_backend()) ==
#ifdef _OPENMP
          "openmp"
#else
          "std::thread"
#endif
    );
}
