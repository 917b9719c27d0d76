// gemm_bf16.hpp — the bfloat16 matrix product: C = (accumulate ? C : 0) + op(A) * op(B) with both
// operands rounded to bfloat16 (round to nearest even) and float32 accumulation, float in and out.
//
// It is gemm.hpp's blocked driver (cache blocks, threads, determinism, epilogue) over bf16
// kernels, chosen at run time:
//   * avx512bf16: vdpbf16ps on packed bfloat16 pairs (gemm_kernels_avx512bf16.hpp);
//   * avx512, avx2, portable: for CPUs without bf16 instructions, the float32 kernels of
//     gemm_kernels.hpp on operands rounded to bfloat16 while they are packed. The products of
//     rounded operands are exact in float32, so every kernel computes the same sums and differs
//     only in the order of its float32 additions.
// gemm() (gemm.hpp) calls gemm_bf16 for float products while matmul_dtype() is bfloat16
// (dtype.hpp). Read next: ops/matmul.hpp.
#pragma once

#include <algorithm>  // std::min
#include <atomic>     // std::atomic
#include <cstdint>    // std::int64_t
#include <cstring>    // std::strcmp

#include "nanogpt/detail/bfloat16.hpp"
#include "nanogpt/detail/cpu_features.hpp"
#include "nanogpt/detail/gemm.hpp"
#include "nanogpt/detail/gemm_kernels_avx512bf16.hpp"
#include "nanogpt/detail/gemm_kernels_bf16.hpp"
#include "nanogpt/detail/parallel.hpp"

namespace nanogpt::kernels {
namespace gemm_detail {

// A float32 kernel on operands rounded to bfloat16 as they are packed (the packed floats are
// rounded in place while still in cache): the bf16 semantics on any CPU.
template <class Base>
struct RoundedKernel {
    static constexpr int mr = Base::mr, nr = Base::nr;
    static constexpr std::int64_t mc = Base::mc, kc = Base::kc, nc = Base::nc;

    static void round_in_place(float* x, std::int64_t n) {
        for (std::int64_t i = 0; i < n; ++i) x[i] = detail::round_to_bf16(x[i]);
    }
    static void pack_a(const GemmArgs& g, std::int64_t i0, std::int64_t mc_len, std::int64_t p0,
                       std::int64_t kc_len, float* dst) {
        pack_a_floats<Base>(g, i0, mc_len, p0, kc_len, dst);
        round_in_place(dst, round_up(mc_len, mr) * kc_len);
    }
    static void pack_b(const GemmArgs& g, std::int64_t j0, int cols, std::int64_t p0,
                       std::int64_t kc_len, float* dst) {
        pack_b_floats<Base>(g, j0, cols, p0, kc_len, dst);
        round_in_place(dst, nr * kc_len);
    }
    static void skinny(const GemmArgs& g, std::int64_t j0, std::int64_t j1) {
        skinny_bf16(g, j0, j1);
    }
    static void finish(const GemmArgs& g, float* c, std::int64_t i0, std::int64_t j0, int m,
                       int n) {
        Base::finish(g, c, i0, j0, m, n);
    }
    static void micro(std::int64_t kc_len, const float* a, const float* b, float* c,
                      std::int64_t ldc, int m, int n, bool overwrite) {
        Base::micro(kc_len, a, b, c, ldc, m, n, overwrite);
    }
};

// ---- kernel choice ----

enum class Bf16Kernel { portable = 0, avx2 = 1, avx512 = 2, avx512bf16 = 3 };

inline Bf16Kernel best_bf16_kernel() {
    const nanogpt::detail::CpuFeatures& f = nanogpt::detail::cpu_features();
#ifdef NANOGPT_X86_SIMD
    if (f.avx512bf16) return Bf16Kernel::avx512bf16;
    if (f.avx512) return Bf16Kernel::avx512;
    if (f.avx2_fma) return Bf16Kernel::avx2;
#else
    (void)f;
#endif
    return Bf16Kernel::portable;
}

inline bool bf16_kernel_supported(Bf16Kernel k) {
    return static_cast<int>(k) <= static_cast<int>(best_bf16_kernel());
}

// -1 = automatic; otherwise a forced Bf16Kernel (tests and benchmarks use it).
inline std::atomic<int> forced_bf16_kernel{-1};

inline Bf16Kernel current_bf16_kernel() {
    const int forced = forced_bf16_kernel.load(std::memory_order_relaxed);
    if (forced >= 0) return static_cast<Bf16Kernel>(forced);
    static const Bf16Kernel best = best_bf16_kernel();  // decided once
    return best;
}

inline const char* const bf16_kernel_names[] = {"portable", "avx2", "avx512", "avx512bf16"};

}  // namespace gemm_detail

/// Name of the kernel gemm_bf16 uses now: "avx512bf16", "avx512", "avx2" or "portable".
inline const char* gemm_bf16_kernel_name() {
    return gemm_detail::bf16_kernel_names[static_cast<int>(gemm_detail::current_bf16_kernel())];
}

/// Forces gemm_bf16 onto one kernel (a name above), or back to automatic choice with "auto" or
/// nullptr. Returns false, changing nothing, for an unknown name or one this CPU lacks.
inline bool gemm_bf16_force_kernel(const char* name) {
    if (name == nullptr || std::strcmp(name, "auto") == 0) {
        gemm_detail::forced_bf16_kernel.store(-1);
        return true;
    }
    for (int k = 0; k < 4; ++k) {
        if (std::strcmp(name, gemm_detail::bf16_kernel_names[k]) != 0) continue;
        if (!gemm_detail::bf16_kernel_supported(static_cast<gemm_detail::Bf16Kernel>(k)))
            return false;
        gemm_detail::forced_bf16_kernel.store(k);
        return true;
    }
    return false;
}

// ---- gemm_bf16 ----
// sgemm's contract (gemm.hpp) with bfloat16 operands. Never throws; allocates only when a call
// needs more packing space than any earlier call on this thread.
inline void gemm_bf16(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K,
                      const float* A, std::int64_t lda, const float* B, std::int64_t ldb, float* C,
                      std::int64_t ldc, bool accumulate, const GemmEpilogue<float>& epilogue) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {  // empty sum: no operand is read, so this is sgemm's case
        sgemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate, epilogue);
        return;
    }
    const gemm_detail::GemmArgs g{trans_a, trans_b, M, N,   K,          A,       lda,
                                  B,       ldb,     C, ldc, accumulate, epilogue};
    using gemm_detail::RoundedKernel;
    switch (gemm_detail::current_bf16_kernel()) {
#ifdef NANOGPT_X86_SIMD
        case gemm_detail::Bf16Kernel::avx512bf16:
            gemm_detail::sgemm_blocked<gemm_detail::Avx512Bf16Kernel>(g);
            break;
        case gemm_detail::Bf16Kernel::avx512:
            gemm_detail::sgemm_blocked<RoundedKernel<gemm_detail::Avx512Kernel>>(g);
            break;
        case gemm_detail::Bf16Kernel::avx2:
            gemm_detail::sgemm_blocked<RoundedKernel<gemm_detail::Avx2Kernel>>(g);
            break;
#endif
        default:
            gemm_detail::sgemm_blocked<RoundedKernel<gemm_detail::PortableKernel>>(g);
            break;
    }
}

