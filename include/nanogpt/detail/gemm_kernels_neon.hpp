// gemm_kernels_neon.hpp — sgemm's micro-kernel for AArch64 (Apple silicon, Graviton, Ampere):
// Advanced SIMD (NEON), which every AArch64 CPU has, so it needs no run-time check beyond the
// compile target. Same contract as the kernels in gemm_kernels.hpp, whose packing layout, skinny
// path and epilogue it reuses; gemm.hpp chooses it. Read next: gemm.hpp.
#pragma once

#include <cstdint>  // std::int64_t

#include "nanogpt/detail/cpu_features.hpp"  // NANOGPT_ARM_NEON
#include "nanogpt/detail/gemm_kernels.hpp"

#ifdef NANOGPT_ARM_NEON
#include <arm_neon.h>

namespace nanogpt::kernels::gemm_detail {

// 8 x 12 tile: 24 accumulators (8 rows x 3 vectors of 4) + 3 vectors of B + 2 of A = 29 of the
// 32 128-bit registers. Each step loads 5 vectors and issues 24 FMAs, each taking its A value
// straight from a lane of a loaded register (vfmaq_laneq_f32), so A needs no broadcasts. With a
// 4-cycle FMA latency and 2 to 4 FMA pipes, 24 independent chains keep every pipe busy.
// The skinny path, epilogue and packing transposes are the plain ones (PlainKernelHooks): the
// compiler vectorises them for NEON, the AArch64 baseline.
struct NeonKernel : PlainKernelHooks {
    static constexpr int mr = 8, nr = 12;
    // B sliver 256 x 12 floats = 12 KiB stays in a 64 KiB (Neoverse) or 128 KiB (Apple) L1;
    // A block 128 x 256 floats = 128 KiB stays in L2; NC = 256 slivers covers GPT-2's widths
    // (768, 2304, 3072) in one B slice.
    static constexpr std::int64_t mc = 128, kc = 256, nc = 3072;

    // Row R of the tile: acc[R][0..2] += a[R] * b[0..11], a[R] being lane R % 4 of a0 or a1.
    // A template so that the lane is a compile-time constant, as the instruction requires.
    template <int R>
    [[gnu::always_inline]] static void fma_row(float32x4_t (&acc)[mr][3], float32x4_t a0,
                                               float32x4_t a1, float32x4_t b0, float32x4_t b1,
                                               float32x4_t b2) {
        const float32x4_t a = R < 4 ? a0 : a1;
        acc[R][0] = vfmaq_laneq_f32(acc[R][0], b0, a, R % 4);
        acc[R][1] = vfmaq_laneq_f32(acc[R][1], b1, a, R % 4);
        acc[R][2] = vfmaq_laneq_f32(acc[R][2], b2, a, R % 4);
    }

    static void micro(std::int64_t kc_len, const float* a, const float* b, float* c,
                      std::int64_t ldc, int m, int n, bool overwrite) {
        float32x4_t acc[mr][3];
        for (int r = 0; r < mr; ++r) acc[r][0] = acc[r][1] = acc[r][2] = vdupq_n_f32(0.0f);
        for (std::int64_t p = 0; p < kc_len; ++p, a += mr, b += nr) {
            const float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
            const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
            fma_row<0>(acc, a0, a1, b0, b1, b2);
            fma_row<1>(acc, a0, a1, b0, b1, b2);
            fma_row<2>(acc, a0, a1, b0, b1, b2);
            fma_row<3>(acc, a0, a1, b0, b1, b2);
            fma_row<4>(acc, a0, a1, b0, b1, b2);
            fma_row<5>(acc, a0, a1, b0, b1, b2);
            fma_row<6>(acc, a0, a1, b0, b1, b2);
            fma_row<7>(acc, a0, a1, b0, b1, b2);
        }
        if (m == mr && n == nr) {  // the common, full tile: straight vector stores
            for (int r = 0; r < mr; ++r) {
                float* cr = c + r * ldc;
                for (int v = 0; v < 3; ++v) {
                    const float32x4_t sum =
                        overwrite ? acc[r][v] : vaddq_f32(vld1q_f32(cr + 4 * v), acc[r][v]);
                    vst1q_f32(cr + 4 * v, sum);
                }
            }
            return;
        }
        // Edge tile: through a buffer, so nothing past row m or column n is read or written.
        float tile[mr][nr];
        for (int r = 0; r < mr; ++r)
            for (int v = 0; v < 3; ++v) vst1q_f32(&tile[r][4 * v], acc[r][v]);
        for (int r = 0; r < m; ++r)
            for (int j = 0; j < n; ++j)
                c[r * ldc + j] = overwrite ? tile[r][j] : c[r * ldc + j] + tile[r][j];
    }
};

}  // namespace nanogpt::kernels::gemm_detail

#endif  // NANOGPT_ARM_NEON
