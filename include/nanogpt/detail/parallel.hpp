// parallel.hpp — where the kernels' loops run: across threads (the only place, with gemm.hpp's
// tiles, that mentions OpenMP) and with the widest vector instructions the CPU has.
//
// Every parallel loop goes through parallel_for. Each iteration must write its own outputs
// (no two threads touch the same element, no floating-point reductions across threads), so
// results are identical with or without OpenMP and for any thread count unless a kernel says
// otherwise. Without OpenMP the loop simply runs serially.
//
// The library is compiled without -march, which leaves the compiler's auto-vectoriser with SSE2
// only. parallel_for therefore calls each iteration through a function compiled with AVX-512 or
// AVX2 target attributes (chosen once from cpu_features.hpp); the small loop bodies inline into
// it and are vectorised for that instruction set, 2 to 4 times faster than the baseline build.
// That only works when the body is inlined into call_avx512, so large bodies are marked
// NANOGPT_ALWAYS_INLINE (cpu_features.hpp says why).
#pragma once

#include <algorithm>  // std::fill, std::min
#include <cstdint>    // std::int64_t

#include <nanogpt/detail/cpu_features.hpp>

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

/// Runs body(i) for i in [0, n), split statically across threads.
/// body must not throw: an exception escaping an OpenMP region terminates the program.
template <class Body>
inline void parallel_for(std::int64_t n, const Body& body) {
    const VectorIsa isa = vector_isa();
#ifdef _OPENMP
    if (n > 1 && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
        for (std::int64_t i = 0; i < n; ++i) call_vectorized(isa, body, i);
        return;
    }
#endif
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

/// Number of threads parallel_for will use (1 without OpenMP).
inline int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/// Sets the thread count for later parallel loops (ignored without OpenMP).
inline void set_threads(int n) {
#ifdef _OPENMP
    if (n > 0) omp_set_num_threads(n);
#else
    (void)n;
#endif
}

}  // namespace nanogpt::detail
