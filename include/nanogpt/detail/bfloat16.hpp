// bfloat16.hpp — the bfloat16 number format: the top 16 bits of a float32 (sign, 8 exponent bits,
// 7 mantissa bits), so it has float32's range and about 3 significant decimal digits.
//
// Conversion from float32 rounds to nearest, ties to even, and follows the x86 instruction
// (vcvtneps2bf16) in the corner cases so that every kernel packs the same bits: subnormal inputs
// become a zero of the same sign, NaNs stay NaNs (made quiet), overflow rounds to infinity.
// Read next: detail/gemm_bf16.hpp, its user.
#pragma once

#include <cstdint>  // std::uint16_t, std::uint32_t
#include <cstring>  // std::memcpy

namespace nanogpt::detail {

/// The bfloat16 bits nearest to x (see above for subnormals and NaN). Branch-free, so loops over
/// it vectorise.
[[gnu::always_inline]] inline std::uint16_t bf16_bits(float x) {
    std::uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    const std::uint32_t magnitude = u & 0x7FFFFFFFu;
    const std::uint32_t rounded = u + 0x7FFFu + ((u >> 16) & 1u);  // ties to even
    const std::uint32_t subnormal_or_zero = u & 0x80000000u;       // flushed: signed zero
    const std::uint32_t nan = u | 0x00400000u;                     // quiet bit set
    const std::uint32_t r = magnitude > 0x7F800000u        ? nan
                            : (u & 0x7F800000u) == 0u ? subnormal_or_zero
                                                      : rounded;
    return static_cast<std::uint16_t>(r >> 16);
}

/// The float32 value of bfloat16 bits (exact).
[[gnu::always_inline]] inline float bf16_to_float(std::uint16_t bits) {
    const std::uint32_t u = std::uint32_t(bits) << 16;
    float x;
    std::memcpy(&x, &u, sizeof x);
    return x;
}

/// x rounded to the nearest bfloat16, as a float32.
[[gnu::always_inline]] inline float round_to_bf16(float x) { return bf16_to_float(bf16_bits(x)); }

/// Two bfloat16 in one 32-bit word, `lo` in the low half: the operand layout of a bf16 dot
/// product instruction (vdpbf16ps multiplies lane-wise pairs and adds both products).
[[gnu::always_inline]] inline std::uint32_t bf16_pair(float lo, float hi) {
    return std::uint32_t(bf16_bits(lo)) | (std::uint32_t(bf16_bits(hi)) << 16);
}

}  // namespace nanogpt::detail
