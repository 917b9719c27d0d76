// peak_flops.hpp — this machine's FP32 FMA peak and bfloat16 peak, measured, for MFU figures that
// mean something on whatever CPU the benchmark runs on (a constant would be right on one machine
// only). The bfloat16 peak is a loop of vdpbf16ps (32 multiply-adds each) where the CPU has
// AVX512-BF16, and the FP32 peak elsewhere, since gemm_bf16 then runs the FP32 kernels.
//
// Every thread runs a loop of independent fused multiply-adds in registers (no memory traffic),
// with the widest instruction set the CPU has — 16 lanes with AVX-512, 8 with AVX2+FMA; without
// either the figure is the compiler's scalar FMA rate and MFU is printed against that. The best of
// several short trials is kept, so a busy moment on a shared machine does not lower the peak.
#pragma once

#include <algorithm>  // std::max
#include <chrono>     // std::chrono::steady_clock
#include <cstdint>    // std::int64_t

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

#include <nanogpt/detail/cpu_features.hpp>  // avx512bf16
#include <nanogpt/detail/parallel.hpp>      // vector_isa
#include <nanogpt/dtype.hpp>
#include <nanogpt/threading.hpp>

namespace bench {

namespace peak_detail {

// 12 independent accumulator chains hide the FMA latency (4 cycles) on two FMA ports. They are
// named variables, not an array: GCC keeps an array of vectors in memory and the loop then
// measures stores. Returns a value that depends on every result so the loop cannot be dropped.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NANOGPT_PEAK_LOOP(VEC, SET1, FMA, ADD)                                             \
    VEC r0 = SET1(0.f), r1 = SET1(1.f), r2 = SET1(2.f), r3 = SET1(3.f), r4 = SET1(4.f),    \
        r5 = SET1(5.f), r6 = SET1(6.f), r7 = SET1(7.f), r8 = SET1(8.f), r9 = SET1(9.f),    \
        r10 = SET1(10.f), r11 = SET1(11.f);                                                \
    const VEC a = SET1(0.999999f), b = SET1(1e-7f);                                        \
    for (std::int64_t n = 0; n < iters; ++n) {                                             \
        r0 = FMA(r0, a, b), r1 = FMA(r1, a, b), r2 = FMA(r2, a, b), r3 = FMA(r3, a, b);    \
        r4 = FMA(r4, a, b), r5 = FMA(r5, a, b), r6 = FMA(r6, a, b), r7 = FMA(r7, a, b);    \
        r8 = FMA(r8, a, b), r9 = FMA(r9, a, b), r10 = FMA(r10, a, b);                      \
        r11 = FMA(r11, a, b);                                                              \
    }                                                                                      \
    const VEC sum = ADD(ADD(ADD(ADD(r0, r1), ADD(r2, r3)), ADD(ADD(r4, r5), ADD(r6, r7))), \
                        ADD(ADD(r8, r9), ADD(r10, r11)));

__attribute__((target("avx512f"))) inline float fma_loop_avx512(std::int64_t iters) {
    NANOGPT_PEAK_LOOP(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps)
    float out[16];  // not _mm512_reduce_add_ps: g++ 12 warns (maybe-uninitialized) inside it
    _mm512_storeu_ps(out, sum);
    return out[0] + out[15];
}
__attribute__((target("avx2,fma"))) inline float fma_loop_avx2(std::int64_t iters) {
    NANOGPT_PEAK_LOOP(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps)
    float out[8];
    _mm256_storeu_ps(out, sum);
    return out[0] + out[7];
}
// The same 12 chains of vdpbf16ps: acc += x0*y0 + x1*y1 in each of 16 lanes, 64 FLOPs each.
__attribute__((target("avx512f,avx512bw,avx512bf16"))) inline float dpbf16_loop(std::int64_t iters) {
    const __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(1e-3f));
    __m512 r0 = _mm512_set1_ps(0.f), r1 = _mm512_set1_ps(1.f), r2 = _mm512_set1_ps(2.f),
           r3 = _mm512_set1_ps(3.f), r4 = _mm512_set1_ps(4.f), r5 = _mm512_set1_ps(5.f),
           r6 = _mm512_set1_ps(6.f), r7 = _mm512_set1_ps(7.f), r8 = _mm512_set1_ps(8.f),
           r9 = _mm512_set1_ps(9.f), r10 = _mm512_set1_ps(10.f), r11 = _mm512_set1_ps(11.f);
    for (std::int64_t n = 0; n < iters; ++n) {
        r0 = _mm512_dpbf16_ps(r0, x, x), r1 = _mm512_dpbf16_ps(r1, x, x);
        r2 = _mm512_dpbf16_ps(r2, x, x), r3 = _mm512_dpbf16_ps(r3, x, x);
        r4 = _mm512_dpbf16_ps(r4, x, x), r5 = _mm512_dpbf16_ps(r5, x, x);
        r6 = _mm512_dpbf16_ps(r6, x, x), r7 = _mm512_dpbf16_ps(r7, x, x);
        r8 = _mm512_dpbf16_ps(r8, x, x), r9 = _mm512_dpbf16_ps(r9, x, x);
        r10 = _mm512_dpbf16_ps(r10, x, x), r11 = _mm512_dpbf16_ps(r11, x, x);
    }
    const __m512 sum = _mm512_add_ps(
        _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(r0, r1), _mm512_add_ps(r2, r3)),
                      _mm512_add_ps(_mm512_add_ps(r4, r5), _mm512_add_ps(r6, r7))),
        _mm512_add_ps(_mm512_add_ps(r8, r9), _mm512_add_ps(r10, r11)));
    float out[16];
    _mm512_storeu_ps(out, sum);
    return out[0] + out[15];
}
#undef NANOGPT_PEAK_LOOP
#endif
inline float fma_loop_scalar(std::int64_t iters) {
    float acc[12];
    for (int i = 0; i < 12; ++i) acc[i] = float(i);
    for (std::int64_t n = 0; n < iters; ++n)
        for (auto& r : acc) r = r * 0.999999f + 1e-7f;
    return acc[0] + acc[11];
}

