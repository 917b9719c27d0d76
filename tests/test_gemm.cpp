// Tests for detail/gemm.hpp: every sgemm kernel this CPU runs, in all four transpose forms, against
// gemm_reference<double> on the same float inputs; edge sizes, padded leading dimensions,
// accumulate on and off, the bias / GELU epilogue; and bit-identical results for 1, 2 and 3
// threads.
#include <catch2/catch.hpp>

#include <cmath>    // std::fabs, std::isnan
#include <cstdint>  // std::int64_t
#include <cstring>  // std::memcmp
#include <limits>   // std::numeric_limits
#include <random>   // std::mt19937, std::uniform_real_distribution
#include <string>   // std::string
#include <vector>   // std::vector

#include "nanogpt/detail/gemm.hpp"

namespace {

using nanogpt::kernels::gemm_reference;
using nanogpt::kernels::sgemm;

const char* const all_kernels[] = {"portable", "avx2", "avx512", "neon"};

struct Shape {
    bool trans_a, trans_b;
    std::int64_t M, N, K;
    std::int64_t pad_a = 0, pad_b = 0, pad_c = 0;  // leading dimension minus row length
    bool accumulate = false;
    bool bias = false, gelu = false;  // the epilogue: C += bias[j]; then gelu out = GELU(C)
};

// A matrix stored row-major as rows x cols with leading dimension cols + pad. The padding holds
// NaN, so a kernel that reads outside the logical matrix poisons its result.
struct Stored {
    std::int64_t rows, cols, ld;
    std::vector<float> data;
    Stored(std::int64_t r, std::int64_t c, std::int64_t pad, std::mt19937& rng)
        : rows(r),
          cols(c),
          ld(c + pad),
          data(static_cast<std::size_t>(r * (c + pad)), std::numeric_limits<float>::quiet_NaN()) {
        std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
        for (std::int64_t i = 0; i < r; ++i)
            for (std::int64_t j = 0; j < c; ++j)
                data[static_cast<std::size_t>(i * ld + j)] = dist(rng);
    }
};

std::vector<double> to_double(const std::vector<float>& v, bool absolute) {
    std::vector<double> out(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) out[i] = absolute ? std::fabs(double(v[i])) : v[i];
    return out;
}

// Runs sgemm on one shape and returns the worst |c - ref| / tolerance (pass when <= 1); also
// checks that the padding of C was left alone.
double check_shape(const Shape& s, std::mt19937& rng) {
    const Stored a(s.trans_a ? s.K : s.M, s.trans_a ? s.M : s.K, s.pad_a, rng);
    const Stored b(s.trans_b ? s.N : s.K, s.trans_b ? s.K : s.N, s.pad_b, rng);
    Stored c(s.M, s.N, s.pad_c, rng);
    const std::vector<float> c0 = c.data;
    const Stored bias(1, s.N, 0, rng);
    Stored gelu(s.M, s.N, s.pad_c + 1, rng);  // its own leading dimension; NaN padding too
    nanogpt::kernels::GemmEpilogue<float> epilogue;
    if (s.bias) epilogue.bias = bias.data.data();
    if (s.gelu) epilogue.gelu = gelu.data.data(), epilogue.ld_gelu = gelu.ld;
    const std::vector<float> gelu0 = gelu.data;

    sgemm(s.trans_a, s.trans_b, s.M, s.N, s.K, a.data.data(), a.ld, b.data.data(), b.ld,
          c.data.data(), c.ld, s.accumulate, epilogue);

    // Reference in double from the same float inputs; |A||B| (+|C0|) scales the tolerance.
    // NaN padding is replaced by 0 in the |.| copies so the bound stays finite.
    std::vector<double> ad = to_double(a.data, false), bd = to_double(b.data, false);
    std::vector<double> ref = to_double(c0, false);
    gemm_reference<double>(s.trans_a, s.trans_b, s.M, s.N, s.K, ad.data(), a.ld, bd.data(), b.ld,
                           ref.data(), c.ld, s.accumulate);
    std::vector<double> aa = to_double(a.data, true), ba = to_double(b.data, true);
    for (double& x : aa) x = std::isnan(x) ? 0.0 : x;
    for (double& x : ba) x = std::isnan(x) ? 0.0 : x;
    std::vector<double> bound = to_double(c0, true);
    gemm_reference<double>(s.trans_a, s.trans_b, s.M, s.N, s.K, aa.data(), a.ld, ba.data(), b.ld,
                           bound.data(), c.ld, s.accumulate);
    // The epilogue in double on the reference: bias, then GELU (exact tanh) into gelu_ref.
    std::vector<double> gelu_ref(gelu.data.size());
    for (std::int64_t i = 0; i < s.M; ++i) {
        for (std::int64_t j = 0; j < s.N; ++j) {
            const auto k = static_cast<std::size_t>(i * c.ld + j);
            if (s.bias) ref[k] += bias.data[static_cast<std::size_t>(j)];
            if (s.bias) bound[k] += std::fabs(double(bias.data[static_cast<std::size_t>(j)]));
            gelu_ref[static_cast<std::size_t>(i * gelu.ld + j)] =
                nanogpt::detail::gelu_tanh(ref[k]);
        }
    }

    double worst = 0.0;
    for (std::int64_t i = 0; i < s.M; ++i) {
        for (std::int64_t j = 0; j < c.ld; ++j) {
            const auto k = static_cast<std::size_t>(i * c.ld + j);
            if (j >= s.N) {  // padding: must still be the NaN we put there
                if (!std::isnan(c.data[k])) worst = std::numeric_limits<double>::infinity();
                continue;
            }
            const double tol = 1e-4 * bound[k] + 1e-6;
            const double err = std::fabs(double(c.data[k]) - ref[k]);
            if (!(err <= tol)) worst = std::max(worst, std::isnan(err) ? 1e30 : err / tol);
        }
    }
    for (std::int64_t i = 0; i < s.M; ++i) {  // GELU output: written where asked, nowhere else
        for (std::int64_t j = 0; j < gelu.ld; ++j) {
            const auto k = static_cast<std::size_t>(i * gelu.ld + j);
            if (j >= s.N || !s.gelu) {  // untouched: same bits as before the call
                if (std::memcmp(&gelu.data[k], &gelu0[k], sizeof(float)) != 0)
                    worst = std::numeric_limits<double>::infinity();
                continue;
            }
            // GELU's slope is at most 1.13, and the float tanh adds ~1e-7 absolute.
            const double tol = 1.2e-4 * bound[static_cast<std::size_t>(i * c.ld + j)] + 2e-6;
            const double err = std::fabs(double(gelu.data[k]) - gelu_ref[k]);
            if (!(err <= tol)) worst = std::max(worst, std::isnan(err) ? 1e30 : err / tol);
        }
    }
    return worst;
}

std::string describe(const Shape& s) {
    return std::string(s.trans_a ? "T" : "N") + (s.trans_b ? "T" : "N") +
           " M=" + std::to_string(s.M) + " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K) +
           " pads=" + std::to_string(s.pad_a) + "," + std::to_string(s.pad_b) + "," +
           std::to_string(s.pad_c) + (s.accumulate ? " accumulate" : "") + (s.bias ? " bias" : "") +
           (s.gelu ? " gelu" : "");
}

// Restores automatic kernel choice even when a check fails.
struct KernelGuard {
    ~KernelGuard() { nanogpt::kernels::sgemm_force_kernel("auto"); }
};

}  // namespace

