// gemm_kernels.hpp — the pieces of sgemm that depend on the instruction set: the packed-sliver
// layout, the register-tiled micro-kernels (plain C++, AVX2, AVX-512), the skinny path for
// products of a few rows, and the epilogue applied to finished tiles.
//
// Each kernel is a struct with its tile (mr x nr), its cache blocks (mc, kc, nc) and static
// functions compiled for its instruction set with target attributes, so a build without -march
// still gets them; gemm.hpp's blocked driver is written once over any of them. Builds on
// fast_math.hpp (GELU for the epilogue). Read next: gemm.hpp.
#pragma once

#include <algorithm>  // std::min, std::max
#include <cstdint>    // std::int64_t, std::uintptr_t
#include <cstring>    // std::memcpy

#include "nanogpt/detail/cpu_features.hpp"  // NANOGPT_X86_SIMD
#include "nanogpt/detail/fast_math.hpp"

#ifdef NANOGPT_X86_SIMD
#include <immintrin.h>
#endif

namespace nanogpt::kernels {

/// What happens to each finished element of C: C[i][j] += bias[j] (when bias is set), then
/// gelu[i * ld_gelu + j] = GELU(C[i][j]) (when gelu is set; C keeps the pre-activation, which
/// GELU's backward needs). The default does nothing.
template <class T>
struct GemmEpilogue {
    const T* bias = nullptr;  // [N] or nullptr
    T* gelu = nullptr;        // [M, ld_gelu] or nullptr
    std::int64_t ld_gelu = 0;
};

namespace gemm_detail {
// The epilogue over rows [0, m) x columns [0, n) of C, where c points at C[i0][j0]. Always
// inlined, so it takes on the instruction set of the kernel that calls it.
template <class T>
NANOGPT_ALWAYS_INLINE inline void finish_tile(const GemmEpilogue<T>& e, T* c, std::int64_t ldc,
                                               std::int64_t i0, std::int64_t j0, std::int64_t m,
                                               std::int64_t n) {
    for (std::int64_t r = 0; r < m; ++r) {
        T* cr = c + r * ldc;
        if (e.bias != nullptr)
            for (std::int64_t j = 0; j < n; ++j) cr[j] += e.bias[j0 + j];
        if (e.gelu != nullptr) {
            T* gr = e.gelu + (i0 + r) * e.ld_gelu + j0;
            for (std::int64_t j = 0; j < n; ++j) gr[j] = detail::gelu_tanh(cr[j]);
        }
    }
}

/// One sgemm call's operands, as the kernels and the driver see them.
struct GemmArgs {
    bool trans_a, trans_b;
    std::int64_t M, N, K;
    const float* A;
    std::int64_t lda;
    const float* B;
    std::int64_t ldb;
    float* C;
    std::int64_t ldc;
    bool accumulate;
    GemmEpilogue<float> epilogue;
    bool has_epilogue() const { return epilogue.bias != nullptr || epilogue.gelu != nullptr; }
};

// ---- packing ----
// A block: rows [i0, i0+mc) x depth [p0, p0+kc) of op(A) become slivers of MR rows; sliver s holds,
// for each p, the MR values op(A)[i0 + s*MR + r][p0 + p] side by side (zeros past row mc), which is
// exactly the order the micro-kernel broadcasts them in. A B sliver likewise holds, for each p, the
// NR values op(B)[p0 + p][j0 + j] (zeros past the last column), one aligned vector load each.
// Two memory layouts occur: the W values of one p are either contiguous (copy_rows) or one per
// stored row (interleave_rows, a transpose, which kernels may replace with a SIMD version).

// dst[p*W + j] = src[p*ld + j] for j < cols, zero for cols <= j < W.
template <int W>
inline void copy_rows(const float* src, std::int64_t ld, int cols, std::int64_t kc, float* dst) {
    for (std::int64_t p = 0; p < kc; ++p, src += ld, dst += W) {
        if (cols == W) {
            std::memcpy(dst, src, W * sizeof(float));  // memcpy: lets the compiler assume no alias
        } else {
            for (int j = 0; j < cols; ++j) dst[j] = src[j];
            for (int j = cols; j < W; ++j) dst[j] = 0.0f;
        }
    }
}

// dst[p*W + r] = src[r*ld + p] for r < rows, zero for rows <= r < W: walks the rows in step,
// reading each sequentially.
template <int W>
inline void interleave_rows(const float* src, std::int64_t ld, int rows, std::int64_t kc,
                            float* dst) {
    for (std::int64_t p = 0; p < kc; ++p, dst += W) {
        if (rows == W) {
            for (int r = 0; r < W; ++r) dst[r] = src[r * ld + p];
        } else {
            for (int r = 0; r < rows; ++r) dst[r] = src[r * ld + p];
            for (int r = rows; r < W; ++r) dst[r] = 0.0f;
        }
    }
}

// ---- skinny products ----
// With a handful of rows (sampling one token at a time has M = 1), a 14-row tile would be mostly
// padding and packing B would cost more than the product. Instead stream op(B) straight from
// memory once per row of C. Columns [j0, j1) of C; every element sees the same operations
// whatever the split.
template <bool TransA, bool TransB>
NANOGPT_ALWAYS_INLINE inline void skinny_rows(const GemmArgs& g, std::int64_t j0,
                                               std::int64_t j1) {
    const std::int64_t a_step = TransA ? g.lda : 1;  // distance between op(A)[i][p] and [i][p+1]
    for (std::int64_t i = 0; i < g.M; ++i) {
        const float* a = TransA ? g.A + i : g.A + i * g.lda;
        float* c = g.C + i * g.ldc;
        if constexpr (TransB) {  // B is [N,K]: C[i][j] is the dot product of two contiguous rows
            for (std::int64_t j = j0; j < j1; ++j) {
                const float* b = g.B + j * g.ldb;
                float lanes[16] = {};  // independent partial sums, so the loop vectorises exactly
                std::int64_t p = 0;
                for (; p + 16 <= g.K; p += 16)
                    for (int l = 0; l < 16; ++l) lanes[l] += a[(p + l) * a_step] * b[p + l];
                for (int l = 0; p < g.K; ++p, ++l) lanes[l] += a[p * a_step] * b[p];
                float sum = 0.0f;
                for (int l = 0; l < 16; ++l) sum += lanes[l];
                c[j] = g.accumulate ? c[j] + sum : sum;
            }
        } else {  // B is [K,N]: row i of C gathers A[i][p] times row p of B, an axpy per p
            if (!g.accumulate)
                for (std::int64_t j = j0; j < j1; ++j) c[j] = 0.0f;
            for (std::int64_t p = 0; p < g.K; ++p) {
                const float ap = a[p * a_step];
                const float* b = g.B + p * g.ldb;
                for (std::int64_t j = j0; j < j1; ++j) c[j] += ap * b[j];
            }
        }
        if (g.has_epilogue()) finish_tile(g.epilogue, c + j0, g.ldc, i, j0, 1, j1 - j0);
    }
}

// The same loops compiled for each instruction set: the always-inline body takes on the caller's
// target, so the compiler vectorises it with that ISA's registers.
NANOGPT_ALWAYS_INLINE inline void skinny(const GemmArgs& g, std::int64_t j0, std::int64_t j1) {
    if (g.trans_a)
        g.trans_b ? skinny_rows<true, true>(g, j0, j1) : skinny_rows<true, false>(g, j0, j1);
    else
        g.trans_b ? skinny_rows<false, true>(g, j0, j1) : skinny_rows<false, false>(g, j0, j1);
}

// ---- micro-kernels ----
// Each computes one MR x NR tile: acc = sum over p < kc of a[p*MR + r] * b[p*NR + j], then stores
// the top-left m x n of it to C, either overwriting (first K block without accumulate) or adding.
// a and b are packed slivers; b is 64-byte aligned.

// The hooks besides the micro-kernel (the skinny path, the epilogue, packing transposes) as plain
// code for the compile target: kernels that need no ISA-specific copies of them (portable, NEON)
// inherit these; the x86 kernels define their own, compiled for their instruction set.
struct PlainKernelHooks {
    static void skinny(const GemmArgs& g, std::int64_t j0, std::int64_t j1) {
        gemm_detail::skinny(g, j0, j1);
    }
    static void finish(const GemmArgs& g, float* c, std::int64_t i0, std::int64_t j0, int m,
                       int n) {
        finish_tile(g.epilogue, c, g.ldc, i0, j0, m, n);
    }
    template <int W>  // packing transposes: the plain loop
    static void interleave(const float* src, std::int64_t ld, int rows, std::int64_t kc,
                           float* dst) {
        interleave_rows<W>(src, ld, rows, kc, dst);
    }
};

// Portable: plain loops the compiler can vectorise for whatever the target is. A 4 x 8 tile is
// 8 SSE registers of accumulators: larger tiles spill on x86-64's 16 baseline registers and run
// several times slower (numbers in docs/performance.md).
struct PortableKernel : PlainKernelHooks {
    static constexpr int mr = 4, nr = 8;
    // B sliver 256 x 8 floats = 8 KiB in L1; A block 128 x 256 floats = 128 KiB in L2.
    static constexpr std::int64_t mc = 128, kc = 256, nc = 2048;
    static void micro(std::int64_t kc_len, const float* a, const float* b, float* c,
                      std::int64_t ldc, int m, int n, bool overwrite) {
        float acc[mr][nr] = {};
        for (std::int64_t p = 0; p < kc_len; ++p, a += mr, b += nr)
            for (int r = 0; r < mr; ++r)
                for (int j = 0; j < nr; ++j) acc[r][j] += a[r] * b[j];
        for (int r = 0; r < m; ++r)
            for (int j = 0; j < n; ++j)
                c[r * ldc + j] = overwrite ? acc[r][j] : c[r * ldc + j] + acc[r][j];
    }
};

#ifdef NANOGPT_X86_SIMD

// AVX2: 6 x 16 tile = 12 ymm accumulators + 2 loads of B + 1 broadcast of A, within 16 registers.
// FMA latency 4-5 cycles x 2 ports needs >= 10 independent accumulators to keep both ports busy.
struct Avx2Kernel {
    static constexpr int mr = 6, nr = 16;
    // B sliver 384 x 16 floats = 24 KiB stays in a 32 KiB L1; A block 96 x 384 floats = 144 KiB
    // fits even a 256 KiB L2. Deeper KC means fewer read-modify-write passes over C.
    static constexpr std::int64_t mc = 96, kc = 384, nc = 4096;
    __attribute__((target("avx2,fma"))) static void skinny(const GemmArgs& g, std::int64_t j0,
                                                           std::int64_t j1) {
        gemm_detail::skinny(g, j0, j1);
    }
    __attribute__((target("avx2,fma"))) static void finish(const GemmArgs& g, float* c,
                                                           std::int64_t i0, std::int64_t j0, int m,
                                                           int n) {
        finish_tile(g.epilogue, c, g.ldc, i0, j0, m, n);
    }
    template <int W>  // packing transposes: the plain loop
    static void interleave(const float* src, std::int64_t ld, int rows, std::int64_t kc,
                           float* dst) {
        interleave_rows<W>(src, ld, rows, kc, dst);
    }

