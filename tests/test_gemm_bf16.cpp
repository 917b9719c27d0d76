// Tests for detail/bfloat16.hpp and detail/gemm_bf16.hpp: the rounding to bfloat16 (ties to even,
// the corner cases of vcvtneps2bf16), and every bf16 GEMM kernel this CPU runs, in all four
// transpose forms, against a double-precision product of the bf16-rounded inputs with the
// floating-point summation bound; then determinism, threads, and gemm()'s dispatch on the dtype.
#include <catch2/catch.hpp>

#include <cmath>    // std::fabs, std::isnan, std::ldexp
#include <cstdint>  // std::int64_t, std::uint32_t
#include <cstring>  // std::memcmp, std::memcpy
#include <limits>   // std::numeric_limits
#include <random>   // std::mt19937, std::uniform_real_distribution
#include <string>   // std::string
#include <vector>   // std::vector

#include "nanogpt/detail/gemm.hpp"
#include "nanogpt/dtype.hpp"
#include "nanogpt/threading.hpp"

namespace {

using nanogpt::detail::bf16_bits;
using nanogpt::detail::round_to_bf16;
using nanogpt::kernels::gemm_bf16;

const char* const bf16_kernels[] = {"portable", "avx2", "avx512", "avx512bf16"};

float from_bits(std::uint32_t u) {
    float x;
    std::memcpy(&x, &u, sizeof x);
    return x;
}

struct Shape {
    bool trans_a, trans_b;
    std::int64_t M, N, K;
    std::int64_t pad = 0;  // added to every leading dimension
    bool accumulate = false, bias = false;
};

std::string describe(const Shape& s) {
    return std::string(s.trans_a ? "T" : "N") + (s.trans_b ? "T" : "N") + " M=" +
           std::to_string(s.M) + " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K) +
           " pad=" + std::to_string(s.pad) + (s.accumulate ? " accumulate" : "") +
           (s.bias ? " bias" : "");
}

std::vector<float> random_matrix(std::int64_t rows, std::int64_t ld, std::mt19937& rng) {
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> m(static_cast<std::size_t>(rows * ld));
    for (float& x : m) x = dist(rng);
    return m;
}

struct Result {
    double worst = 0.0;         // max |c - ref| / bound over C; pass when <= 1
    double unrounded = 0.0;     // max |c - ref of the unrounded inputs| / bound: must exceed 1
};

// One gemm_bf16 call against the exact product of the bf16-rounded inputs. Each element of C is
// a float32 sum of n = K (+1 for C's old value, +1 for the bias) terms, each exact (a product of
// two bfloat16 is exact in float32); summed in any order its error is at most
// gamma(n - 1) * sum |term|, gamma(k) = k u / (1 - k u), u = 2^-24.
Result check_shape(const Shape& s, std::mt19937& rng) {
    const std::int64_t a_rows = s.trans_a ? s.K : s.M, a_cols = s.trans_a ? s.M : s.K;
    const std::int64_t b_rows = s.trans_b ? s.N : s.K, b_cols = s.trans_b ? s.K : s.N;
    const std::int64_t lda = a_cols + s.pad, ldb = b_cols + s.pad, ldc = s.N + s.pad;
    const std::vector<float> a = random_matrix(a_rows, lda, rng), b = random_matrix(b_rows, ldb, rng);
    const std::vector<float> c0 = random_matrix(s.M, ldc, rng), bias = random_matrix(1, s.N, rng);
    std::vector<float> c = c0;
    nanogpt::kernels::GemmEpilogue<float> epilogue;
    if (s.bias) epilogue.bias = bias.data();
    gemm_bf16(s.trans_a, s.trans_b, s.M, s.N, s.K, a.data(), lda, b.data(), ldb, c.data(), ldc,
              s.accumulate, epilogue);

    const std::int64_t n = s.K + (s.accumulate ? 1 : 0) + (s.bias ? 1 : 0);
    const double u = std::ldexp(1.0, -24), gamma = double(n - 1) * u / (1.0 - double(n - 1) * u);
    Result r;
    for (std::int64_t i = 0; i < s.M; ++i) {
        for (std::int64_t j = 0; j < ldc; ++j) {
            const auto k = static_cast<std::size_t>(i * ldc + j);
            if (j >= s.N) {  // padding of C: untouched
                if (std::memcmp(&c[k], &c0[k], sizeof(float)) != 0) r.worst = 1e30;
                continue;
            }
            double ref = 0.0, mag = 0.0, plain = 0.0;
            for (std::int64_t p = 0; p < s.K; ++p) {
                const float av = s.trans_a ? a[std::size_t(p * lda + i)] : a[std::size_t(i * lda + p)];
                const float bv = s.trans_b ? b[std::size_t(j * ldb + p)] : b[std::size_t(p * ldb + j)];
                const double t = double(round_to_bf16(av)) * double(round_to_bf16(bv));
                ref += t, mag += std::fabs(t), plain += double(av) * double(bv);
            }
            for (const double extra : {s.accumulate ? double(c0[k]) : 0.0,
                                       s.bias ? double(bias[std::size_t(j)]) : 0.0}) {
                ref += extra, plain += extra, mag += std::fabs(extra);
            }
            const double bound = gamma * mag + std::numeric_limits<float>::denorm_min();
            const double err = std::fabs(double(c[k]) - ref);
            r.worst = std::max(r.worst, std::isnan(err) ? 1e30 : err / bound);
            r.unrounded = std::max(r.unrounded, std::fabs(double(c[k]) - plain) / bound);
        }
    }
    return r;
}

struct KernelGuard {  // restores automatic choice and float32 even when a check fails
    ~KernelGuard() {
        nanogpt::kernels::gemm_bf16_force_kernel("auto");
        nanogpt::set_matmul_dtype(nanogpt::Dtype::float32);
    }
};

}  // namespace

