// bench_gemm — GFLOP/s of nanogpt::kernels::sgemm on GPT-2-small Linear shapes, in the forms
// training uses (NT forward, NN input gradient, TN weight gradient), beside OpenBLAS's
// cblas_sgemm when built with NANOGPT_HAVE_CBLAS. Validates against gemm_reference first.
//
// With --dtype bfloat16: gemm_bf16 (operands rounded to bfloat16, float32 sums) beside sgemm,
// against the measured peak of the bf16 kernel's instruction (vdpbf16ps for avx512bf16, the FP32
// FMA for the kernels that round and run FP32 arithmetic); validated against the summation bound.
//
// usage: bench_gemm [--runs N] [--kernel avx512|avx2|neon|portable] [--threads T]
//                   [--dtype bfloat16] [--bf16_kernel avx512bf16|avx512|avx2|portable]
// Prints medians over N timed rounds after two warm-up rounds; the two columns of a row are timed
// in alternation, call by call.
#include <algorithm>  // std::sort, std::max
#include <chrono>     // std::chrono::steady_clock
#include <cmath>      // std::fabs
#include <cstdint>    // std::int64_t
#include <cstdio>     // std::printf
#include <cstring>    // std::strcmp
#include <cstdlib>    // std::atoi
#include <random>     // std::mt19937
#include <string>     // std::string
#include <vector>     // std::vector

#ifdef NANOGPT_HAVE_CBLAS
#include <cblas.h>
#endif

#include "nanogpt/detail/cpu_features.hpp"
#include "nanogpt/detail/gemm.hpp"
#include "nanogpt/threading.hpp"
#include "peak_flops.hpp"