    __attribute__((target("avx2,fma"))) static void micro(std::int64_t kc_len, const float* a,
                                                          const float* b, float* c,
                                                          std::int64_t ldc, int m, int n,
                                                          bool overwrite) {
        for (int r = 0; r < m; ++r) {  // fetch the C tile early, as in the AVX-512 kernel below
            _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + n - 1), _MM_HINT_T0);
        }
        __m256 acc0[mr], acc1[mr];
#pragma GCC unroll 8
        for (int r = 0; r < mr; ++r) acc0[r] = acc1[r] = _mm256_setzero_ps();
        for (std::int64_t p = 0; p < kc_len; ++p, a += mr, b += nr) {
            const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 8
            for (int r = 0; r < mr; ++r) {
                const __m256 ar = _mm256_broadcast_ss(a + r);
                acc0[r] = _mm256_fmadd_ps(ar, b0, acc0[r]);
                acc1[r] = _mm256_fmadd_ps(ar, b1, acc1[r]);
            }
        }
        // Lane masks for the right-edge tile: lane l is live when l < n (resp. l + 8 < n).
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i mask0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
        const __m256i mask1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n - 8), lane);
#pragma GCC unroll 8
        for (int r = 0; r < mr; ++r) {
            if (r >= m) break;
            float* cr = c + r * ldc;
            __m256 v0 = acc0[r], v1 = acc1[r];
            if (n == nr) {
                if (!overwrite) {
                    v0 = _mm256_add_ps(_mm256_loadu_ps(cr), v0);
                    v1 = _mm256_add_ps(_mm256_loadu_ps(cr + 8), v1);
                }
                _mm256_storeu_ps(cr, v0);
                _mm256_storeu_ps(cr + 8, v1);
            } else {  // masked lanes are neither read nor written, so no access past the row
                if (!overwrite) {
                    v0 = _mm256_add_ps(_mm256_maskload_ps(cr, mask0), v0);
                    v1 = _mm256_add_ps(_mm256_maskload_ps(cr + 8, mask1), v1);
                }
                _mm256_maskstore_ps(cr, mask0, v0);
                _mm256_maskstore_ps(cr + 8, mask1, v1);
            }
        }
    }
};