TEST_CASE("sgemm kernel choice", "[gemm]") {
    KernelGuard guard;
    const std::string best = nanogpt::kernels::sgemm_kernel_name();
    CHECK((best == "avx512" || best == "avx2" || best == "neon" || best == "portable"));
#if defined(__aarch64__)
    CHECK(best == "neon");  // every AArch64 CPU has NEON
#endif
    REQUIRE(nanogpt::kernels::sgemm_force_kernel("portable"));
    CHECK(std::string(nanogpt::kernels::sgemm_kernel_name()) == "portable");
    CHECK_FALSE(nanogpt::kernels::sgemm_force_kernel("sse9"));
    CHECK(std::string(nanogpt::kernels::sgemm_kernel_name()) == "portable");
    REQUIRE(nanogpt::kernels::sgemm_force_kernel(nullptr));
    CHECK(std::string(nanogpt::kernels::sgemm_kernel_name()) == best);
}

TEST_CASE("sgemm matches the double reference for every kernel and transpose form", "[gemm]") {
    KernelGuard guard;
    const std::int64_t edge[] = {1, 2, 3, 7, 13, 14, 15, 16, 17, 31, 32, 33, 64, 100, 129};
    for (const char* kernel : all_kernels) {
        if (!nanogpt::kernels::sgemm_force_kernel(kernel)) continue;
        std::mt19937 rng(1234);
        std::uniform_int_distribution<int> pick(0, int(std::size(edge)) - 1);
        std::uniform_int_distribution<int> coin(0, 1), pad(0, 5);
        for (int form = 0; form < 4; ++form) {
            std::vector<Shape> shapes;
            for (int t = 0; t < 40; ++t) {  // random mixes of edge sizes, pads and accumulate
                Shape s{form / 2 == 1, form % 2 == 1, edge[pick(rng)], edge[pick(rng)],
                        edge[pick(rng)]};
                if (coin(rng)) s.pad_a = pad(rng), s.pad_b = pad(rng), s.pad_c = pad(rng);
                s.accumulate = coin(rng) == 1;
                s.bias = coin(rng) == 1;
                s.gelu = coin(rng) == 1;
                shapes.push_back(s);
            }
            const bool ta = form / 2 == 1, tb = form % 2 == 1;
            // Shapes that cross every block boundary: several K blocks (KC <= 768), several
            // row blocks (MC <= 224), several column slices (NC = 4096), and large enough
            // (>= 2^20 multiply-adds) to run on the thread team.
            shapes.push_back({ta, tb, 3, 4200, 5, 1, 2, 3, true});
            shapes.push_back({ta, tb, 350, 9, 300, 0, 3, 0, false});
            shapes.push_back({ta, tb, 19, 40, 1700, 0, 1, 2, true});
            shapes.push_back({ta, tb, 60, 35, 800, 1, 0, 0, false});
            shapes.push_back({ta, tb, 701, 45, 40, 2, 0, 1, true});
            shapes.push_back({ta, tb, 150, 170, 530, 0, 0, 0, false});
            shapes.push_back({ta, tb, 37, 333, 520, 3, 1, 0, true});
            shapes.push_back({ta, tb, 2, 3000, 400, 3, 0, 1, true});  // few rows, threaded
            shapes.push_back({ta, tb, 64, 64, 64});
            shapes.push_back({ta, tb, 64, 64, 32, 0, 0, 0, true});
            // The epilogue on the last of several K blocks, on a threaded product with edge tiles,
            // and on the few-rows path.
            shapes.push_back({ta, tb, 19, 40, 1700, 0, 1, 2, true, true, true});
            shapes.push_back({ta, tb, 150, 170, 530, 0, 0, 0, false, true, true});
            shapes.push_back({ta, tb, 2, 3000, 400, 3, 0, 1, false, true, true});
            shapes.push_back({ta, tb, 3, 50, 20, 0, 0, 0, true, false, true});
            for (const Shape& s : shapes) {
                INFO("kernel " << kernel << ": " << describe(s));
                CHECK(check_shape(s, rng) <= 1.0);
            }
        }
    }
}

