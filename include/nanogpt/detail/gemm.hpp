// gemm.hpp — matrix multiply kernels: C = (accumulate ? C : 0) + op(A) * op(B), row-major floats.
//
// Nearly all of a GPT's training time is spent here (Linear forward NT, backward NN and TN), so this
// is the one place written for speed first. It follows the GotoBLAS/BLIS recipe:
//   * cache blocking: a KC-deep slice of B, NC columns wide, is packed once and shared by all
//     threads; each thread packs an MC x KC block of A that stays in its L2 cache;
//   * packing: panels are copied into contiguous, aligned slivers of MR rows (A) or NR columns (B),
//     zero-padded at the edges. Packing also undoes the transposes, so one micro-kernel serves
//     NN, NT, TN and TT;
//   * a register-tiled micro-kernel: an MR x NR tile of C lives in vector registers for the whole
//     KC loop, fed by one broadcast of A and NR/width loads of B per step.
// Kernels exist for AVX-512 and AVX2 (compiled with target attributes, chosen at run time, so a
// build without -march still uses them) and in plain C++ for every other CPU.
// Determinism: block sizes never depend on the thread count and K is never split across threads,
// so every element of C sees the same floating-point operations whatever the thread count.
// gemm_reference is the naive twin the tests compare against. Builds on cpu_features.hpp.
#pragma once

#include <algorithm>  // std::min, std::max
#include <atomic>     // std::atomic
#include <cstddef>    // std::size_t
#include <cstdint>    // std::int64_t
#include <cstring>    // std::strcmp
#include <new>        // operator new(size, align_val_t, nothrow), std::align_val_t
#include <type_traits>  // std::is_same_v

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define NANOGPT_GEMM_X86 1
#endif

#include "nanogpt/detail/cpu_features.hpp"

namespace nanogpt::kernels {

// ---- reference ----
// C[M,N] = (accumulate ? C : 0) + op(A)[M,K] * op(B)[K,N]; the plain triple loop, any T.
template <class T>
void gemm_reference(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K,
                    const T* A, std::int64_t lda, const T* B, std::int64_t ldb, T* C,
                    std::int64_t ldc, bool accumulate) {
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
    }
}

namespace gemm_detail {

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
};

// ---- packing ----
// A block: rows [i0, i0+mc) x depth [p0, p0+kc) of op(A) become slivers of MR rows; sliver s holds,
// for each p, the MR values op(A)[i0 + s*MR + r][p0 + p] side by side (zeros past row mc), which is
// exactly the order the micro-kernel broadcasts them in.
template <int MR>
inline void pack_a(const GemmArgs& g, std::int64_t i0, std::int64_t mc, std::int64_t p0,
                   std::int64_t kc, float* dst) {
    for (std::int64_t s = 0; s < mc; s += MR, dst += MR * kc) {
        const int rows = static_cast<int>(std::min<std::int64_t>(MR, mc - s));
        if (g.trans_a) {  // A is [K,M]: the MR values of one p are adjacent in memory
            const float* src = g.A + p0 * g.lda + i0 + s;
            for (std::int64_t p = 0; p < kc; ++p, src += g.lda) {
                float* d = dst + p * MR;
                for (int r = 0; r < rows; ++r) d[r] = src[r];
                for (int r = rows; r < MR; ++r) d[r] = 0.0f;
            }
        } else {  // A is [M,K]: walk MR rows in step, reading each sequentially
            const float* src = g.A + (i0 + s) * g.lda + p0;
            if (rows == MR) {
                for (std::int64_t p = 0; p < kc; ++p)
                    for (int r = 0; r < MR; ++r) dst[p * MR + r] = src[r * g.lda + p];
            } else {
                for (std::int64_t p = 0; p < kc; ++p) {
                    for (int r = 0; r < rows; ++r) dst[p * MR + r] = src[r * g.lda + p];
                    for (int r = rows; r < MR; ++r) dst[p * MR + r] = 0.0f;
                }
            }
        }
    }
}

// B sliver: columns [j0, j0+cols) (cols <= NR) x depth [p0, p0+kc) of op(B); for each p the NR
// values op(B)[p0 + p][j0 + j] are adjacent (zeros past cols), one aligned vector load each.
template <int NR>
inline void pack_b_sliver(const GemmArgs& g, std::int64_t j0, int cols, std::int64_t p0,
                          std::int64_t kc, float* dst) {
    if (!g.trans_b) {  // B is [K,N]: each p is a contiguous run of cols floats
        const float* src = g.B + p0 * g.ldb + j0;
        for (std::int64_t p = 0; p < kc; ++p, src += g.ldb, dst += NR) {
            for (int j = 0; j < cols; ++j) dst[j] = src[j];
            for (int j = cols; j < NR; ++j) dst[j] = 0.0f;
        }
    } else {  // B is [N,K]: a transpose; read NR rows in step, each sequentially
        const float* src = g.B + j0 * g.ldb + p0;
        for (std::int64_t p = 0; p < kc; ++p, dst += NR) {
            for (int j = 0; j < cols; ++j) dst[j] = src[j * g.ldb + p];
            for (int j = cols; j < NR; ++j) dst[j] = 0.0f;
        }
    }
}