// Transposes 16 rows of 16 floats in registers: v[q][r] becomes the old v[r][q]. Three rounds of
// shuffles: pairs of floats within 128-bit lanes, then quads, then the lanes themselves.
__attribute__((target("avx512f"))) inline void transpose_16x16(__m512 v[16]) {
    // The zero-masking forms with an all-ones mask are the plain instructions; g++ 12 warns
    // (maybe-uninitialized) about the plain intrinsics' undefined pass-through operand.
    const __mmask16 all = 0xFFFF;
    __m512 t[16];
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {  // lane-wise (r0[0] r1[0] r0[1] r1[1]) and (r0[2] r1[2] ...)
        t[2 * k] = _mm512_maskz_unpacklo_ps(all, v[2 * k], v[2 * k + 1]);
        t[2 * k + 1] = _mm512_maskz_unpackhi_ps(all, v[2 * k], v[2 * k + 1]);
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {  // u[4k + c], lane j: column 4j + c of rows 4k .. 4k+3
        v[4 * k + 0] = _mm512_maskz_shuffle_ps(all, t[4 * k], t[4 * k + 2], 0x44);
        v[4 * k + 1] = _mm512_maskz_shuffle_ps(all, t[4 * k], t[4 * k + 2], 0xEE);
        v[4 * k + 2] = _mm512_maskz_shuffle_ps(all, t[4 * k + 1], t[4 * k + 3], 0x44);
        v[4 * k + 3] = _mm512_maskz_shuffle_ps(all, t[4 * k + 1], t[4 * k + 3], 0xEE);
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {  // gather lane j of the four row groups into column 4j + c
        const __m512 lo02 =
            _mm512_maskz_shuffle_f32x4(all, v[c], v[4 + c], 0x88);  // k0j0 k0j2 k1j0 k1j2
        const __m512 lo13 =
            _mm512_maskz_shuffle_f32x4(all, v[c], v[4 + c], 0xDD);  // k0j1 k0j3 k1j1 k1j3
        const __m512 hi02 =
            _mm512_maskz_shuffle_f32x4(all, v[8 + c], v[12 + c], 0x88);  // k2j0 k2j2 k3j0 k3j2
        const __m512 hi13 = _mm512_maskz_shuffle_f32x4(all, v[8 + c], v[12 + c], 0xDD);
        t[0 + c] = _mm512_maskz_shuffle_f32x4(all, lo02, hi02, 0x88);   // j = 0
        t[4 + c] = _mm512_maskz_shuffle_f32x4(all, lo13, hi13, 0x88);   // j = 1
        t[8 + c] = _mm512_maskz_shuffle_f32x4(all, lo02, hi02, 0xDD);   // j = 2
        t[12 + c] = _mm512_maskz_shuffle_f32x4(all, lo13, hi13, 0xDD);  // j = 3
    }
#pragma GCC unroll 16
    for (int q = 0; q < 16; ++q) v[q] = t[q];
}

// interleave_rows for at most 16 rows, 16 columns at a time: dst[p*W + r] for the lanes in
// store_mask. Rows past `rows` load as zeros, which is the padding the micro-kernel expects.
__attribute__((target("avx512f"))) inline void interleave_16(const float* src, std::int64_t ld,
                                                             int rows, std::int64_t kc, float* dst,
                                                             std::int64_t W, __mmask16 store_mask) {
    for (std::int64_t p = 0; p < kc; p += 16) {
        const int cols = static_cast<int>(std::min<std::int64_t>(16, kc - p));
        const __mmask16 load_mask = cols == 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1u);
        __m512 v[16];
#pragma GCC unroll 16
        for (int r = 0; r < 16; ++r)
            v[r] =
                r < rows ? _mm512_maskz_loadu_ps(load_mask, src + r * ld + p) : _mm512_setzero_ps();
        transpose_16x16(v);
        for (int q = 0; q < cols; ++q) _mm512_mask_storeu_ps(dst + (p + q) * W, store_mask, v[q]);
    }
}

// Prefetch of p + floats, computed as an integer: the address may lie past the end of p's
// buffer (a prefetch never faults), where pointer arithmetic would be undefined behaviour.
inline void prefetch_ahead(const float* p, std::int64_t floats) {
    const auto address =
        reinterpret_cast<std::uintptr_t>(p) + static_cast<std::uintptr_t>(floats) * sizeof(float);
    _mm_prefetch(reinterpret_cast<const char*>(address), _MM_HINT_T0);
}

// Lanes [0, n) of 16, as a mask (n is clamped to 0 .. 16).
inline __mmask16 first_lanes(std::int64_t n) {
    return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1u);
}