// FLOPs per iteration of the loop for the chosen instruction set, and one run of it.
inline int lanes() {
    switch (nanogpt::detail::vector_isa()) {
        case nanogpt::detail::VectorIsa::avx512:
            return 16;
        case nanogpt::detail::VectorIsa::avx2:
            return 8;
        default:
            return 1;
    }
}
inline bool has_dpbf16() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    return nanogpt::detail::cpu_features().avx512bf16;
#else
    return false;
#endif
}
inline float run_loop(std::int64_t iters, bool bf16) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (bf16) return dpbf16_loop(iters);
    if (lanes() == 16) return fma_loop_avx512(iters);
    if (lanes() == 8) return fma_loop_avx2(iters);
#endif
    return fma_loop_scalar(iters);
}

}  // namespace peak_detail

/// Measured peak for matrix products in `dtype` in GFLOP/s on nanogpt::num_threads() threads
/// (best of 5 trials of about 25 ms each at AVX-512 speed).
inline double measured_peak_gflops(nanogpt::Dtype dtype = nanogpt::Dtype::float32) {
    const bool bf16 = dtype == nanogpt::Dtype::bfloat16 && peak_detail::has_dpbf16();
    const std::int64_t iters = 16'000'000;
    const int threads = nanogpt::num_threads();
    double best = 0.0;
    volatile float sink = 0.0f;
    for (int trial = 0; trial < 5; ++trial) {
        const auto t0 = std::chrono::steady_clock::now();
        nanogpt::detail::parallel_region(threads, [&](int, int) {
            const float r = peak_detail::run_loop(iters, bf16);
            if (r == 12345.0f) sink = r;  // practically never true; keeps the result alive
        });
        const double s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double per_lane = bf16 ? 4.0 : 2.0;  // a pair of multiply-adds, or one
        const double lanes = bf16 ? 16.0 : double(peak_detail::lanes());
        const double flops = per_lane * 12.0 * lanes * double(iters) * threads;
        best = std::max(best, flops / s * 1e-9);
    }
    (void)sink;
    return best;
}

}  // namespace bench
