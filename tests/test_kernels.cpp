// The fast kernels against their plain reference twins: GEMM-based attention vs the per-row
// loops, and the vectorisable exp/tanh vs the C library. (The GEMM itself: test_gemm.cpp.)
#include <catch2/catch.hpp>

#include <cmath>    // std::exp, std::tanh, std::fabs
#include <cstdint>  // std::int64_t
#include <utility>  // std::pair
#include <vector>   // std::vector

#include <nanogpt/detail/fast_math.hpp>
#include <nanogpt/threading.hpp>
#include <nanogpt/random.hpp>
#include <nanogpt/ops/attention.hpp>

using namespace nanogpt;

namespace {

std::vector<float> random_floats(std::int64_t n, std::uint64_t seed) {
    Random rng(seed);
    std::vector<float> v(static_cast<std::size_t>(n));
    for (float& x : v) x = static_cast<float>(rng.normal());
    return v;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    double worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        worst = std::max(worst, std::fabs(double(a[i]) - double(b[i])));
    return worst;
}

}  // namespace

TEST_CASE("kernels: fast attention matches the reference loops", "[attention]") {
    // Row blocks are attention_rows(T) high: T = 13 fits one block; T = 150 spans six blocks of
    // 28 rows and T = 300 six of 56, each with a partial last block.
    CHECK(kernels::attention_rows(150) == 28);
    CHECK(kernels::attention_rows(300) == 56);
    for (auto [dropout, T] : {std::pair{0.0, 13}, std::pair{0.3, 13}, std::pair{0.0, 150},
                              std::pair{0.3, 150}, std::pair{0.0, 300}}) {
        const kernels::AttentionDims d{2, T, 24, 3, dropout, 99};  // hs = 8
        const std::int64_t qkv_n = d.B * d.T * 3 * d.C, out_n = d.B * d.T * d.C,
                           att_n = d.B * d.NH * d.T * d.T;
        const auto qkv = random_floats(qkv_n, 1), dout = random_floats(out_n, 2);
        std::vector<float> out_ref(out_n), out_fast(out_n), att_ref(att_n),
            stats(2 * d.B * d.NH * d.T), workspace(kernels::attention_workspace_size(d, true));
        kernels::attention_forward_reference(out_ref.data(), att_ref.data(), qkv.data(), d);
        kernels::attention_forward(out_fast.data(), stats.data(), workspace.data(), qkv.data(), d);
        INFO("dropout " << dropout << ", T " << T);
        CHECK(max_abs_diff(out_ref, out_fast) < 1e-5);

        std::vector<float> dqkv_ref(qkv_n, 0.5f), dqkv_fast(qkv_n, 0.5f);  // backward accumulates
        std::vector<float> scratch_ref(d.B * d.NH * d.T);
        kernels::attention_backward_reference(dqkv_ref.data(), scratch_ref.data(), dout.data(),
                                              qkv.data(), att_ref.data(), d);
        kernels::attention_backward(dqkv_fast.data(), workspace.data(), dout.data(), qkv.data(),
                                    stats.data(), d);
        CHECK(max_abs_diff(dqkv_ref, dqkv_fast) < 1e-5);

        // Each head's work does not depend on how heads are dealt to threads.
        const int threads = num_threads();
        for (const int n : {1, 3}) {
            set_num_threads(n);
            std::vector<float> out_n_threads(out_n), stats_n_threads(stats.size()),
                dqkv_n_threads(qkv_n, 0.5f),
                workspace_n(kernels::attention_workspace_size(d, true));
            kernels::attention_forward(out_n_threads.data(), stats_n_threads.data(),
                                       workspace_n.data(), qkv.data(), d);
            kernels::attention_backward(dqkv_n_threads.data(), workspace_n.data(), dout.data(),
                                        qkv.data(), stats_n_threads.data(), d);
            set_num_threads(threads);
            INFO(n << " threads");
            CHECK(out_n_threads == out_fast);
            CHECK(stats_n_threads == stats);
            CHECK(dqkv_n_threads == dqkv_fast);
        }
    }
}

TEST_CASE("kernels: exp_approx and tanh_fast are within float rounding of libm") {
    double worst_exp = 0, worst_tanh = 0;
    for (float x = -87.0f; x < 88.0f; x += 0.01173f) {
        const double e = std::exp(double(x));
        worst_exp = std::max(worst_exp, std::fabs(detail::exp_approx(x) - e) / e);
    }
    for (float x = -12.0f; x < 12.0f; x += 0.00131f) {
        worst_tanh = std::max(worst_tanh, std::fabs(detail::tanh_fast(x) - std::tanh(double(x))));
    }
    CHECK(worst_exp < 5e-7);
    CHECK(worst_tanh < 5e-7);
    SECTION("edges: overflow saturates, underflow is tiny, NaN propagates") {
        CHECK(std::isfinite(detail::exp_approx(1000.0f)));
        CHECK(detail::exp_approx(-INFINITY) < 1e-37f);
        CHECK(detail::exp_approx(-INFINITY) >= 0.0f);
        CHECK(std::isnan(detail::exp_approx(NAN)));
        CHECK(detail::tanh_fast(100.0f) == 1.0f);
        CHECK(detail::tanh_fast(-100.0f) == -1.0f);
    }
    SECTION("double keeps the exact library functions") {
        CHECK(detail::exp_fast(0.5) == std::exp(0.5));
        CHECK(detail::tanh_fast(0.5) == std::tanh(0.5));
    }
}
