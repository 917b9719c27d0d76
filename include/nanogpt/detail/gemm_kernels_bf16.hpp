// gemm_kernels_bf16.hpp — the bfloat16 GEMM's pieces that need no special instructions: the
// skinny path (products of a few rows) with the rounding of detail/bfloat16.hpp.
//
// Every bf16 kernel computes the same thing: both operands rounded to bfloat16 (nearest, ties to
// even), products summed in float32. A product of two bfloat16 values is exact in float32, so the
// kernels differ only in the order of their float32 additions. Builds on gemm_kernels.hpp;
// read next: gemm_kernels_avx512bf16.hpp, gemm_bf16.hpp.
#pragma once

#include <cstdint>  // std::int64_t

#include "nanogpt/detail/bfloat16.hpp"
#include "nanogpt/detail/gemm_kernels.hpp"

namespace nanogpt::kernels::gemm_detail {

// skinny_rows (gemm_kernels.hpp) with both operands rounded to bfloat16 as they are read.
template <bool TransA, bool TransB>
[[gnu::always_inline]] inline void skinny_bf16_rows(const GemmArgs& g, std::int64_t j0,
                                                    std::int64_t j1) {
    using detail::round_to_bf16;
    const std::int64_t a_step = TransA ? g.lda : 1;  // distance between op(A)[i][p] and [i][p+1]
    for (std::int64_t i = 0; i < g.M; ++i) {
        const float* a = TransA ? g.A + i : g.A + i * g.lda;
        float* c = g.C + i * g.ldc;
        if constexpr (TransB) {  // B is [N,K]: dot products of two contiguous rows
            for (std::int64_t j = j0; j < j1; ++j) {
                const float* b = g.B + j * g.ldb;
                float lanes[16] = {};  // independent partial sums, so the loop vectorises exactly
                std::int64_t p = 0;
                for (; p + 16 <= g.K; p += 16)
                    for (int l = 0; l < 16; ++l)
                        lanes[l] += round_to_bf16(a[(p + l) * a_step]) * round_to_bf16(b[p + l]);
                for (int l = 0; p < g.K; ++p, ++l)
                    lanes[l] += round_to_bf16(a[p * a_step]) * round_to_bf16(b[p]);
                float sum = 0.0f;
                for (int l = 0; l < 16; ++l) sum += lanes[l];
                c[j] = g.accumulate ? c[j] + sum : sum;
            }
        } else {  // B is [K,N]: an axpy per p
            if (!g.accumulate)
                for (std::int64_t j = j0; j < j1; ++j) c[j] = 0.0f;
            for (std::int64_t p = 0; p < g.K; ++p) {
                const float ap = round_to_bf16(a[p * a_step]);
                const float* b = g.B + p * g.ldb;
                for (std::int64_t j = j0; j < j1; ++j) c[j] += ap * round_to_bf16(b[j]);
            }
        }
        if (g.has_epilogue()) finish_tile(g.epilogue, c + j0, g.ldc, i, j0, 1, j1 - j0);
    }
}

[[gnu::always_inline]] inline void skinny_bf16(const GemmArgs& g, std::int64_t j0,
                                               std::int64_t j1) {
    if (g.trans_a)
        g.trans_b ? skinny_bf16_rows<true, true>(g, j0, j1)
                  : skinny_bf16_rows<true, false>(g, j0, j1);
    else
        g.trans_b ? skinny_bf16_rows<false, true>(g, j0, j1)
                  : skinny_bf16_rows<false, false>(g, j0, j1);
}

// ---- rows against bfloat16 weights ----
// out[j] = sum_p bf16(x[p]) * w[j*C + p] for j in [j0, j1): one row of x against weights kept as
// bfloat16 bits [OC, C] (sampling reads every weight once per token, so half the bytes is nearly
// half the time). Sums in 16 lanes, then the lanes in order: the same bits at any thread count.
[[gnu::always_inline]] inline void row_bf16_weights(const float* x, const std::uint16_t* w,
                                                    std::int64_t C, std::int64_t j0,
                                                    std::int64_t j1, float* out) {
    for (std::int64_t j = j0; j < j1; ++j) {
        const std::uint16_t* wj = w + j * C;
        float lanes[16] = {};
        std::int64_t p = 0;
        for (; p + 16 <= C; p += 16)
            for (int l = 0; l < 16; ++l)
                lanes[l] += detail::round_to_bf16(x[p + l]) * detail::bf16_to_float(wj[p + l]);
        for (int l = 0; p < C; ++p, ++l)
            lanes[l] += detail::round_to_bf16(x[p]) * detail::bf16_to_float(wj[p]);
        float sum = 0.0f;
        for (int l = 0; l < 16; ++l) sum += lanes[l];
        out[j] = sum;
    }
}

}  // namespace nanogpt::kernels::gemm_detail