// ---- linear with bfloat16 weights ----
// out[N, OC] = bf16(x)[N, C] W^T + bias, with W [OC, C] stored as bfloat16 bits: the products of
// a few rows at a time in generation (KVCache), where reading the weights is the whole cost and
// bfloat16 halves it. Same numbers as gemm_bf16 on the float weights, up to the order of the
// float32 sums. Columns are split across threads in fixed chunks; each row of x re-reads W, so
// this is for small N.
inline void linear_forward_bf16_weights(float* out, const float* x, const std::uint16_t* weight,
                                        const float* bias, std::int64_t N, std::int64_t C,
                                        std::int64_t OC) {
    constexpr std::int64_t kColumns = 64;  // per task: 64 rows of W, 96 KiB at C = 768
    const bool dpbf16 = gemm_detail::current_bf16_kernel() == gemm_detail::Bf16Kernel::avx512bf16;
    (void)dpbf16;
    detail::parallel_for((OC + kColumns - 1) / kColumns, [&](std::int64_t chunk) {
        const std::int64_t j0 = chunk * kColumns, j1 = std::min(OC, j0 + kColumns);
        for (std::int64_t i = 0; i < N; ++i) {
            float* row = out + i * OC;
#ifdef NANOGPT_X86_SIMD
            if (dpbf16)
                gemm_detail::row_bf16_weights_avx512bf16(x + i * C, weight, C, j0, j1, row);
            else
#endif
                gemm_detail::row_bf16_weights(x + i * C, weight, C, j0, j1, row);
            if (bias != nullptr)
                for (std::int64_t j = j0; j < j1; ++j) row[j] += bias[j];
        }
    });
}

/// dst[i] = the bfloat16 bits of src[i], i < n (rounding of detail/bfloat16.hpp), in chunks
/// across threads.
inline void to_bf16(const float* src, std::int64_t n, std::uint16_t* dst) {
    constexpr std::int64_t kChunk = 1 << 16;
    const bool dpbf16 = gemm_detail::current_bf16_kernel() == gemm_detail::Bf16Kernel::avx512bf16;
    (void)dpbf16;
    detail::parallel_for((n + kChunk - 1) / kChunk, [&](std::int64_t chunk) {
        const std::int64_t i0 = chunk * kChunk, len = std::min(kChunk, n - i0);
#ifdef NANOGPT_X86_SIMD
        if (dpbf16) {
            gemm_detail::to_bf16_avx512bf16(src + i0, len, dst + i0);
            return;
        }
#endif
        for (std::int64_t i = i0; i < i0 + len; ++i) dst[i] = detail::bf16_bits(src[i]);
    });
}

}  // namespace nanogpt::kernels