TEST_CASE("bf16 rounding: nearest, ties to even, and the corner cases", "[gemm_bf16]") {
    CHECK(bf16_bits(1.0f) == 0x3F80);
    CHECK(bf16_bits(-2.0f) == 0xC000);
    CHECK(bf16_bits(from_bits(0x3F808000u)) == 0x3F80);  // tie, even below: down
    CHECK(bf16_bits(from_bits(0x3F818000u)) == 0x3F82);  // tie, odd below: up
    CHECK(bf16_bits(from_bits(0x3F808001u)) == 0x3F81);  // just above the tie: up
    CHECK(bf16_bits(from_bits(0x3F807FFFu)) == 0x3F80);  // just below: down
    CHECK(bf16_bits(from_bits(0x7F7FFFFFu)) == 0x7F80);  // largest float rounds to infinity
    CHECK(bf16_bits(std::numeric_limits<float>::infinity()) == 0x7F80);
    CHECK(bf16_bits(from_bits(0x00400000u)) == 0x0000);  // subnormal: zero of the same sign
    CHECK(bf16_bits(from_bits(0x80000001u)) == 0x8000);
    CHECK(std::isnan(round_to_bf16(from_bits(0x7F800001u))));  // a NaN that would round to inf
    CHECK(std::isnan(round_to_bf16(std::numeric_limits<float>::quiet_NaN())));
    // Relative error at most 2^-8 (half a unit in the 8th significant bit) for normal numbers.
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> dist(-1000.0f, 1000.0f);
    for (int i = 0; i < 1000; ++i) {
        const float x = dist(rng);
        CHECK(std::fabs(double(round_to_bf16(x)) - x) <= std::ldexp(std::fabs(double(x)), -8));
    }
}

TEST_CASE("bf16 gemm kernel choice", "[gemm_bf16]") {
    KernelGuard guard;
    const std::string best = nanogpt::kernels::gemm_bf16_kernel_name();
    CHECK((best == "avx512bf16" || best == "avx512" || best == "avx2" || best == "portable"));
    REQUIRE(nanogpt::kernels::gemm_bf16_force_kernel("portable"));
    CHECK(std::string(nanogpt::kernels::gemm_bf16_kernel_name()) == "portable");
    CHECK_FALSE(nanogpt::kernels::gemm_bf16_force_kernel("amx9"));
    CHECK(std::string(nanogpt::kernels::gemm_bf16_kernel_name()) == "portable");
    REQUIRE(nanogpt::kernels::gemm_bf16_force_kernel(nullptr));
    CHECK(std::string(nanogpt::kernels::gemm_bf16_kernel_name()) == best);
    if (best != "avx512bf16")
        WARN("no AVX512-BF16 on this CPU: the vdpbf16ps kernel is not tested here");
}

