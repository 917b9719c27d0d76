// gemm_kernels_avx512bf16.hpp — the bfloat16 GEMM kernel for CPUs with AVX512-BF16 (Cooper Lake,
// Sapphire Rapids, Zen 4 and later): vdpbf16ps multiplies 16 lane-wise pairs of bfloat16 and adds
// both products to 16 float32 accumulators, twice the multiply-adds of one float32 FMA.
//
// Packed layout: each 32-bit word holds a pair of bfloat16 of consecutive depths p, p+1 (p even),
// the lower depth in the low half, which is the operand layout vdpbf16ps wants. An A sliver holds,
// for each pair of depths, MR words (one per row); a B sliver NR words (one per column); an odd
// depth pads its last pair with zero. The packing routines round float32 to bfloat16 as they copy
// (vcvtne2ps2bf16), so there is no separate conversion pass over memory. A packed sliver takes
// half the bytes of gemm.hpp's float sliver: packed_depth tells the driver so, and the packing
// space is half sgemm's.
// The tile, the driver and the epilogue are those of the float32 AVX-512 kernel (gemm_kernels.hpp).
// Read next: gemm_bf16.hpp.
#pragma once

#include <algorithm>  // std::min, std::max, std::clamp
#include <cstdint>    // std::int64_t, std::uint16_t, std::uint32_t

#include "nanogpt/detail/cpu_features.hpp"  // NANOGPT_X86_SIMD
#include "nanogpt/detail/gemm_kernels.hpp"
#include "nanogpt/detail/gemm_kernels_bf16.hpp"

#ifdef NANOGPT_X86_SIMD
#include <immintrin.h>