namespace {

struct Form {
    const char* name;
    bool trans_a, trans_b;
};

using GemmFn = void (*)(bool, bool, std::int64_t, std::int64_t, std::int64_t, const float*,
                        std::int64_t, const float*, std::int64_t, float*, std::int64_t, bool);

// sgemm without an epilogue, as a GemmFn.
void plain_sgemm(bool ta, bool tb, std::int64_t M, std::int64_t N, std::int64_t K, const float* A,
                 std::int64_t lda, const float* B, std::int64_t ldb, float* C, std::int64_t ldc,
                 bool accumulate) {
    nanogpt::kernels::sgemm(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

void plain_gemm_bf16(bool ta, bool tb, std::int64_t M, std::int64_t N, std::int64_t K,
                     const float* A, std::int64_t lda, const float* B, std::int64_t ldb, float* C,
                     std::int64_t ldc, bool accumulate) {
    nanogpt::kernels::gemm_bf16(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, accumulate, {});
}

#ifdef NANOGPT_HAVE_CBLAS
void openblas_gemm(bool ta, bool tb, std::int64_t M, std::int64_t N, std::int64_t K, const float* A,
                   std::int64_t lda, const float* B, std::int64_t ldb, float* C, std::int64_t ldc,
                   bool accumulate) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                int(M), int(N), int(K), 1.0f, A, int(lda), B, int(ldb), accumulate ? 1.0f : 0.0f, C,
                int(ldc));
}
#endif

std::vector<float> random_vector(std::size_t n, std::mt19937& rng) {
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

// Median GFLOP/s of each of `fns` on C = op(A) op(B): two warm-up calls of each, then `runs`
// rounds that time one call of each in turn. On a shared machine a slow spell then falls on all
// of them alike, and their ratio compares calls made side by side.
std::vector<double> median_gflops(const std::vector<GemmFn>& fns, const Form& f, std::int64_t M,
                                  std::int64_t N, std::int64_t K, int runs) {
    std::mt19937 rng(7);
    const std::vector<float> A = random_vector(std::size_t(M * K), rng);
    const std::vector<float> B = random_vector(std::size_t(K * N), rng);
    std::vector<float> C(std::size_t(M * N));
    const std::int64_t lda = f.trans_a ? M : K, ldb = f.trans_b ? K : N;
    std::vector<std::vector<double>> seconds(fns.size());
    for (int r = 0; r < runs + 2; ++r) {
        for (std::size_t i = 0; i < fns.size(); ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            fns[i](f.trans_a, f.trans_b, M, N, K, A.data(), lda, B.data(), ldb, C.data(), N, false);
            const auto t1 = std::chrono::steady_clock::now();
            if (r >= 2) seconds[i].push_back(std::chrono::duration<double>(t1 - t0).count());
        }
    }
    std::vector<double> gflops;
    for (std::vector<double>& s : seconds) {
        std::sort(s.begin(), s.end());
        gflops.push_back(2.0 * double(M) * double(N) * double(K) / s[s.size() / 2] * 1e-9);
    }
    return gflops;
}

// Worst relative error of sgemm against the double reference over all four forms, accumulating.
double validate() {
    const std::int64_t M = 67, N = 91, K = 300;
    std::mt19937 rng(3);
    const std::vector<float> A = random_vector(std::size_t(M * K), rng);
    const std::vector<float> B = random_vector(std::size_t(K * N), rng);
    const std::vector<float> C0 = random_vector(std::size_t(M * N), rng);
    const std::vector<double> Ad(A.begin(), A.end()), Bd(B.begin(), B.end());
    double worst = 0.0;
    for (int form = 0; form < 4; ++form) {
        const bool ta = form / 2 == 1, tb = form % 2 == 1;
        const std::int64_t lda = ta ? M : K, ldb = tb ? K : N;
        std::vector<float> C = C0;
        std::vector<double> ref(C0.begin(), C0.end());
        nanogpt::kernels::sgemm(ta, tb, M, N, K, A.data(), lda, B.data(), ldb, C.data(), N, true);
        nanogpt::kernels::gemm_reference<double>(ta, tb, M, N, K, Ad.data(), lda, Bd.data(), ldb,
                                                 ref.data(), N, true);
        for (std::size_t i = 0; i < C.size(); ++i)
            worst = std::max(worst, std::fabs(C[i] - ref[i]) / (std::fabs(ref[i]) + 1.0));
    }
    return worst;
}

// Worst error of gemm_bf16 over all four forms against the exact product of the rounded inputs,
// in units of the summation bound gamma(K) sum |a b| (pass when <= 1).
double validate_bf16() {
    const std::int64_t M = 67, N = 91, K = 300;
    std::mt19937 rng(3);
    const std::vector<float> A = random_vector(std::size_t(M * K), rng);
    const std::vector<float> B = random_vector(std::size_t(K * N), rng);
    const double u = std::ldexp(1.0, -24), gamma = double(K - 1) * u / (1.0 - double(K - 1) * u);
    double worst = 0.0;
    for (int form = 0; form < 4; ++form) {
        const bool ta = form / 2 == 1, tb = form % 2 == 1;
        const std::int64_t lda = ta ? M : K, ldb = tb ? K : N;
        std::vector<float> C(std::size_t(M * N));
        nanogpt::kernels::gemm_bf16(ta, tb, M, N, K, A.data(), lda, B.data(), ldb, C.data(), N,
                                    false, {});
        for (std::int64_t i = 0; i < M; ++i) {
            for (std::int64_t j = 0; j < N; ++j) {
                double ref = 0.0, mag = 0.0;
                for (std::int64_t p = 0; p < K; ++p) {
                    const double t =
                        double(nanogpt::detail::round_to_bf16(ta ? A[p * lda + i] : A[i * lda + p])) *
                        nanogpt::detail::round_to_bf16(tb ? B[j * ldb + p] : B[p * ldb + j]);
                    ref += t, mag += std::fabs(t);
                }
                worst = std::max(worst, std::fabs(C[std::size_t(i * N + j)] - ref) / (gamma * mag));
            }
        }
    }
    return worst;
}

const Form kForms[] = {{"NN", false, false}, {"NT", false, true}, {"TN", true, false}};
// (M, K, N): GPT-2 small with B*T = 2048 tokens: c_attn, c_fc, c_proj of the MLP.
// Then the shakespeare_char model at batch 8 (2048 tokens, C = 384) and the nanoGPT CPU
// recipe (768 tokens, C = 128): smaller products, where packing and threading weigh more.
const std::int64_t kShapes[][3] = {{2048, 768, 2304}, {2048, 768, 3072}, {2048, 3072, 768},
                                   {2048, 384, 1152}, {2048, 384, 1536}, {2048, 1536, 384},
                                   {768, 128, 384},   {768, 128, 512},   {768, 512, 128}};

// The bf16 table: gemm_bf16 and sgemm side by side, each against its own measured peak.
int run_bf16(int runs, int threads, double fp32_peak) {
    const std::string kernel = nanogpt::kernels::gemm_bf16_kernel_name();
    const bool dpbf16 = kernel == "avx512bf16";
    const double bf16_peak =
        dpbf16 ? std::max(bench::measured_peak_gflops(nanogpt::Dtype::bfloat16),
                          bench::measured_peak_gflops(nanogpt::Dtype::bfloat16))
               : fp32_peak;
    std::printf("bf16 kernel: %s, threads: %d, measured %s peak %.1f GFLOP/s\n", kernel.c_str(),
                threads, dpbf16 ? "vdpbf16ps" : "FP32 FMA (the kernel's arithmetic)", bf16_peak);
    const double err = validate_bf16();
    std::printf("validation vs the exact product of bf16-rounded inputs: worst %.3f of the "
                "gamma(K) 2^-24 bound %s\n",
                err, err <= 1.0 ? "ok" : "FAILED");
    if (!(err <= 1.0)) return 1;
    std::printf("%-20s %-4s %10s %7s %10s %7s %8s\n", "M x K x N", "form", "bf16 GF/s", "%peak",
                "fp32 GF/s", "%peak", "bf16/fp32");
    for (const auto& s : kShapes) {
        for (const Form& f : kForms) {
            char label[64];
            std::snprintf(label, sizeof label, "%lldx%lldx%lld", (long long)s[0], (long long)s[1],
                          (long long)s[2]);
            const std::vector<double> both =
                median_gflops({plain_gemm_bf16, plain_sgemm}, f, s[0], s[2], s[1], runs);
            const double ours = both[0], fp32 = both[1];
            std::printf("%-20s %-4s %10.1f %6.1f%% %10.1f %6.1f%% %8.2f\n", label, f.name, ours,
                        100.0 * ours / bf16_peak, fp32, 100.0 * fp32 / fp32_peak, ours / fp32);
        }
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int runs = 7;
    bool bf16 = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--dtype") == 0) {
            if (std::strcmp(argv[i + 1], "bfloat16") != 0 && std::strcmp(argv[i + 1], "float32") != 0) {
                std::printf("--dtype must be float32 or bfloat16, got %s\n", argv[i + 1]);
                return 1;
            }
            bf16 = std::strcmp(argv[i + 1], "bfloat16") == 0;
        } else if (std::strcmp(argv[i], "--bf16_kernel") == 0) {
            if (!nanogpt::kernels::gemm_bf16_force_kernel(argv[i + 1])) {
                std::printf("bf16 kernel %s is unknown or unsupported on this CPU\n", argv[i + 1]);
                return 1;
            }
        } else
        if (std::strcmp(argv[i], "--runs") == 0)
            runs = std::max(1, std::atoi(argv[i + 1]));
        else if (std::strcmp(argv[i], "--kernel") == 0) {
            if (!nanogpt::kernels::sgemm_force_kernel(argv[i + 1])) {
                std::printf("kernel %s is unknown or unsupported on this CPU\n", argv[i + 1]);
                return 1;
            }
        }
        else if (std::strcmp(argv[i], "--threads") == 0 && std::atoi(argv[i + 1]) > 0)
            nanogpt::set_num_threads(std::atoi(argv[i + 1]));
    }
    const int threads = nanogpt::num_threads();
    // The best of two measurements a moment apart: a busy moment can only lower one.
    const double peak = std::max(bench::measured_peak_gflops(), bench::measured_peak_gflops());
    std::printf(
        "sgemm kernel: %s, threads: %d (%s), runs: %d (median), measured FP32 peak %.1f "
        "GFLOP/s\n",
        nanogpt::kernels::sgemm_kernel_name(), threads, nanogpt::threading_backend(), runs,
        peak);
    const double err = validate();
    std::printf("validation vs double reference: max rel error %.2e %s\n", err,
                err < 1e-4 ? "ok" : "FAILED");
    if (err >= 1e-4) return 1;
    if (bf16) return run_bf16(runs, threads, peak);

#ifdef NANOGPT_HAVE_CBLAS
    std::printf("%-20s %-4s %12s %7s %12s %8s\n", "M x K x N", "form", "ours GF/s", "%peak",
                "openblas", "ratio");
#else
    std::printf("%-20s %-4s %12s %7s\n", "M x K x N", "form", "ours GF/s", "%peak");
#endif
    for (const auto& s : kShapes) {
        for (const Form& f : kForms) {
            char label[64];
            std::snprintf(label, sizeof label, "%lldx%lldx%lld", (long long)s[0], (long long)s[1],
                          (long long)s[2]);
#ifdef NANOGPT_HAVE_CBLAS
            const std::vector<double> both =
                median_gflops({plain_sgemm, openblas_gemm}, f, s[0], s[2], s[1], runs);
            const double ours = both[0], theirs = both[1];
            std::printf("%-20s %-4s %12.1f %6.1f%% %12.1f %8.3f\n", label, f.name, ours,
                        100.0 * ours / peak, theirs, ours / theirs);
#else
            const double ours = median_gflops({plain_sgemm}, f, s[0], s[2], s[1], runs)[0];
            std::printf("%-20s %-4s %12.1f %6.1f%%\n", label, f.name, ours, 100.0 * ours / peak);
#endif
        }
    }
    return 0;
}