TEST_CASE("bf16 gemm is within the summation bound of the exact product of rounded inputs",
          "[gemm_bf16]") {
    KernelGuard guard;
    const std::int64_t edge[] = {1, 2, 3, 7, 13, 14, 15, 16, 17, 31, 32, 33, 64, 100, 129};
    for (const char* kernel : bf16_kernels) {
        if (!nanogpt::kernels::gemm_bf16_force_kernel(kernel)) {
            WARN("bf16 kernel " << kernel << " not supported by this CPU: skipped");
            continue;
        }
        std::mt19937 rng(4321);
        std::uniform_int_distribution<int> pick(0, int(std::size(edge)) - 1), coin(0, 1), pad(0, 3);
        for (int form = 0; form < 4; ++form) {
            const bool ta = form / 2 == 1, tb = form % 2 == 1;
            std::vector<Shape> shapes;
            for (int t = 0; t < 25; ++t)
                shapes.push_back({ta, tb, edge[pick(rng)], edge[pick(rng)], edge[pick(rng)],
                                  coin(rng) ? pad(rng) : 0, coin(rng) == 1, coin(rng) == 1});
            // Several K blocks with odd depths (KC 1536 split evenly: 2 x 1501), row blocks,
            // column slices, the thread team, and the few-rows path.
            shapes.push_back({ta, tb, 20, 40, 3002, 1, true, true});
            shapes.push_back({ta, tb, 350, 9, 301, 0, false, false});
            shapes.push_back({ta, tb, 3, 4200, 5, 2, true, false});
            shapes.push_back({ta, tb, 150, 170, 531, 0, true, true});
            shapes.push_back({ta, tb, 2, 3000, 400, 1, false, true});
            for (const Shape& s : shapes) {
                INFO("kernel " << kernel << ": " << describe(s));
                const Result r = check_shape(s, rng);
                CHECK(r.worst <= 1.0);
                // The inputs really were rounded: for 16 <= K <= 300 the product of the unrounded
                // inputs lies beyond the bound somewhere (the rounding errors, ~2^-9 sqrt(K) of a
                // term, outgrow the bound's 2^-24 K; for much larger K they no longer need to).
                if (s.K >= 16 && s.K <= 300) CHECK(r.unrounded > 1.0);
            }
        }
    }
}

TEST_CASE("bf16 gemm is deterministic and independent of the thread count", "[gemm_bf16]") {
    KernelGuard guard;
    const int threads_before = nanogpt::num_threads();
    const Shape shapes[] = {{false, true, 300, 200, 520}, {false, false, 37, 500, 601},
                            {true, false, 130, 257, 300}, {true, true, 701, 96, 64},
                            {true, false, 90, 70, 3100},  {false, true, 3, 2000, 700}};
    for (const char* kernel : bf16_kernels) {
        if (!nanogpt::kernels::gemm_bf16_force_kernel(kernel)) continue;
        for (const Shape& s : shapes) {
            INFO("kernel " << kernel << ": " << describe(s));
            std::mt19937 rng(99);
            const std::int64_t lda = s.trans_a ? s.M : s.K, ldb = s.trans_b ? s.K : s.N;
            const auto a = random_matrix(s.trans_a ? s.K : s.M, lda, rng);
            const auto b = random_matrix(s.trans_b ? s.N : s.K, ldb, rng);
            const auto c0 = random_matrix(s.M, s.N, rng);
            std::vector<float> c[3] = {c0, c0, c0};
            for (int t = 0; t < 3; ++t) {
                nanogpt::set_num_threads(t == 2 ? 1 : 2);  // twice with 2 threads, once with 1
                gemm_bf16(s.trans_a, s.trans_b, s.M, s.N, s.K, a.data(), lda, b.data(), ldb,
                          c[t].data(), s.N, true, {});
            }
            CHECK(std::memcmp(c[0].data(), c[1].data(), c[0].size() * sizeof(float)) == 0);
            CHECK(std::memcmp(c[0].data(), c[2].data(), c[0].size() * sizeof(float)) == 0);
        }
    }
    nanogpt::set_num_threads(threads_before);
}