// The two ends of each of the m rows of a C tile at c, fetched ahead: a kernel reads C only after
// its k loop, and a 2048 x 3072 C does not fit in cache, so without this every tile would end on
// a memory stall.
inline void prefetch_c_tile(const float* c, std::int64_t ldc, int m, int n) {
    for (int r = 0; r < m; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + n - 1), _MM_HINT_T0);
    }
}

// Writes an MR x 32 accumulator tile (acc0: columns 0..15, acc1: 16..31) to rows [0, m) and
// columns [0, n) of c, adding to what is there unless overwrite; masked-off lanes are neither
// read nor written. Shared by the float32 and bfloat16 AVX-512 kernels; always inlined, so the
// accumulators stay in registers.
template <int MR>
__attribute__((target("avx512f"), always_inline)) inline void store_tile_x32(
    const __m512 (&acc0)[MR], const __m512 (&acc1)[MR], float* c, std::int64_t ldc, int m, int n,
    bool overwrite) {
    const __mmask16 mask0 = first_lanes(n), mask1 = first_lanes(n - 16);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
        if (r >= m) break;
        float* cr = c + r * ldc;
        __m512 v0 = acc0[r], v1 = acc1[r];
        if (!overwrite) {
            v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(mask0, cr), v0);
            v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(mask1, cr + 16), v1);
        }
        _mm512_mask_storeu_ps(cr, mask0, v0);
        _mm512_mask_storeu_ps(cr + 16, mask1, v1);
    }
}

