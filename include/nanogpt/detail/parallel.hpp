// parallel.hpp — where the kernels' loops run: across threads (the only place that says OpenMP)
// and with the widest vector instructions the CPU has.
//
// Every parallel loop goes through parallel_for; the GEMM, which needs a team that meets at
// barriers, uses parallel_region and team_barrier. Each iteration must write its own outputs
// (no two threads touch the same element, no floating-point reductions across threads), so
// results are identical for any thread count unless a kernel says otherwise.
// Two threading backends, one partitioning: with OpenMP the regions are OpenMP's; without it
// (Apple clang, -DNANOGPT_USE_OPENMP=OFF) they run on thread_pool.hpp's std::threads, which split
// a loop exactly as OpenMP's schedule(static) does, so both builds compute the same numbers.
//
// The library is compiled without -march, which leaves the compiler's auto-vectoriser with SSE2
// only. parallel_for therefore calls each iteration through a function compiled with AVX-512 or
// AVX2 target attributes (chosen once from cpu_features.hpp); the small loop bodies inline into
// it and are vectorised for that instruction set, 2 to 4 times faster than the baseline build.
// That only works when the body is inlined into call_avx512, so large bodies are marked
// NANOGPT_ALWAYS_INLINE (cpu_features.hpp says why). AArch64 needs no such copies: NEON is part
// of its baseline.
#pragma once

#include <algorithm>  // std::fill, std::min
#include <atomic>     // std::atomic
#include <cstdint>    // std::int64_t
#include <cstdlib>    // std::getenv, std::atoi
#include <thread>     // std::thread::hardware_concurrency

#include <nanogpt/detail/cpu_features.hpp>
#include <nanogpt/detail/thread_pool.hpp>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace nanogpt::detail {

enum class VectorIsa { baseline, avx2, avx512 };

inline VectorIsa vector_isa() {
    static const VectorIsa isa = cpu_features().avx512     ? VectorIsa::avx512
                                 : cpu_features().avx2_fma ? VectorIsa::avx2
                                                           : VectorIsa::baseline;
    return isa;
}

#ifdef NANOGPT_X86_SIMD
template <class Body>
__attribute__((target("avx512f,avx512vl,avx2,fma"))) void call_avx512(const Body& body,
                                                                      std::int64_t i) {
    body(i);
}
template <class Body>
__attribute__((target("avx2,fma"))) void call_avx2(const Body& body, std::int64_t i) {
    body(i);
}
#endif

/// body(i), compiled for the instruction set `isa`.
template <class Body>
inline void call_vectorized(VectorIsa isa, const Body& body, std::int64_t i) {
#ifdef NANOGPT_X86_SIMD
    if (isa == VectorIsa::avx512) return call_avx512(body, i);
    if (isa == VectorIsa::avx2) return call_avx2(body, i);
#endif
    (void)isa;
    body(i);
}

// ---- threads: OpenMP or the pool ----

/// "openmp" or "std::thread": what runs the parallel regions in this build.
inline const char* threading_backend() {
#ifdef _OPENMP
    return "openmp";
#else
    return "std::thread";
#endif
}

#ifndef _OPENMP
// The pool's team size: OMP_NUM_THREADS when set (users know that knob, and a program built
// with and without OpenMP then behaves alike), otherwise one thread per hardware thread.
inline std::atomic<int>& pool_threads() {
    static std::atomic<int> threads{[] {
        const char* env = std::getenv("OMP_NUM_THREADS");
        const int from_env = env != nullptr ? std::atoi(env) : 0;
        if (from_env > 0) return from_env;
        return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    }()};
    return threads;
}
#endif

/// Number of threads a parallel region will use.
inline int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return pool_threads().load(std::memory_order_relaxed);
#endif
}

/// Sets the thread count for later parallel regions (n <= 0 is ignored).
inline void set_threads(int n) {
    if (n <= 0) return;
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    pool_threads().store(n, std::memory_order_relaxed);
#endif
}

/// True inside a parallel region (where a nested region would run on one thread).
inline bool in_parallel() {
#ifdef _OPENMP
    return omp_in_parallel() != 0;
#else
    return ThreadPool::in_region();
#endif
}

/// Runs fn(tid, nt) on a team of nt <= threads threads at once, tid in [0, nt); nt is 1 inside
/// another region. fn must not throw (an exception escaping an OpenMP region terminates).
template <class Fn>
inline void parallel_region(int threads, const Fn& fn) {
#ifdef _OPENMP
    if (threads <= 1) return fn(0, 1);
#pragma omp parallel num_threads(threads)
    fn(omp_get_thread_num(), omp_get_num_threads());
#else
    // noexcept: an exception escaping fn terminates the program, as it would under OpenMP, rather
    // than unwinding the caller while the workers still use fn.
    thread_pool().run(
        threads,
        [](const void* context, int tid, int nt) noexcept {
            (*static_cast<const Fn*>(context))(tid, nt);
        },
        &fn);
#endif
}

/// Every member of the current region waits here for the others (inside parallel_region only).
inline void team_barrier() {
#ifdef _OPENMP
#pragma omp barrier
#else
    thread_pool().barrier();
#endif
}

/// The iterations [begin, end) that thread tid of nt gets out of n: OpenMP's schedule(static)
/// split, contiguous blocks whose sizes differ by at most one, the larger ones first.
inline void static_share(std::int64_t n, int tid, int nt, std::int64_t& begin, std::int64_t& end) {
    const std::int64_t q = n / nt, extra = n % nt;
    begin = tid * q + std::min<std::int64_t>(tid, extra);
    end = begin + q + (tid < extra ? 1 : 0);
}

/// Runs body(i) for i in [0, n), split statically across threads.
/// body must not throw: an exception escaping an OpenMP region terminates the program.
template <class Body>
inline void parallel_for(std::int64_t n, const Body& body) {
    const VectorIsa isa = vector_isa();
    if (n > 1 && max_threads() > 1 && !in_parallel()) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
        for (std::int64_t i = 0; i < n; ++i) call_vectorized(isa, body, i);
#else
        const int threads = static_cast<int>(std::min<std::int64_t>(max_threads(), n));
        parallel_region(threads, [&](int tid, int nt) {
            std::int64_t begin = 0, end = 0;
            static_share(n, tid, nt, begin, end);
            for (std::int64_t i = begin; i < end; ++i) call_vectorized(isa, body, i);
        });
#endif
        return;
    }
    for (std::int64_t i = 0; i < n; ++i) call_vectorized(isa, body, i);
}

/// p[0, n) = value on every thread, in fixed 64K-element blocks: the buffers this is for (GPT-2's
/// half-gigabyte gradient buffer, activation gradients of 100 MB) take one core several times as
/// long to fill.
template <class T>
inline void parallel_fill(T* p, std::int64_t n, T value) {
    constexpr std::int64_t kBlock = std::int64_t(1) << 16;
    parallel_for((n + kBlock - 1) / kBlock, [&](std::int64_t b) {
        T* begin = p + b * kBlock;
        std::fill(begin, p + std::min(n, (b + 1) * kBlock), value);
    });
}

}  // namespace nanogpt::detail