TEST_CASE("gemm follows the matmul dtype for float and ignores it for double", "[gemm_bf16]") {
    KernelGuard guard;
    std::mt19937 rng(7);
    const auto a = random_matrix(40, 50, rng), b = random_matrix(60, 50, rng);
    std::vector<float> direct(40 * 60), via_gemm(40 * 60), fp32(40 * 60);
    gemm_bf16(false, true, 40, 60, 50, a.data(), 50, b.data(), 50, direct.data(), 60, false, {});
    nanogpt::kernels::sgemm(false, true, 40, 60, 50, a.data(), 50, b.data(), 50, fp32.data(), 60,
                            false);
    {
        nanogpt::MatmulDtypeScope scope(nanogpt::Dtype::bfloat16);
        CHECK(nanogpt::matmul_dtype() == nanogpt::Dtype::bfloat16);
        nanogpt::kernels::gemm<float>(false, true, 40, 60, 50, a.data(), 50, b.data(), 50,
                                      via_gemm.data(), 60, false);
        CHECK(via_gemm == direct);
        const double ad[] = {1.001, 2}, bd[] = {3, 4.001};  // not bf16 values: stays exact
        double cd = 0;
        nanogpt::kernels::gemm<double>(false, false, 1, 1, 2, ad, 2, bd, 1, &cd, 1, false);
        CHECK(cd == 1.001 * 3 + 2 * 4.001);
    }
    CHECK(nanogpt::matmul_dtype() == nanogpt::Dtype::float32);
    nanogpt::kernels::gemm<float>(false, true, 40, 60, 50, a.data(), 50, b.data(), 50,
                                  via_gemm.data(), 60, false);
    CHECK(via_gemm == fp32);
    CHECK(fp32 != direct);
}

TEST_CASE("dtype names parse as nanoGPT spells them", "[gemm_bf16]") {
    CHECK(nanogpt::parse_dtype("float32") == nanogpt::Dtype::float32);
    CHECK(nanogpt::parse_dtype("bfloat16") == nanogpt::Dtype::bfloat16);
    CHECK(std::string(nanogpt::dtype_name(nanogpt::Dtype::bfloat16)) == "bfloat16");
    SECTION("unknown") {
        CHECK_THROWS_WITH(nanogpt::parse_dtype("bf16"),
                          "dtype must be 'float32' or 'bfloat16', got 'bf16'");
    }
    SECTION("float16") {
        CHECK_THROWS_WITH(nanogpt::parse_dtype("float16", "--dtype"),
                          "--dtype: 'float16' is not supported on a CPU (use bfloat16 or float32)");
    }
}

TEST_CASE("linear with bfloat16 weights is within the summation bound", "[gemm_bf16]") {
    KernelGuard guard;
    for (const char* kernel : {"portable", "avx512bf16"}) {
        if (!nanogpt::kernels::gemm_bf16_force_kernel(kernel)) {
            WARN("bf16 kernel " << kernel << " not supported by this CPU: skipped");
            continue;
        }
        for (const std::int64_t C : {1, 17, 32, 100, 768}) {
            const std::int64_t N = 2, OC = 131;
            std::mt19937 rng(static_cast<unsigned>(C));
            const auto x = random_matrix(N, C, rng), w = random_matrix(OC, C, rng);
            const auto bias = random_matrix(1, OC, rng);
            std::vector<std::uint16_t> w16(w.size());
            for (std::size_t i = 0; i < w.size(); ++i) w16[i] = bf16_bits(w[i]);
            std::vector<float> out(static_cast<std::size_t>(N * OC));
            nanogpt::kernels::linear_forward_bf16_weights(out.data(), x.data(), w16.data(),
                                                          bias.data(), N, C, OC);
            const double u = std::ldexp(1.0, -24), gamma = double(C) * u / (1.0 - double(C) * u);
            double worst = 0.0;
            for (std::int64_t i = 0; i < N; ++i) {
                for (std::int64_t j = 0; j < OC; ++j) {
                    double ref = bias[std::size_t(j)], mag = std::fabs(ref);
                    for (std::int64_t p = 0; p < C; ++p) {
                        const double t = double(round_to_bf16(x[std::size_t(i * C + p)])) *
                                         round_to_bf16(w[std::size_t(j * C + p)]);
                        ref += t, mag += std::fabs(t);
                    }
                    worst = std::max(worst, std::fabs(out[std::size_t(i * OC + j)] - ref) /
                                                (gamma * mag + 1e-45));
                }
            }
            INFO("kernel " << kernel << ", C = " << C);
            CHECK(worst <= 1.0);
        }
    }
}