TEST_CASE("sgemm with K = 0 or empty C", "[gemm]") {
    KernelGuard guard;
    for (const char* kernel : all_kernels) {
        if (!nanogpt::kernels::sgemm_force_kernel(kernel)) continue;
        INFO("kernel " << kernel);
        std::vector<float> c = {1, 2, 3, 4, 5, 6};
        sgemm(false, false, 2, 3, 0, nullptr, 1, nullptr, 3, c.data(), 3, true);
        CHECK(c == std::vector<float>{1, 2, 3, 4, 5, 6});
        sgemm(false, true, 2, 2, 0, nullptr, 1, nullptr, 1, c.data(), 3, false);
        CHECK(c == std::vector<float>{0, 0, 3, 0, 0, 6});
        sgemm(true, false, 0, 3, 5, nullptr, 1, nullptr, 3, c.data(), 3, false);
        sgemm(true, true, 2, 0, 5, nullptr, 1, nullptr, 3, c.data(), 3, false);
        CHECK(c == std::vector<float>{0, 0, 3, 0, 0, 6});
    }
}

TEST_CASE("gemm dispatches float and double", "[gemm]") {
    const float af[] = {1, 2, 3, 4}, bf[] = {5, 6, 7, 8};
    float cf[4] = {};
    nanogpt::kernels::gemm<float>(false, false, 2, 2, 2, af, 2, bf, 2, cf, 2, false);
    CHECK(cf[0] == 19.0f);
    CHECK(cf[3] == 50.0f);
    const double ad[] = {1, 2, 3, 4}, bd[] = {5, 6, 7, 8};
    double cd[4] = {1, 1, 1, 1};
    nanogpt::kernels::gemm<double>(true, true, 2, 2, 2, ad, 2, bd, 2, cd, 2, true);
    CHECK(cd[0] == 1 + 1 * 5 + 3 * 6);  // (A^T B^T)[0][0] = A[0][0] B[0][0] + A[1][0] B[0][1]
    CHECK(cd[3] == 1 + 2 * 7 + 4 * 8);
}

TEST_CASE("sgemm gives bit-identical results with 1, 2 and 3 threads", "[gemm]") {
    KernelGuard guard;
    const int saved_threads = nanogpt::detail::max_threads();
    const Shape shapes[] = {{false, true, 300, 200, 520}, {false, false, 37, 500, 600},
                            {true, false, 130, 257, 300}, {true, true, 701, 96, 64},
                            {false, true, 29, 4200, 20},  {true, false, 90, 70, 1700},
                            {false, true, 3, 2000, 700},  {true, false, 1, 5000, 300}};
    for (const char* kernel : all_kernels) {
        if (!nanogpt::kernels::sgemm_force_kernel(kernel)) continue;
        for (const Shape& s : shapes) {
            INFO("kernel " << kernel << ": " << describe(s));
            std::mt19937 rng(99);
            const Stored a(s.trans_a ? s.K : s.M, s.trans_a ? s.M : s.K, 0, rng);
            const Stored b(s.trans_b ? s.N : s.K, s.trans_b ? s.K : s.N, 0, rng);
            const Stored c0(s.M, s.N, 0, rng);
            std::vector<float> c[3] = {c0.data, c0.data, c0.data};
            for (int t = 0; t < 3; ++t) {
                nanogpt::detail::set_threads(t + 1);
                sgemm(s.trans_a, s.trans_b, s.M, s.N, s.K, a.data.data(), a.ld, b.data.data(), b.ld,
                      c[t].data(), c0.ld, true);
            }
            CHECK(std::memcmp(c[0].data(), c[1].data(), c[0].size() * sizeof(float)) == 0);
            CHECK(std::memcmp(c[0].data(), c[2].data(), c[0].size() * sizeof(float)) == 0);
        }
    }
    nanogpt::detail::set_threads(saved_threads);
}