// AVX-512: 14 x 32 tile = 28 zmm accumulators + 2 loads of B + 1 broadcast of A = 31 of 32
// registers. Per step: 28 FMAs against 2 vector loads and 14 broadcasts, so the loads never limit
// the two FMA ports.
struct Avx512Kernel {
    static constexpr int mr = 14, nr = 32;
    // KC = 768 makes GPT-2's 768-deep products one K block, so C is read and written once:
    // faster than KC = 256 (B sliver in L1) even though the 96 KiB B sliver then streams from
    // L2. A block 224 x 768 floats = 672 KiB stays in a 1 MiB L2, and NC keeps
    // GPT widths in one B slice.
    static constexpr std::int64_t mc = 224, kc = 768, nc = 4096;
    __attribute__((target("avx512f,avx512vl,fma"))) static void skinny(const GemmArgs& g,
                                                                       std::int64_t j0,
                                                                       std::int64_t j1) {
        gemm_detail::skinny(g, j0, j1);
    }
    __attribute__((target("avx512f,avx512vl,fma"))) static void finish(const GemmArgs& g, float* c,
                                                                       std::int64_t i0,
                                                                       std::int64_t j0, int m,
                                                                       int n) {
        finish_tile(g.epilogue, c, g.ldc, i0, j0, m, n);
    }