// ---- micro-kernels ----
// Each computes one MR x NR tile: acc = sum over p < kc of a[p*MR + r] * b[p*NR + j], then stores
// the top-left m x n of it to C, either overwriting (first K block without accumulate) or adding.
// a and b are packed slivers; b is 64-byte aligned.

// Portable: plain loops the compiler can vectorise for whatever the target is.
struct PortableKernel {
    static constexpr int mr = 4, nr = 16;
    // 4 x 256 A floats and 256 x 16 B floats fit a 32 KiB L1; MC x KC = 64 KiB sits in L2.
    static constexpr std::int64_t mc = 64, kc = 256, nc = 2048;
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

#ifdef NANOGPT_GEMM_X86

// AVX2: 6 x 16 tile = 12 ymm accumulators + 2 loads of B + 1 broadcast of A, within 16 registers.
// FMA latency 4-5 cycles x 2 ports needs >= 10 independent accumulators to keep both ports busy.
struct Avx2Kernel {
    static constexpr int mr = 6, nr = 16;
    // B sliver 256 x 16 floats = 16 KiB stays in L1; A block 96 x 256 floats = 96 KiB in L2.
    static constexpr std::int64_t mc = 96, kc = 256, nc = 4096;

    __attribute__((target("avx2,fma"))) static void micro(std::int64_t kc_len, const float* a,
                                                          const float* b, float* c,
                                                          std::int64_t ldc, int m, int n,
                                                          bool overwrite) {
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

// AVX-512: 14 x 32 tile = 28 zmm accumulators + 2 loads of B + 1 broadcast of A = 31 of 32
// registers. Per step: 28 FMAs against 2 vector loads and 14 broadcasts, so the loads never limit
// the two FMA ports.
struct Avx512Kernel {
    static constexpr int mr = 14, nr = 32;
    // B sliver 256 x 32 floats = 32 KiB fits the 48 KiB L1 beside one A sliver (14 KiB);
    // A block 336 x 256 floats = 336 KiB stays in a 1 MiB L2; NC keeps GPT widths in one B slice.
    static constexpr std::int64_t mc = 336, kc = 256, nc = 4096;

    __attribute__((target("avx512f,avx512vl,fma"))) static void micro(
        std::int64_t kc_len, const float* a, const float* b, float* c, std::int64_t ldc, int m,
        int n, bool overwrite) {
        // Start fetching the C tile now: it is read only after the k loop, and a 2048 x 3072
        // C does not fit in cache, so without this each tile would end on a memory stall.
        for (int r = 0; r < m; ++r) {
            _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + n - 1), _MM_HINT_T0);
        }
        __m512 acc0[mr], acc1[mr];
#pragma GCC unroll 16
        for (int r = 0; r < mr; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
        for (std::int64_t p = 0; p < kc_len; ++p, a += mr, b += nr) {
            const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 16
            for (int r = 0; r < mr; ++r) {
                const __m512 ar = _mm512_set1_ps(a[r]);
                acc0[r] = _mm512_fmadd_ps(ar, b0, acc0[r]);
                acc1[r] = _mm512_fmadd_ps(ar, b1, acc1[r]);
            }
        }
        // Right-edge masks; masked-off lanes are neither read nor written.
        const __mmask16 mask0 = n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u);
        const __mmask16 mask1 =
            n >= 32 ? __mmask16(0xFFFF) : n <= 16 ? __mmask16(0) : __mmask16((1u << (n - 16)) - 1u);
#pragma GCC unroll 16
        for (int r = 0; r < mr; ++r) {
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
};

#endif  // NANOGPT_GEMM_X86

// ---- blocked driver ----

inline std::int64_t round_up(std::int64_t x, std::int64_t to) { return (x + to - 1) / to * to; }

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
    const std::int64_t kc = k_block(g.K, Kernel::kc);
    const std::int64_t nc = std::min(Kernel::nc, round_up(g.N, Kernel::nr));
    const std::int64_t mc = std::min(Kernel::mc, round_up(g.M, Kernel::mr));
    return static_cast<std::size_t>(kc * nc + threads * mc * kc);
}

inline void team_barrier() {
#ifdef _OPENMP
#pragma omp barrier
#endif
}

// Splits `threads` into a grid of row groups x column groups: rows first (each thread then packs
// B-sized work only once), columns only when M is too short to give every thread a few tiles.
inline int row_groups(std::int64_t M, int mr, int threads) {
    int tm = threads;
    while (tm > 1 && (threads % tm != 0 || M < std::int64_t(tm) * 4 * mr)) --tm;
    return tm;
}

// The MC x KC block of A at rows [i0, i0+mc) times the packed B slivers [s_begin, s_end).
template <class Kernel>
inline void macro_kernel(const GemmArgs& g, const float* a_pack, const float* b_pack,
                         std::int64_t i0, std::int64_t mc, std::int64_t j0, std::int64_t nc,
                         std::int64_t kc, std::int64_t s_begin, std::int64_t s_end,
                         bool overwrite) {
    constexpr int MR = Kernel::mr, NR = Kernel::nr;
    // B sliver outermost: it stays in L1 while the A slivers stream past from L2.
    for (std::int64_t s = s_begin; s < s_end; ++s) {
        const int n = static_cast<int>(std::min<std::int64_t>(NR, nc - s * NR));
        const float* b = b_pack + s * NR * kc;
        for (std::int64_t ir = 0; ir < mc; ir += MR) {
            const int m = static_cast<int>(std::min<std::int64_t>(MR, mc - ir));
            float* c = g.C + (i0 + ir) * g.ldc + j0 + s * NR;
            Kernel::micro(kc, a_pack + ir * kc, b, c, g.ldc, m, n, overwrite);
        }
    }
}

// Thread `tid` of `nt` computes its share of C. Called by every thread of the team, or once
// with nt == 1. The two barriers guard the shared B slice: filled before use, used before refill.
template <class Kernel>
inline void gemm_thread(const GemmArgs& g, float* arena, int tid, int nt) {
    constexpr int MR = Kernel::mr, NR = Kernel::nr;
    const std::int64_t kc_max = k_block(g.K, Kernel::kc);
    const std::int64_t nc_max = std::min(Kernel::nc, round_up(g.N, NR));
    const std::int64_t mc_max = std::min(Kernel::mc, round_up(g.M, MR));
    float* b_pack = arena;
    float* a_pack = arena + kc_max * nc_max + tid * mc_max * kc_max;

    const int tm = row_groups(g.M, MR, nt), tn = nt / tm;
    const int row_group = tid / tn, col_group = tid % tn;
    const bool idle = row_group >= tm;  // only when nt is not a multiple of tm (never, today)
    // Row range of this thread, split on MR boundaries so no tile straddles two threads.
    const std::int64_t row_tiles = (g.M + MR - 1) / MR;
    const std::int64_t m_begin = std::min(g.M, row_tiles * row_group / tm * MR);
    const std::int64_t m_end = std::min(g.M, row_tiles * (row_group + 1) / tm * MR);

    for (std::int64_t jc = 0; jc < g.N; jc += Kernel::nc) {
        const std::int64_t nc = std::min(Kernel::nc, g.N - jc);
        const std::int64_t slivers = (nc + NR - 1) / NR;
        for (std::int64_t pc = 0; pc < g.K; pc += kc_max) {
            const std::int64_t kc = std::min(kc_max, g.K - pc);
            for (std::int64_t s = slivers * tid / nt; s < slivers * (tid + 1) / nt; ++s)
                pack_b_sliver<NR>(g, jc + s * NR,
                                  static_cast<int>(std::min<std::int64_t>(NR, nc - s * NR)), pc,
                                  kc, b_pack + s * NR * kc);
            if (nt > 1) team_barrier();
            const std::int64_t s_begin = slivers * col_group / tn;
            const std::int64_t s_end = slivers * (col_group + 1) / tn;
            for (std::int64_t ic = m_begin; !idle && ic < m_end; ic += Kernel::mc) {
                const std::int64_t mc = std::min(Kernel::mc, m_end - ic);
                pack_a<MR>(g, ic, mc, pc, kc, a_pack);
                macro_kernel<Kernel>(g, a_pack, b_pack, ic, mc, jc, nc, kc, s_begin, s_end,
                                     pc == 0 && !g.accumulate);
            }
            if (nt > 1) team_barrier();
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
        if (data) ::operator delete(data, std::align_val_t{64});
        data = nullptr;
        floats = 0;
    }
    float* reserve(std::size_t n) {
        if (n <= floats) return data;
        release();
        data = static_cast<float*>(
            ::operator new(n * sizeof(float), std::align_val_t{64}, std::nothrow));
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
#ifdef _OPENMP
    if (omp_in_parallel() || M * N * K < (std::int64_t(1) << 20)) return 1;
    return std::max(1, omp_get_max_threads());
#else
    (void)M, (void)N, (void)K;
    return 1;
#endif
}

template <class Kernel>
inline void sgemm_blocked(const GemmArgs& g) {
    const int threads = gemm_threads(g.M, g.N, g.K);
    float* arena = pack_arena().reserve(arena_floats<Kernel>(g, threads));
    if (!arena) {  // out of memory: slow but correct, and still no throw
        gemm_reference(g.trans_a, g.trans_b, g.M, g.N, g.K, g.A, g.lda, g.B, g.ldb, g.C, g.ldc,
                       g.accumulate);
        return;
    }
#ifdef _OPENMP
    if (threads > 1) {
#pragma omp parallel num_threads(threads)
        gemm_thread<Kernel>(g, arena, omp_get_thread_num(), omp_get_num_threads());
        return;
    }
#endif
    gemm_thread<Kernel>(g, arena, 0, 1);
}

// ---- kernel choice ----

enum class SgemmKernel { portable = 0, avx2 = 1, avx512 = 2 };

inline SgemmKernel best_sgemm_kernel() {
    const nanogpt::detail::CpuFeatures& f = nanogpt::detail::cpu_features();
#ifdef NANOGPT_GEMM_X86
    if (f.avx512) return SgemmKernel::avx512;
    if (f.avx2_fma) return SgemmKernel::avx2;
#else
    (void)f;
#endif
    return SgemmKernel::portable;
}

inline bool sgemm_kernel_supported(SgemmKernel k) {
    return static_cast<int>(k) <= static_cast<int>(best_sgemm_kernel());
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

/// Name of the kernel sgemm uses now: "avx512", "avx2" or "portable".
inline const char* sgemm_kernel_name() {
    switch (gemm_detail::current_sgemm_kernel()) {
        case gemm_detail::SgemmKernel::avx512: return "avx512";
        case gemm_detail::SgemmKernel::avx2: return "avx2";
        default: return "portable";
    }
}

/// Forces sgemm onto one kernel ("avx512", "avx2", "portable"), or back to automatic choice with
/// "auto" or nullptr. Returns false, changing nothing, for an unknown name or one this CPU lacks.
inline bool sgemm_force_kernel(const char* name) {
    using gemm_detail::SgemmKernel;
    if (name == nullptr || std::strcmp(name, "auto") == 0) {
        gemm_detail::forced_sgemm_kernel.store(-1);
        return true;
    }
    SgemmKernel k;
    if (std::strcmp(name, "avx512") == 0) k = SgemmKernel::avx512;
    else if (std::strcmp(name, "avx2") == 0) k = SgemmKernel::avx2;
    else if (std::strcmp(name, "portable") == 0) k = SgemmKernel::portable;
    else return false;
    if (!gemm_detail::sgemm_kernel_supported(k)) return false;
    gemm_detail::forced_sgemm_kernel.store(static_cast<int>(k));
    return true;
}

// ---- sgemm ----
// The fast float path; same contract as gemm_reference. Never throws; allocates only when a call
// needs more packing space than any earlier call on this thread.
inline void sgemm(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K,
                  const float* A, std::int64_t lda, const float* B, std::int64_t ldb, float* C,
                  std::int64_t ldc, bool accumulate) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {  // empty sum: C keeps its value or becomes zero
        if (!accumulate)
            for (std::int64_t i = 0; i < M; ++i)
                for (std::int64_t j = 0; j < N; ++j) C[i * ldc + j] = 0.0f;
        return;
    }
    const gemm_detail::GemmArgs g{trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate};
    switch (gemm_detail::current_sgemm_kernel()) {
#ifdef NANOGPT_GEMM_X86
        case gemm_detail::SgemmKernel::avx512: gemm_detail::sgemm_blocked<gemm_detail::Avx512Kernel>(g); break;
        case gemm_detail::SgemmKernel::avx2: gemm_detail::sgemm_blocked<gemm_detail::Avx2Kernel>(g); break;
#endif
        default: gemm_detail::sgemm_blocked<gemm_detail::PortableKernel>(g); break;
    }
}

/// Dispatches: float goes to sgemm, any other T to gemm_reference.
template <class T>
void gemm(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K, const T* A,
          std::int64_t lda, const T* B, std::int64_t ldb, T* C, std::int64_t ldc,
          bool accumulate) {
    if constexpr (std::is_same_v<T, float>)
        sgemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
    else
        gemm_reference(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

}  // namespace nanogpt::kernels
