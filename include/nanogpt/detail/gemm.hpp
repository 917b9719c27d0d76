// gemm.hpp — matrix multiply kernels: C = (accumulate ? C : 0) + op(A) * op(B), row-major floats.
//
// Nearly all of a GPT's training time is spent here (Linear forward NT, backward NN and TN), so
// this is the one place written for speed first. It follows the GotoBLAS/BLIS recipe:
//   * cache blocking: a KC-deep slice of B, NC columns wide, is packed once and shared by all
//     threads; each thread packs an MC x KC block of A that stays in its L2 cache;
//   * packing: panels are copied into contiguous, aligned slivers of MR rows (A) or NR columns (B),
//     zero-padded at the edges. Packing also undoes the transposes, so one micro-kernel serves
//     NN, NT, TN and TT;
//   * a register-tiled micro-kernel: an MR x NR tile of C lives in vector registers for the whole
//     KC loop, fed by one broadcast of A and NR/width loads of B per step.
// Kernels exist for AVX-512 and AVX2 (compiled with target attributes, chosen at run time, so a
// build without -march still uses them), for AArch64's NEON (gemm_kernels_neon.hpp), and in
// plain C++ for every other CPU. Products with at most 4 rows (sampling a token at a time) skip
// packing and stream B directly.
// Threads (parallel.hpp's regions: OpenMP or the std::thread pool) split C by rows, or by
// columns when M is short; a call from inside a parallel region, or a product under ~2^20
// multiply-adds, runs on the calling thread.
// Determinism: block sizes never depend on the thread count and K is never split across threads,
// so every element of C sees the same floating-point operations whatever the thread count.
// An optional epilogue finishes each tile of C while it is still in L1: a bias added to every
// row, then optionally GELU written to a second matrix. Linear layers use it, which saves the
// separate passes over C that a bias add and a GELU would each make through memory, which
// matters where the last-level cache cannot hold the matrices.
// gemm_reference is the naive twin the tests compare against. The kernels (packing layout,
// micro-kernels, skinny path, epilogue) are in gemm_kernels.hpp; this file holds the reference,
// the blocked driver, the threading and the choice of kernel. Builds on cpu_features.hpp.
#pragma once

#include <algorithm>    // std::min, std::max
#include <atomic>       // std::atomic
#include <cstddef>      // std::size_t
#include <cstdint>      // std::int64_t, std::uintptr_t
#include <cstring>      // std::strcmp
#include <new>          // operator new(size, align_val_t, nothrow), std::align_val_t
#include <type_traits>  // std::is_same_v

