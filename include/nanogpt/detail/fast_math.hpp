// fast_math.hpp — exp and tanh that the compiler can vectorise, for the float kernels.
//
// std::exp and std::tanh are calls into libm that no loop vectoriser can see through; GELU,
// softmax and cross-entropy spend most of their time in them. exp_approx is a range reduction
// x = n ln2 + r with |r| <= ln2/2 and a degree-6 polynomial for e^r (relative error about 2e-7,
// i.e. within float rounding), built only from arithmetic and bit casts so every loop that uses
// it vectorises. double keeps std::exp / std::tanh: gradient checks want the exact functions.
// All of them are NANOGPT_ALWAYS_INLINE: a loop only vectorises when they are inlined into it
// (cpu_features.hpp says why the compiler's own choice is not enough).
#pragma once

#include <bit>          // std::bit_cast
#include <cmath>        // std::exp, std::tanh
#include <cstdint>      // std::int32_t, std::uint32_t
#include <type_traits>  // std::is_same_v

#include <nanogpt/detail/cpu_features.hpp>  // NANOGPT_ALWAYS_INLINE

namespace nanogpt::detail {

/// e^x for float without libm. Inputs are clamped to [-87.3, 88.3] (the range where 2^n is a
/// normal float), so exp_approx(-inf) is about 1e-38 rather than 0; NaN stays NaN.
NANOGPT_ALWAYS_INLINE inline float exp_approx(float x) {
    // The clamp is done on the bit pattern with integer compares: a float compare may trap (the
    // default -ftrapping-math), so GCC would refuse to turn it into a vector select, while the
    // integer version vectorises. NaN patterns (magnitude above infinity's) are left alone.
    const auto bits = std::bit_cast<std::uint32_t>(x);
    const std::uint32_t sign = bits & 0x80000000u, magnitude = bits & 0x7fffffffu;
    const std::uint32_t limit =
        sign ? std::bit_cast<std::uint32_t>(87.3f) : std::bit_cast<std::uint32_t>(88.3f);
    std::uint32_t clamped = magnitude > limit ? limit : magnitude;
    clamped = magnitude > 0x7f800000u ? magnitude : clamped;  // NaN
    x = std::bit_cast<float>(sign | clamped);
    // Adding 1.5 * 2^23 rounds x / ln2 to an integer held in the low mantissa bits: n without a
    // float-to-int conversion (which would be undefined behaviour for NaN).
    const float shifter = 12582912.0f;
    const float t = x * 1.44269504f + shifter;
    const float n = t - shifter;
    const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;  // ln2 split in two
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const std::int32_t n_int =
        std::bit_cast<std::int32_t>(t) - std::bit_cast<std::int32_t>(shifter);
    const float scale = std::bit_cast<float>((n_int + 127) << 23);  // 2^n
    return p * scale;
}

/// e^x: the vectorisable approximation for float, std::exp otherwise.
template <class T>
NANOGPT_ALWAYS_INLINE inline T exp_fast(T x) {
    if constexpr (std::is_same_v<T, float>) {
        return exp_approx(x);
    } else {
        return std::exp(x);
    }
}

/// tanh(x) = 1 - 2 / (e^{2x} + 1) for float (absolute error ~1e-7), std::tanh otherwise.
template <class T>
NANOGPT_ALWAYS_INLINE inline T tanh_fast(T x) {
    if constexpr (std::is_same_v<T, float>) {
        return 1.0f - 2.0f / (exp_approx(2.0f * x) + 1.0f);
    } else {
        return std::tanh(x);
    }
}

/// GPT-2's GELU, the tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
/// Here rather than in ops/elementwise.hpp because the GEMM's epilogue (detail/gemm.hpp) applies
/// it too, and both must compute the very same function.
template <class T>
NANOGPT_ALWAYS_INLINE inline T gelu_tanh(T x) {
    const T k = static_cast<T>(0.7978845608028654);  // sqrt(2 / pi)
    return T(0.5) * x * (T(1) + tanh_fast(k * (x + T(0.044715) * x * x * x)));
}

}  // namespace nanogpt::detail