    // Packing transposes (A of NN/NT, B of NT/TT) in 16 x 16 register blocks, several times
    // faster than the scalar loop for the 32-row B slivers of NT.
    template <int W>
    static void interleave(const float* src, std::int64_t ld, int rows, std::int64_t kc,
                           float* dst) {
        for (int r0 = 0; r0 < W; r0 += 16) {
            const int lanes = std::min(16, W - r0);
            const __mmask16 mask = __mmask16((1u << lanes) - 1u);
            const int here = std::max(0, std::min(16, rows - r0));
            // Rows past the matrix are all padding; src is not advanced to them.
            interleave_16(here > 0 ? src + r0 * ld : src, ld, here, kc, dst + r0, W, mask);
        }
    }

    __attribute__((target("avx512f,avx512vl,fma"))) static void micro(std::int64_t kc_len,
                                                                      const float* a,
                                                                      const float* b, float* c,
                                                                      std::int64_t ldc, int m,
                                                                      int n, bool overwrite) {
        prefetch_c_tile(c, ldc, m, n);
        __m512 acc0[mr], acc1[mr];
#pragma GCC unroll 16
        for (int r = 0; r < mr; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
        // Software prefetch 16 steps ahead in both packed slivers: they stream from L2 (B's 96 KiB
        // sliver does not fit L1), and the hardware prefetchers alone leave the kernel below its
        // in-L1 speed inside real products. Reads past the sliver's end are harmless: prefetches
        // never fault.
        for (std::int64_t p = 0; p < kc_len; ++p, a += mr, b += nr) {
            prefetch_ahead(b, 16 * nr);
            prefetch_ahead(b, 16 * nr + 16);
            prefetch_ahead(a, 16 * mr);
            const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 16
            for (int r = 0; r < mr; ++r) {
                const __m512 ar = _mm512_set1_ps(a[r]);
                acc0[r] = _mm512_fmadd_ps(ar, b0, acc0[r]);
                acc1[r] = _mm512_fmadd_ps(ar, b1, acc1[r]);
            }
        }
        store_tile_x32<mr>(acc0, acc1, c, ldc, m, n, overwrite);
    }
};

#endif  // NANOGPT_X86_SIMD

}  // namespace gemm_detail

}  // namespace nanogpt::kernels