namespace nanogpt::kernels::gemm_detail {

// Rounds lo and hi to bfloat16 and interleaves them: 32-bit lane q holds (lo[q], hi[q]).
__attribute__((target("avx512f,avx512bw,avx512bf16"))) inline __m512i pair_lanes(__m512 lo,
                                                                                 __m512 hi) {
    // vcvtne2ps2bf16 puts bf16(lo) in 16-bit elements 0..15 and bf16(hi) in 16..31; vpermw
    // then takes element q and 16 + q into word q.
    alignas(64) static const std::uint16_t order[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,
                                                        21, 6, 22, 7, 23, 8,  24, 9,  25, 10, 26,
                                                        11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
    return _mm512_permutexvar_epi16(_mm512_load_si512(order), both);
}

// Pairs from two consecutive stored rows: dst[q*W + j] = (src[2q*ld + j], src[(2q+1)*ld + j]) for
// j < cols, zero for cols <= j < W; q over the kc/2 pairs (rounded up).
template <int W>
__attribute__((target("avx512f,avx512bw,avx512bf16"))) inline void pack_pairs_across_rows(
    const float* src, std::int64_t ld, int cols, std::int64_t kc, std::uint32_t* dst) {
    for (std::int64_t p = 0; p < kc; p += 2, dst += W) {
        const float* row = src + p * ld;
        const bool second = p + 1 < kc;
        for (int j = 0; j < W; j += 16) {
            const __mmask16 live = first_lanes(cols - j);
            const __m512 lo = _mm512_maskz_loadu_ps(live, row + j);
            const __m512 hi = second ? _mm512_maskz_loadu_ps(live, row + ld + j) : _mm512_setzero_ps();
            _mm512_mask_storeu_epi32(dst + j, first_lanes(W - j), pair_lanes(lo, hi));
        }
    }
}

// Pairs from within each stored row, then a transpose: dst[q*W + r] = (src[r*ld + 2q],
// src[r*ld + 2q + 1]) for r < rows, zero for rows <= r < W.
template <int W>
__attribute__((target("avx512f,avx512bw,avx512bf16"))) inline void pack_pairs_within_rows(
    const float* src, std::int64_t ld, int rows, std::int64_t kc, std::uint32_t* dst) {
    for (int r0 = 0; r0 < W; r0 += 16) {
        const __mmask16 store = first_lanes(W - r0);
        const int here = std::clamp(rows - r0, 0, 16);
        const float* block = here > 0 ? src + r0 * ld : src;  // rows past the matrix are padding
        for (std::int64_t p = 0; p < kc; p += 32) {
            const std::int64_t left = std::min<std::int64_t>(32, kc - p);
            const __mmask16 m_lo = first_lanes(left), m_hi = first_lanes(left - 16);
            __m512 v[16];
#pragma GCC unroll 16
            for (int r = 0; r < 16; ++r) {
                if (r < here) {
                    // Words q = 0..15 of the conversion are the pairs (x[2q], x[2q+1]).
                    const float* x = block + r * ld + p;
                    const __m512 lo = _mm512_maskz_loadu_ps(m_lo, x);
                    const __m512 hi = _mm512_maskz_loadu_ps(m_hi, x + 16);
                    v[r] = _mm512_castsi512_ps((__m512i)_mm512_cvtne2ps_pbh(hi, lo));
                } else {
                    v[r] = _mm512_setzero_ps();
                }
            }
            transpose_16x16(v);  // v[q] lane r: pair q of row r
            const std::int64_t pairs = (left + 1) / 2;
            for (std::int64_t q = 0; q < pairs; ++q)
                _mm512_mask_storeu_ps(dst + (p / 2 + q) * W + r0, store, v[q]);
        }
    }
}

// 14 x 32 tile as in Avx512Kernel: 28 accumulators, 2 B vectors, 1 broadcast A pair.
struct Avx512Bf16Kernel {
    static constexpr int mr = 14, nr = 32;
    // A packed depth of 1536 takes the bytes of 768 floats: the A block (224 x 1536 bf16 =
    // 672 KiB) still fits a 1 MiB L2, and 3072-deep products need two K blocks, not four.
    static constexpr std::int64_t mc = 224, kc = 1536, nc = 4096;

    // A packed row or column holds (kc + 1) / 2 words of two bfloat16 each.
    static constexpr std::int64_t packed_depth(std::int64_t kc) { return (kc + 1) / 2; }

    __attribute__((target("avx512f,avx512vl,avx512bw,fma"))) static void skinny(
        const GemmArgs& g, std::int64_t j0, std::int64_t j1) {
        skinny_bf16(g, j0, j1);
    }
    __attribute__((target("avx512f,avx512vl,fma"))) static void finish(const GemmArgs& g, float* c,
                                                                       std::int64_t i0,
                                                                       std::int64_t j0, int m,
                                                                       int n) {
        finish_tile(g.epilogue, c, g.ldc, i0, j0, m, n);
    }

    // Rows [i0, i0+mc) x depths [p0, p0+kc) of op(A), the sliver of rows s.. at dst + s*pd words
    // (pd = packed_depth(kc), the driver's offsets).
    static void pack_a(const GemmArgs& g, std::int64_t i0, std::int64_t mc_len, std::int64_t p0,
                       std::int64_t kc_len, float* dst) {
        auto* out = reinterpret_cast<std::uint32_t*>(dst);
        const std::int64_t pd = packed_depth(kc_len);
        for (std::int64_t s = 0; s < mc_len; s += mr) {
            const int rows = static_cast<int>(std::min<std::int64_t>(mr, mc_len - s));
            if (g.trans_a)  // A is [K,M]: the two depths of a pair are two stored rows
                pack_pairs_across_rows<mr>(g.A + p0 * g.lda + i0 + s, g.lda, rows, kc_len,
                                           out + s * pd);
            else  // A is [M,K]: a pair is two neighbours in a row
                pack_pairs_within_rows<mr>(g.A + (i0 + s) * g.lda + p0, g.lda, rows, kc_len,
                                           out + s * pd);
        }
    }
    static void pack_b(const GemmArgs& g, std::int64_t j0, int cols, std::int64_t p0,
                       std::int64_t kc_len, float* dst) {
        auto* out = reinterpret_cast<std::uint32_t*>(dst);
        if (g.trans_b)  // B is [N,K]
            pack_pairs_within_rows<nr>(g.B + j0 * g.ldb + p0, g.ldb, cols, kc_len, out);
        else  // B is [K,N]
            pack_pairs_across_rows<nr>(g.B + p0 * g.ldb + j0, g.ldb, cols, kc_len, out);
    }

    __attribute__((target("avx512f,avx512vl,avx512bw,avx512bf16,fma"))) static void micro(
        std::int64_t kc_len, const float* a_packed, const float* b_packed, float* c,
        std::int64_t ldc, int m, int n, bool overwrite) {
        const auto* a = reinterpret_cast<const std::uint32_t*>(a_packed);
        const auto* b = reinterpret_cast<const std::uint32_t*>(b_packed);
        prefetch_c_tile(c, ldc, m, n);
        __m512 acc0[mr], acc1[mr];
#pragma GCC unroll 16
        for (int r = 0; r < mr; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
        const std::int64_t pairs = (kc_len + 1) / 2;
        for (std::int64_t q = 0; q < pairs; ++q, a += mr, b += nr) {
            prefetch_ahead(reinterpret_cast<const float*>(b), 16 * nr);
            prefetch_ahead(reinterpret_cast<const float*>(b), 16 * nr + 16);
            prefetch_ahead(reinterpret_cast<const float*>(a), 16 * mr);
            const __m512bh b0 = (__m512bh)_mm512_load_si512(b);
            const __m512bh b1 = (__m512bh)_mm512_load_si512(b + 16);
#pragma GCC unroll 16
            for (int r = 0; r < mr; ++r) {
                const __m512bh ar = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[r]));
                acc0[r] = _mm512_dpbf16_ps(acc0[r], ar, b0);
                acc1[r] = _mm512_dpbf16_ps(acc1[r], ar, b1);
            }
        }
        store_tile_x32<mr>(acc0, acc1, c, ldc, m, n, overwrite);
    }
};

// row_bf16_weights (gemm_kernels_bf16.hpp) with vdpbf16ps: x is rounded once into a buffer on
// the stack, then each weight row streams past in order (one sequential stream, which the
// hardware prefetchers follow best) into two accumulators.
__attribute__((target("avx512f,avx512bw,avx512bf16"))) inline void row_bf16_weights_avx512bf16(
    const float* x, const std::uint16_t* w, std::int64_t C, std::int64_t j0, std::int64_t j1,
    float* out) {
    constexpr std::int64_t kMaxC = 8192;  // 16 KiB of rounded x
    if (C > kMaxC) {
        row_bf16_weights(x, w, C, j0, j1, out);
        return;
    }
    alignas(64) std::uint16_t xb[kMaxC];
    for (std::int64_t p = 0; p < C; p += 32) {  // past C: zeros, so the tail needs no mask on x
        const __m512 lo = _mm512_maskz_loadu_ps(first_lanes(C - p), x + p);
        const __m512 hi = _mm512_maskz_loadu_ps(first_lanes(C - p - 16), x + p + 16);
        _mm512_store_si512(xb + p, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
    const std::int64_t full = C / 32 * 32;
    const __mmask32 tail = __mmask32((1ull << (C - full)) - 1u);
    for (std::int64_t j = j0; j < j1; ++j) {
        const std::uint16_t* wj = w + j * C;
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
        std::int64_t p = 0;
        for (; p + 64 <= full; p += 64) {
            acc0 = _mm512_dpbf16_ps(acc0, (__m512bh)_mm512_load_si512(xb + p),
                                    (__m512bh)_mm512_loadu_si512(wj + p));
            acc1 = _mm512_dpbf16_ps(acc1, (__m512bh)_mm512_load_si512(xb + p + 32),
                                    (__m512bh)_mm512_loadu_si512(wj + p + 32));
        }
        if (p < full) {
            acc0 = _mm512_dpbf16_ps(acc0, (__m512bh)_mm512_load_si512(xb + p),
                                    (__m512bh)_mm512_loadu_si512(wj + p));
            p += 32;
        }
        if (p < C)
            acc1 = _mm512_dpbf16_ps(acc1, (__m512bh)_mm512_load_si512(xb + p),
                                    (__m512bh)_mm512_maskz_loadu_epi16(tail, wj + p));
        float lanes[16];  // summed in lane order, so the result is reproducible
        _mm512_storeu_ps(lanes, _mm512_add_ps(acc0, acc1));
        float sum = 0.0f;
        for (float l : lanes) sum += l;
        out[j] = sum;
    }
}

// dst[i] = bf16_bits(src[i]) for i < n, 16 at a time (vcvtneps2bf16).
__attribute__((target("avx512f,avx512vl,avx512bw,avx512bf16"))) inline void to_bf16_avx512bf16(
    const float* src, std::int64_t n, std::uint16_t* dst) {
    for (std::int64_t i = 0; i < n; i += 16) {
        const __mmask16 live = first_lanes(n - i);
        const __m256i v = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(live, src + i));
        _mm256_mask_storeu_epi16(dst + i, live, v);
    }
}

}  // namespace nanogpt::kernels::gemm_detail

#endif  // NANOGPT_X86_SIMD