#include "nanogpt/detail/cpu_features.hpp"
#include "nanogpt/detail/gemm_kernels.hpp"
#include "nanogpt/detail/gemm_kernels_neon.hpp"
#include "nanogpt/detail/parallel.hpp"  // parallel_region, team_barrier, max_threads
#include "nanogpt/dtype.hpp"
namespace nanogpt::kernels {

// ---- reference ----
// C[M,N] = (accumulate ? C : 0) + op(A)[M,K] * op(B)[K,N], then the epilogue; the plain triple
// loop, any T.
template <class T>
void gemm_reference(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K,
                    const T* A, std::int64_t lda, const T* B, std::int64_t ldb, T* C,
                    std::int64_t ldc, bool accumulate, const GemmEpilogue<T>& epilogue = {}) {
    for (std::int64_t i = 0; i < M; ++i) {
        for (std::int64_t j = 0; j < N; ++j) {
            T sum = T(0);
            for (std::int64_t p = 0; p < K; ++p) {
                const T a = trans_a ? A[p * lda + i] : A[i * lda + p];
                const T b = trans_b ? B[j * ldb + p] : B[p * ldb + j];
                sum += a * b;
            }
            C[i * ldc + j] = accumulate ? C[i * ldc + j] + sum : sum;
        }
        gemm_detail::finish_tile(epilogue, C + i * ldc, ldc, i, 0, 1, N);
    }
}

namespace gemm_detail {

// ---- packing (layout: see gemm_kernels.hpp) ----

template <class Kernel>
inline void pack_a_floats(const GemmArgs& g, std::int64_t i0, std::int64_t mc, std::int64_t p0,
                          std::int64_t kc, float* dst) {
    constexpr int MR = Kernel::mr;
    if (g.trans_a) {  // A is [K,M]: row p holds all mc values contiguously; walk it once
        for (std::int64_t p = 0; p < kc; ++p) {
            const float* src = g.A + (p0 + p) * g.lda + i0;
            for (std::int64_t s = 0; s < mc; s += MR) {
                const int rows = static_cast<int>(std::min<std::int64_t>(MR, mc - s));
                copy_rows<MR>(src + s, 0, rows, 1, dst + s * kc + p * MR);
            }
        }
        return;
    }
    for (std::int64_t s = 0; s < mc; s += MR) {  // A is [M,K]: a transpose per sliver
        const int rows = static_cast<int>(std::min<std::int64_t>(MR, mc - s));
        Kernel::template interleave<MR>(g.A + (i0 + s) * g.lda + p0, g.lda, rows, kc, dst + s * kc);
    }
}

template <class Kernel>
inline void pack_b_floats(const GemmArgs& g, std::int64_t j0, int cols, std::int64_t p0,
                          std::int64_t kc, float* dst) {
    if (g.trans_b)  // B is [N,K]: a transpose
        Kernel::template interleave<Kernel::nr>(g.B + j0 * g.ldb + p0, g.ldb, cols, kc, dst);
    else  // B is [K,N]: each p is a contiguous run
        copy_rows<Kernel::nr>(g.B + p0 * g.ldb + j0, g.ldb, cols, kc, dst);
}

// A kernel with a packed format of its own (the bf16 kernels, gemm_bf16.hpp) supplies pack_a and
// pack_b; every other kernel gets the float slivers above.
template <class Kernel>
inline void pack_a(const GemmArgs& g, std::int64_t i0, std::int64_t mc, std::int64_t p0,
                   std::int64_t kc, float* dst) {
    if constexpr (requires { Kernel::pack_a(g, i0, mc, p0, kc, dst); })
        Kernel::pack_a(g, i0, mc, p0, kc, dst);
    else
        pack_a_floats<Kernel>(g, i0, mc, p0, kc, dst);
}

template <class Kernel>
inline void pack_b_sliver(const GemmArgs& g, std::int64_t j0, int cols, std::int64_t p0,
                          std::int64_t kc, float* dst) {
    if constexpr (requires { Kernel::pack_b(g, j0, cols, p0, kc, dst); })
        Kernel::pack_b(g, j0, cols, p0, kc, dst);
    else
        pack_b_floats<Kernel>(g, j0, cols, p0, kc, dst);
}

// ---- blocked driver ----

inline std::int64_t round_up(std::int64_t x, std::int64_t to) { return (x + to - 1) / to * to; }

// Floats that one packed row (A) or column (B) of depth kc takes in the arena: kc, or fewer for
// a kernel with a narrower packed format (bf16 pairs: (kc + 1) / 2 words), which thereby needs
// (and touches) only that much packing memory.
template <class Kernel>
constexpr std::int64_t packed_depth(std::int64_t kc) {
    if constexpr (requires { Kernel::packed_depth(kc); })
        return Kernel::packed_depth(kc);
    else
        return kc;
}

// Depth of the K blocks: at most kc_max, split evenly (K = 768 with kc_max 512 gives 2 x 384, not
// 512 + 256), because every K block costs one read-modify-write pass over C. Depends on K only,
// never on the thread count.
inline std::int64_t k_block(std::int64_t K, std::int64_t kc_max) {
    const std::int64_t blocks = (K + kc_max - 1) / kc_max;
    return (K + blocks - 1) / blocks;
}

// Floats of packing space for one call: one shared B slice plus one A block per thread.
template <class Kernel>
inline std::size_t arena_floats(const GemmArgs& g, int threads) {
    const std::int64_t kc = packed_depth<Kernel>(k_block(g.K, Kernel::kc));
    const std::int64_t nc = std::min(Kernel::nc, round_up(g.N, Kernel::nr));
    const std::int64_t mc = std::min(Kernel::mc, round_up(g.M, Kernel::mr));
    return static_cast<std::size_t>(kc * nc + threads * mc * kc);
}

// Splits `threads` into a grid of row groups x column groups (tm divides threads). Rows first:
// the B slice is shared, so a row split packs nothing twice; columns only when M is too short to
// give every thread a few tiles (then the threads of one row group pack the same A block).
inline int row_groups(std::int64_t M, int mr, int threads) {
    int tm = threads;
    while (tm > 1 && (threads % tm != 0 || M < std::int64_t(tm) * 4 * mr)) --tm;
    return tm;
}

// The MC x KC block of A at rows [i0, i0+mc) times the packed B slivers [s_begin, s_end). On the
// last K block (finish) each tile gets the epilogue right after the micro-kernel stored it.
template <class Kernel>
inline void macro_kernel(const GemmArgs& g, const float* a_pack, const float* b_pack,
                         std::int64_t i0, std::int64_t mc, std::int64_t j0, std::int64_t nc,
                         std::int64_t kc, std::int64_t s_begin, std::int64_t s_end, bool overwrite,
                         bool finish) {
    constexpr int MR = Kernel::mr, NR = Kernel::nr;
    const std::int64_t pd = packed_depth<Kernel>(kc);  // floats per packed row or column
    // B sliver outermost: it stays in cache (L1; L2 for AVX-512's deep KC) while the A slivers
    // stream past from L2.
    for (std::int64_t s = s_begin; s < s_end; ++s) {
        const int n = static_cast<int>(std::min<std::int64_t>(NR, nc - s * NR));
        const float* b = b_pack + s * NR * pd;
        for (std::int64_t ir = 0; ir < mc; ir += MR) {
            const int m = static_cast<int>(std::min<std::int64_t>(MR, mc - ir));
            float* c = g.C + (i0 + ir) * g.ldc + j0 + s * NR;
            Kernel::micro(kc, a_pack + ir * pd, b, c, g.ldc, m, n, overwrite);
            if (finish) Kernel::finish(g, c, i0 + ir, j0 + s * NR, m, n);
        }
    }
}

// Thread `tid` of `nt` computes its share of C. Called by every thread of the team, or once
// with nt == 1. The two barriers guard the shared B slice: filled before use, used before refill.
template <class Kernel>
inline void gemm_thread(const GemmArgs& g, float* arena, int tid, int nt) {
    constexpr int MR = Kernel::mr, NR = Kernel::nr;
    const std::int64_t kc_max = k_block(g.K, Kernel::kc), pd_max = packed_depth<Kernel>(kc_max);
    const std::int64_t nc_max = std::min(Kernel::nc, round_up(g.N, NR));
    const std::int64_t mc_max = std::min(Kernel::mc, round_up(g.M, MR));
    float* b_pack = arena;
    float* a_pack = arena + pd_max * nc_max + tid * mc_max * pd_max;

    const int tm = row_groups(g.M, MR, nt), tn = nt / tm;
    const int row_group = tid / tn, col_group = tid % tn;
    // Row range of this thread, split on MR boundaries so no tile straddles two threads.
    const std::int64_t row_tiles = (g.M + MR - 1) / MR;
    const std::int64_t m_begin = std::min(g.M, row_tiles * row_group / tm * MR);
    const std::int64_t m_end = std::min(g.M, row_tiles * (row_group + 1) / tm * MR);

    for (std::int64_t jc = 0; jc < g.N; jc += Kernel::nc) {
        const std::int64_t nc = std::min(Kernel::nc, g.N - jc);
        const std::int64_t slivers = (nc + NR - 1) / NR;
        for (std::int64_t pc = 0; pc < g.K; pc += kc_max) {
            const std::int64_t kc = std::min(kc_max, g.K - pc), pd = packed_depth<Kernel>(kc);
            for (std::int64_t s = slivers * tid / nt; s < slivers * (tid + 1) / nt; ++s)
                pack_b_sliver<Kernel>(g, jc + s * NR,
                                      static_cast<int>(std::min<std::int64_t>(NR, nc - s * NR)), pc,
                                      kc, b_pack + s * NR * pd);
            if (nt > 1) nanogpt::detail::team_barrier();
            const std::int64_t s_begin = slivers * col_group / tn;
            const std::int64_t s_end = slivers * (col_group + 1) / tn;
            for (std::int64_t ic = m_begin; ic < m_end; ic += Kernel::mc) {
                const std::int64_t mc = std::min(Kernel::mc, m_end - ic);
                pack_a<Kernel>(g, ic, mc, pc, kc, a_pack);
                macro_kernel<Kernel>(g, a_pack, b_pack, ic, mc, jc, nc, kc, s_begin, s_end,
                                     pc == 0 && !g.accumulate, pc + kc == g.K && g.has_epilogue());
            }
            if (nt > 1) nanogpt::detail::team_barrier();
        }
    }
}

// Packing space, grown (never shrunk) per calling thread: after the first call of the largest
// shape nothing is allocated. Allocation uses the nothrow form, so failure is reported, not thrown.
struct PackArena {
    float* data = nullptr;
    std::size_t floats = 0;
    PackArena() = default;
    PackArena(const PackArena&) = delete;
    PackArena& operator=(const PackArena&) = delete;
    ~PackArena() { release(); }
    void release() {
        if (data) ::operator delete (data, std::align_val_t{64});
        data = nullptr;
        floats = 0;
    }
    float* reserve(std::size_t n) {
        if (n <= floats) return data;
        release();
        data = static_cast<float*>(
            ::operator new (n * sizeof(float), std::align_val_t{64}, std::nothrow));
        if (data) floats = n;
        return data;
    }
};

inline PackArena& pack_arena() {
    thread_local PackArena arena;
    return arena;
}

// Threads for a call: one when already inside a parallel region (nesting would oversubscribe)
// or when the product is so small (< ~2 MFLOP) that waking the team costs more than it saves.
inline int gemm_threads(std::int64_t M, std::int64_t N, std::int64_t K) {
    if (nanogpt::detail::in_parallel() || M * N * K < (std::int64_t(1) << 20)) return 1;
    return std::max(1, nanogpt::detail::max_threads());
}

// Few rows: the skinny path, its columns split across threads.
inline bool is_skinny(const GemmArgs& g) { return g.M <= 4; }

// A skinny product is a pass over op(B) (sampling: the weights, once per token), limited by
// memory bandwidth rather than arithmetic, and one core cannot draw all of it: split the columns
// whenever op(B) is big enough (64K floats) to amortise waking the team, however few the rows.
template <class Kernel>
inline void sgemm_skinny(const GemmArgs& g) {
    nanogpt::detail::parallel_region(gemm_threads(1, g.N, g.K * 16), [&](int tid, int nt) {
        Kernel::skinny(g, g.N * tid / nt, g.N * (tid + 1) / nt);
    });
}

template <class Kernel>
inline void sgemm_blocked(const GemmArgs& g) {
    if (is_skinny(g)) {
        sgemm_skinny<Kernel>(g);
        return;
    }
    const int threads = gemm_threads(g.M, g.N, g.K);
    float* arena = pack_arena().reserve(arena_floats<Kernel>(g, threads));
    if (!arena) {  // out of memory: slow but correct, and still no throw
        gemm_reference(g.trans_a, g.trans_b, g.M, g.N, g.K, g.A, g.lda, g.B, g.ldb, g.C, g.ldc,
                       g.accumulate, g.epilogue);
        return;
    }
    nanogpt::detail::parallel_region(
        threads, [&](int tid, int nt) { gemm_thread<Kernel>(g, arena, tid, nt); });
}

// ---- kernel choice ----

enum class SgemmKernel { portable = 0, avx2 = 1, avx512 = 2, neon = 3 };

inline SgemmKernel best_sgemm_kernel() {
    const nanogpt::detail::CpuFeatures& f = nanogpt::detail::cpu_features();
#ifdef NANOGPT_X86_SIMD
    if (f.avx512) return SgemmKernel::avx512;
    if (f.avx2_fma) return SgemmKernel::avx2;
#endif
#ifdef NANOGPT_ARM_NEON
    if (f.neon) return SgemmKernel::neon;
#endif
    (void)f;
    return SgemmKernel::portable;
}

// The portable kernel runs everywhere, the best one here, and AVX2 also where AVX-512 is best.
inline bool sgemm_kernel_supported(SgemmKernel k) {
    const SgemmKernel best = best_sgemm_kernel();
    return k == SgemmKernel::portable || k == best ||
           (k == SgemmKernel::avx2 && best == SgemmKernel::avx512);
}

// -1 = automatic; otherwise a forced SgemmKernel (tests use it to reach every path).
inline std::atomic<int> forced_sgemm_kernel{-1};

inline SgemmKernel current_sgemm_kernel() {
    const int forced = forced_sgemm_kernel.load(std::memory_order_relaxed);
    if (forced >= 0) return static_cast<SgemmKernel>(forced);
    static const SgemmKernel best = best_sgemm_kernel();  // decided once
    return best;
}

}  // namespace gemm_detail

/// Name of the kernel sgemm uses now: "avx512", "avx2", "neon" or "portable".
inline const char* sgemm_kernel_name() {
    switch (gemm_detail::current_sgemm_kernel()) {
        case gemm_detail::SgemmKernel::avx512:
            return "avx512";
        case gemm_detail::SgemmKernel::avx2:
            return "avx2";
        case gemm_detail::SgemmKernel::neon:
            return "neon";
        default:
            return "portable";
    }
}

/// Forces sgemm onto one kernel ("avx512", "avx2", "neon", "portable"), or back to automatic choice with
/// "auto" or nullptr. Returns false, changing nothing, for an unknown name or one this CPU lacks.
inline bool sgemm_force_kernel(const char* name) {
    using gemm_detail::SgemmKernel;
    if (name == nullptr || std::strcmp(name, "auto") == 0) {
        gemm_detail::forced_sgemm_kernel.store(-1);
        return true;
    }
    SgemmKernel k;
    if (std::strcmp(name, "avx512") == 0)
        k = SgemmKernel::avx512;
    else if (std::strcmp(name, "avx2") == 0)
        k = SgemmKernel::avx2;
    else if (std::strcmp(name, "neon") == 0)
        k = SgemmKernel::neon;
    else if (std::strcmp(name, "portable") == 0)
        k = SgemmKernel::portable;
    else
        return false;
    if (!gemm_detail::sgemm_kernel_supported(k)) return false;
    gemm_detail::forced_sgemm_kernel.store(static_cast<int>(k));
    return true;
}

// ---- sgemm ----
// The fast float path; same contract as gemm_reference. Never throws; allocates only when a call
// needs more packing space than any earlier call on this thread.
inline void sgemm(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K,
                  const float* A, std::int64_t lda, const float* B, std::int64_t ldb, float* C,
                  std::int64_t ldc, bool accumulate, const GemmEpilogue<float>& epilogue = {}) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {  // empty sum: C keeps its value or becomes zero, then the epilogue
        for (std::int64_t i = 0; i < M; ++i) {
            if (!accumulate)
                for (std::int64_t j = 0; j < N; ++j) C[i * ldc + j] = 0.0f;
            gemm_detail::finish_tile(epilogue, C + i * ldc, ldc, i, 0, 1, N);
        }
        return;
    }
    const gemm_detail::GemmArgs g{trans_a, trans_b, M, N,   K,          A,       lda,
                                  B,       ldb,     C, ldc, accumulate, epilogue};
    switch (gemm_detail::current_sgemm_kernel()) {
#ifdef NANOGPT_X86_SIMD
        case gemm_detail::SgemmKernel::avx512:
            gemm_detail::sgemm_blocked<gemm_detail::Avx512Kernel>(g);
            break;
        case gemm_detail::SgemmKernel::avx2:
            gemm_detail::sgemm_blocked<gemm_detail::Avx2Kernel>(g);
            break;
#endif
#ifdef NANOGPT_ARM_NEON
        case gemm_detail::SgemmKernel::neon:
            gemm_detail::sgemm_blocked<gemm_detail::NeonKernel>(g);
            break;
#endif
        default:
            gemm_detail::sgemm_blocked<gemm_detail::PortableKernel>(g);
            break;
    }
}

// Defined in gemm_bf16.hpp (included at the end of this file): the bfloat16 product.
inline void gemm_bf16(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K,
                      const float* A, std::int64_t lda, const float* B, std::int64_t ldb, float* C,
                      std::int64_t ldc, bool accumulate, const GemmEpilogue<float>& epilogue);

/// Dispatches: float goes to sgemm, or to gemm_bf16 while matmul_dtype() is bfloat16 (dtype.hpp);
/// any other T to gemm_reference.
template <class T>
void gemm(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K, const T* A,
          std::int64_t lda, const T* B, std::int64_t ldb, T* C, std::int64_t ldc, bool accumulate,
          const GemmEpilogue<T>& epilogue = {}) {
    if constexpr (std::is_same_v<T, float>) {
        if (matmul_dtype() == Dtype::bfloat16)
            gemm_bf16(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate, epilogue);
        else
            sgemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate, epilogue);
    } else
        gemm_reference(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate, epilogue);
}

}  // namespace nanogpt::kernels

// After everything above, which it builds on (it includes this file too; #pragma once makes the
// order of inclusion irrelevant).
#include "nanogpt/detail/gemm_bf16.hpp"
