// cpu_features.hpp — which SIMD instruction sets this CPU (and its OS) can run, asked once.
//
// The library is built without -march flags, so the fast x86 kernels in gemm.hpp are compiled
// with per-function target attributes and chosen at run time from what is detected here.
// __builtin_cpu_supports (g++ and clang) also checks that the OS saves the wide registers.
// Read next: gemm.hpp and parallel.hpp, its users.
#pragma once

// NANOGPT_X86_SIMD: compiling for x86 with g++ or clang, whose target attributes and
// __builtin_cpu_supports let AVX2 / AVX-512 functions live in a build without -march and be
// chosen at run time. Every such kernel (gemm_kernels.hpp, parallel.hpp, optim.hpp) is built
// under this one condition.
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define NANOGPT_X86_SIMD 1
#endif

// NANOGPT_ARM_NEON: compiling for AArch64, where Advanced SIMD (NEON) is part of the base
// architecture: every such CPU runs it, so the NEON kernels need no run-time check.
#if defined(__aarch64__) && defined(__ARM_NEON)
#define NANOGPT_ARM_NEON 1
#endif

// NANOGPT_ALWAYS_INLINE: inline this function (or lambda) into its caller whatever the
// compiler's inlining budget. The library is compiled without -march, so loops are vectorised for
// AVX-512 or AVX2 only inside functions compiled with those target attributes (parallel_for's
// call_avx512 / call_avx2, the GEMM micro-kernels). A loop body, or a helper such as exp_fast,
// gets that code only when it is inlined there; g++ inlines while a function is small enough for
// its budget, and in a program that includes the whole library the budget runs out at places
// that change from build to build. A body left out of line runs as plain x86-64 (SSE2) code,
// several times slower. With other compilers the macro is empty: the same results, maybe slower.
#if defined(__GNUC__) || defined(__clang__)
#define NANOGPT_ALWAYS_INLINE __attribute__((always_inline))
#else
#define NANOGPT_ALWAYS_INLINE
#endif

namespace nanogpt::detail {

struct CpuFeatures {
    bool avx2_fma = false;  // 256-bit AVX2 with fused multiply-add (Haswell, Zen 1 and later)
    bool avx512 = false;    // AVX-512 F + VL with FMA (Skylake-X, Ice Lake, Zen 4 and later)
    bool avx512bf16 = false;  // AVX512-BF16 (+ BW): vdpbf16ps (Cooper Lake, Sapphire Rapids, Zen 4)
    bool neon = false;        // AArch64 Advanced SIMD (Apple silicon, Graviton, Ampere)
};

inline CpuFeatures detect_cpu_features() {
    CpuFeatures f;
#ifdef NANOGPT_X86_SIMD
    __builtin_cpu_init();  // needed when called before the runtime's own constructors ran
    f.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    f.avx512 =
        f.avx2_fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
    f.avx512bf16 =
        f.avx512 && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16");
#endif
#ifdef NANOGPT_ARM_NEON
    f.neon = true;
#endif
    return f;
}

/// Detected once (thread-safe static initialisation), then free to ask.
inline const CpuFeatures& cpu_features() {
    static const CpuFeatures features = detect_cpu_features();
    return features;
}

}  // namespace nanogpt::detail
