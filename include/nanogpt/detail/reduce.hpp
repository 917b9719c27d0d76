// reduce.hpp — sums that vectorise and still give the same answer everywhere.
//
// A plain `s += f(i)` loop is a chain of dependent additions that the compiler may not reorder
// (that would change the rounding), so it runs one element per add latency. sum_of keeps 16
// independent partial sums (lane j takes elements j, j+16, ...), which the compiler maps onto
// vector registers, and adds them up in a fixed order at the end: fast, and the result depends
// only on n and the values — not on the instruction set or the thread count.
// max_of is the same idea for a maximum: a plain `m = max(m, x[i])` loop is a dependent chain
// the compiler won't vectorise (max is not associative once NaN and -0.0 are in play), and it
// was two thirds of attention's softmax time. A maximum is exact, so the lanes change nothing.
// On AArch64 neither g++ 12 nor clang 14 vectorises max_of's lanes (the select does not map onto
// FMAX, which treats NaN differently), and clang leaves sum_of's lanes scalar too: the float
// versions there are written with NEON, same lanes, same order, so bit for bit the same results
// as the portable twins, sum_of_portable and max_of_portable, which tests compare them with.
#pragma once

#include <cstdint>      // std::int64_t
#include <type_traits>  // std::is_same_v

#include <nanogpt/detail/cpu_features.hpp>  // NANOGPT_ALWAYS_INLINE, NANOGPT_ARM_NEON

#ifdef NANOGPT_ARM_NEON
#include <arm_neon.h>
#endif

namespace nanogpt::detail {

/// sum over i in [0, n) of term(i), in the fixed 16-lane order described above.
template <class T, class Term>
NANOGPT_ALWAYS_INLINE inline T sum_of_portable(std::int64_t n, const Term& term) {
    constexpr int kLanes = 16;
    T lanes[kLanes] = {};
    std::int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int j = 0; j < kLanes; ++j) lanes[j] += term(i + j);
    T total = 0;
    for (int j = 0; j < kLanes; ++j) total += lanes[j];
    for (; i < n; ++i) total += term(i);
    return total;
}

/// max over i in [0, n) of x[i], for n >= 1 (16 independent running maxima, then combined).
template <class T>
NANOGPT_ALWAYS_INLINE inline T max_of_portable(std::int64_t n, const T* x) {
    constexpr int kLanes = 16;
    std::int64_t i = 0;
    T best = x[0];
    if (n >= kLanes) {
        T lanes[kLanes];
        for (int j = 0; j < kLanes; ++j) lanes[j] = x[j];
        for (i = kLanes; i + kLanes <= n; i += kLanes)
            for (int j = 0; j < kLanes; ++j) lanes[j] = lanes[j] < x[i + j] ? x[i + j] : lanes[j];
        for (int j = 0; j < kLanes; ++j) best = best < lanes[j] ? lanes[j] : best;
    }
    for (; i < n; ++i) best = best < x[i] ? x[i] : best;
    return best;
}

#ifdef NANOGPT_ARM_NEON
// The 16 lanes as four NEON registers: lane j of the portable loop is lane j % 4 of acc[j / 4].
template <class Term>
[[gnu::always_inline]] inline float sum_of_neon(std::int64_t n, const Term& term) {
    float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f),
                          vdupq_n_f32(0.0f)};
    std::int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        float t[16];
        for (int j = 0; j < 16; ++j) t[j] = term(i + j);
        for (int q = 0; q < 4; ++q) acc[q] = vaddq_f32(acc[q], vld1q_f32(t + 4 * q));
    }
    float lanes[16];
    for (int q = 0; q < 4; ++q) vst1q_f32(lanes + 4 * q, acc[q]);
    float total = 0.0f;
    for (int j = 0; j < 16; ++j) total += lanes[j];
    for (; i < n; ++i) total += term(i);
    return total;
}

// best < x ? x : best per lane as compare + bit select: exactly the portable loop's choice,
// NaN and signed zeros included (FMAX would differ on both).
[[gnu::always_inline]] inline float max_of_neon(std::int64_t n, const float* x) {
    std::int64_t i = 0;
    float best = x[0];
    if (n >= 16) {
        float32x4_t acc[4] = {vld1q_f32(x), vld1q_f32(x + 4), vld1q_f32(x + 8), vld1q_f32(x + 12)};
        for (i = 16; i + 16 <= n; i += 16) {
            for (int q = 0; q < 4; ++q) {
                const float32x4_t xq = vld1q_f32(x + i + 4 * q);
                acc[q] = vbslq_f32(vcltq_f32(acc[q], xq), xq, acc[q]);
            }
        }
        float lanes[16];
        for (int q = 0; q < 4; ++q) vst1q_f32(lanes + 4 * q, acc[q]);
        for (int j = 0; j < 16; ++j) best = best < lanes[j] ? lanes[j] : best;
    }
    for (; i < n; ++i) best = best < x[i] ? x[i] : best;
    return best;
}
#endif

/// sum over i in [0, n) of term(i), in the fixed 16-lane order described above.
template <class T, class Term>
[[gnu::always_inline]] inline T sum_of(std::int64_t n, const Term& term) {
#ifdef NANOGPT_ARM_NEON
    if constexpr (std::is_same_v<T, float>) return sum_of_neon(n, term);
#endif
    return sum_of_portable<T>(n, term);
}

/// max over i in [0, n) of x[i], for n >= 1.
template <class T>
[[gnu::always_inline]] inline T max_of(std::int64_t n, const T* x) {
#ifdef NANOGPT_ARM_NEON
    if constexpr (std::is_same_v<T, float>) return max_of_neon(n, x);
#endif
    return max_of_portable(n, x);
}

}  // namespace nanogpt::detail
