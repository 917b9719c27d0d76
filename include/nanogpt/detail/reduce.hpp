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
#pragma once

#include <cstdint>  // std::int64_t

#include <nanogpt/detail/cpu_features.hpp>  // NANOGPT_ALWAYS_INLINE

namespace nanogpt::detail {

/// sum over i in [0, n) of term(i), in the fixed 16-lane order described above.
template <class T, class Term>
NANOGPT_ALWAYS_INLINE inline T sum_of(std::int64_t n, const Term& term) {
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
NANOGPT_ALWAYS_INLINE inline T max_of(std::int64_t n, const T* x) {
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

}  // namespace nanogpt::detail
