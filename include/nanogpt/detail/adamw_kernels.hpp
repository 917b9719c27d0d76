// adamw_kernels.hpp — AdamW's update for float with AVX-512 (16 elements at a time) or AArch64
// NEON (4 at a time).
//
// std::sqrt may set errno, and g++ and clang compile with -fmath-errno by default, so no
// compiler vectorises optim.hpp's plain loop (adamw_span): it runs one element at a time. This
// loop does the same operations in the same order, so each element's result is the plain loop's
// up to FMA contraction there; tests/test_optim.cpp compares them. optim.hpp's adamw_update
// chooses one at run time (NEON is AArch64's baseline: no check) and gives the last few elements
// (fewer than a vector) to the plain loop.
// Read next: optim.hpp, its user.
#pragma once

#include <cstdint>  // std::int64_t

#include <nanogpt/detail/cpu_features.hpp>  // NANOGPT_X86_SIMD, NANOGPT_ARM_NEON

#ifdef NANOGPT_X86_SIMD
#include <immintrin.h>
#endif
#ifdef NANOGPT_ARM_NEON
#include <arm_neon.h>
#endif

namespace nanogpt::kernels {

/// The per-update constants of adamw_update, shared by its plain, AVX-512 and NEON loops.
template <class T>
struct AdamWScalars {
    T b1, b2, step_size, inv_sqrt_bias2, decay, eps, grad_scale;
};

#ifdef NANOGPT_X86_SIMD
/// Elements [begin, end) of one AdamW update, 16 at a time: end - begin must be a multiple of 16
/// (adamw_update gives the last few to the plain loop). Returns 0 when every updated weight and
/// second moment is finite, NaN otherwise, like adamw_span.
__attribute__((target("avx512f"))) inline float adamw_span_avx512(
    float* param, const float* grad, float* m, float* v, std::int64_t begin, std::int64_t end,
    const AdamWScalars<float>& s) {
    const __m512 b1 = _mm512_set1_ps(s.b1), one_minus_b1 = _mm512_set1_ps(1.0f - s.b1);
    const __m512 b2 = _mm512_set1_ps(s.b2), one_minus_b2 = _mm512_set1_ps(1.0f - s.b2);
    const __m512 step_size = _mm512_set1_ps(s.step_size), decay = _mm512_set1_ps(s.decay);
    const __m512 inv_sqrt_bias2 = _mm512_set1_ps(s.inv_sqrt_bias2), eps = _mm512_set1_ps(s.eps);
    const __m512 scale = _mm512_set1_ps(s.grad_scale);
    // The zero-masking sqrt with every lane on is the plain one; g++ 12 warns (maybe-uninitialized)
    // about _mm512_sqrt_ps's undefined pass-through operand.
    const __mmask16 all = 0xFFFF;
    const __m512 zero = _mm512_setzero_ps();
    __m512 check = zero;  // x * 0 is NaN exactly for infinite or NaN x, as in adamw_span
    for (std::int64_t i = begin; i + 16 <= end; i += 16) {
        const __m512 g = _mm512_mul_ps(_mm512_loadu_ps(grad + i), scale);
        const __m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(m + i)),
                                        _mm512_mul_ps(one_minus_b1, g));
        const __m512 vi = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(v + i)),
                                        _mm512_mul_ps(_mm512_mul_ps(one_minus_b2, g), g));
        _mm512_storeu_ps(m + i, mi);
        _mm512_storeu_ps(v + i, vi);
        const __m512 denom =
            _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_sqrt_ps(all, vi), inv_sqrt_bias2), eps);
        const __m512 pi = _mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(param + i), decay),
                                        _mm512_div_ps(_mm512_mul_ps(step_size, mi), denom));
        _mm512_storeu_ps(param + i, pi);
        check =
            _mm512_add_ps(check, _mm512_add_ps(_mm512_mul_ps(pi, zero), _mm512_mul_ps(vi, zero)));
    }
    // Summed lane by lane: g++ 12 -Werror rejects _mm512_reduce_add_ps (maybe-uninitialized).
    float lanes[16];
    _mm512_storeu_ps(lanes, check);
    float total = 0;
    for (const float lane : lanes) total += lane;
    return total;
}
#endif

#ifdef NANOGPT_ARM_NEON
/// The NEON twin of adamw_span_avx512: end - begin a multiple of 4, the same operations in the
/// same order, the same finiteness check.
inline float adamw_span_neon(float* param, const float* grad, float* m, float* v,
                             std::int64_t begin, std::int64_t end, const AdamWScalars<float>& s) {
    const float32x4_t b1 = vdupq_n_f32(s.b1), one_minus_b1 = vdupq_n_f32(1.0f - s.b1);
    const float32x4_t b2 = vdupq_n_f32(s.b2), one_minus_b2 = vdupq_n_f32(1.0f - s.b2);
    const float32x4_t step_size = vdupq_n_f32(s.step_size), decay = vdupq_n_f32(s.decay);
    const float32x4_t inv_sqrt_bias2 = vdupq_n_f32(s.inv_sqrt_bias2), eps = vdupq_n_f32(s.eps);
    const float32x4_t scale = vdupq_n_f32(s.grad_scale), zero = vdupq_n_f32(0.0f);
    float32x4_t check = zero;
    for (std::int64_t i = begin; i + 4 <= end; i += 4) {
        const float32x4_t g = vmulq_f32(vld1q_f32(grad + i), scale);
        const float32x4_t mi =
            vaddq_f32(vmulq_f32(b1, vld1q_f32(m + i)), vmulq_f32(one_minus_b1, g));
        const float32x4_t vi =
            vaddq_f32(vmulq_f32(b2, vld1q_f32(v + i)), vmulq_f32(vmulq_f32(one_minus_b2, g), g));
        vst1q_f32(m + i, mi);
        vst1q_f32(v + i, vi);
        const float32x4_t denom = vaddq_f32(vmulq_f32(vsqrtq_f32(vi), inv_sqrt_bias2), eps);
        const float32x4_t pi = vsubq_f32(vmulq_f32(vld1q_f32(param + i), decay),
                                         vdivq_f32(vmulq_f32(step_size, mi), denom));
        vst1q_f32(param + i, pi);
        check = vaddq_f32(check, vaddq_f32(vmulq_f32(pi, zero), vmulq_f32(vi, zero)));
    }
    float lanes[4];
    vst1q_f32(lanes, check);
    float total = 0;
    for (const float lane : lanes) total += lane;
    return total;
}
#endif

}  // namespace nanogpt::kernels
