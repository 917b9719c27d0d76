// Tests for optim.hpp: AdamW's first two steps against values worked out by hand (with decay on
// a 2-D parameter and none on a 1-D one), clip_grad_norm, nanoGPT's learning-rate schedule, and
// the validation of AdamW's settings.
#include <catch2/catch.hpp>

#include <algorithm>  // std::fill
#include <cmath>      // std::sqrt, std::cos, std::sin, std::pow, std::isnan, std::isinf
#include <cstdint>    // std::int64_t
#include <limits>     // std::numeric_limits
#include <stdexcept>  // std::invalid_argument
#include <vector>     // std::vector

#include <nanogpt/optim.hpp>
#include <nanogpt/parameters.hpp>

namespace {

using Catch::Matchers::Contains;
using nanogpt::AdamW;
using nanogpt::AdamWConfig;
using nanogpt::Init;
using nanogpt::LRSchedule;
using nanogpt::Parameters;
using nanogpt::Shape;

/// Two parameters holding the same numbers: "w" [1, 2] (2-D: decayed) and "b" [2] (1-D: not).
template <class T>
Parameters<T> two_parameters() {
    Parameters<T> params(4);
    params.add("w", Shape{1, 2}, Init::zeros());
    params.add("b", Shape{2}, Init::zeros());
    const T start[4] = {T(0.5), T(-1.0), T(0.5), T(-1.0)};
    for (int i = 0; i < 4; ++i) params.data()[i] = start[i];
    return params;
}

template <class T>
void set_gradient(Parameters<T>& params, double g0, double g1) {
    const T g[4] = {T(g0), T(g1), T(g0), T(g1)};
    for (int i = 0; i < 4; ++i) params.grad()[i] = g[i];
}

}  // namespace

// ---- AdamW ----

TEST_CASE("optim: AdamW one and two steps by hand", "[optim]") {
    // lr = 0.01, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1. For each element:
    //   p <- p (1 - lr wd)                       (only for "w", the 2-D parameter)
    //   m <- 0.9 m + 0.1 g;   v <- 0.95 v + 0.05 g^2
    //   p <- p - lr (m / (1 - 0.9^t)) / (sqrt(v / (1 - 0.95^t)) + eps)
    Parameters<double> params = two_parameters<double>();
    AdamW<double> opt(params, AdamWConfig{0.9, 0.95, 1e-8, 0.1});
    const double* p = params.data();

    // Step 1 with g = (0.1, -0.2): m = (0.01, -0.02), v = (0.0005, 0.002); the bias corrections
    // (1 - 0.9 = 0.1, 1 - 0.95 = 0.05) give back m_hat = g, v_hat = g^2, so each step is
    // lr g / (|g| + eps).
    set_gradient(params, 0.1, -0.2);
    opt.step(0.01);
    CHECK(opt.steps() == 1);
    const double w1[2] = {0.5 * 0.999 - 0.01 * 0.1 / (0.1 + 1e-8),
                          -1.0 * 0.999 + 0.01 * 0.2 / (0.2 + 1e-8)};
    const double b1[2] = {0.5 - 0.01 * 0.1 / (0.1 + 1e-8), -1.0 + 0.01 * 0.2 / (0.2 + 1e-8)};
    CHECK(w1[0] == Approx(0.4895000009999999).epsilon(1e-15));  // the same numbers, evaluated
    CHECK(w1[1] == Approx(-0.9890000004999999).epsilon(1e-15));
    CHECK(p[0] == Approx(w1[0]).epsilon(1e-13));
    CHECK(p[1] == Approx(w1[1]).epsilon(1e-13));
    CHECK(p[2] == Approx(b1[0]).epsilon(1e-13));
    CHECK(p[3] == Approx(b1[1]).epsilon(1e-13));
    CHECK(opt.m()[0] == Approx(0.01).epsilon(1e-13));
    CHECK(opt.v()[1] == Approx(0.002).epsilon(1e-13));

    // Step 2 with g = (0.3, 0.1):
    //   m = (0.9 * 0.01 + 0.1 * 0.3, 0.9 * -0.02 + 0.1 * 0.1)             = (0.039, -0.008)
    //   v = (0.95 * 0.0005 + 0.05 * 0.09, 0.95 * 0.002 + 0.05 * 0.01)     = (0.004975, 0.0024)
    //   bias corrections 1 - 0.9^2 = 0.19 and 1 - 0.95^2 = 0.0975.
    set_gradient(params, 0.3, 0.1);
    opt.step(0.01);
    CHECK(opt.steps() == 2);
    const double step0 = 0.01 * (0.039 / 0.19) / (std::sqrt(0.004975 / 0.0975) + 1e-8);
    const double step1 = 0.01 * (-0.008 / 0.19) / (std::sqrt(0.0024 / 0.0975) + 1e-8);
    CHECK(p[0] == Approx(w1[0] * 0.999 - step0).epsilon(1e-12));
    CHECK(p[1] == Approx(w1[1] * 0.999 - step1).epsilon(1e-12));
    CHECK(p[2] == Approx(b1[0] - step0).epsilon(1e-12));
    CHECK(p[3] == Approx(b1[1] - step1).epsilon(1e-12));
    // Independently evaluated results of the same recurrences.
    CHECK(p[0] == Approx(0.4799235800039695).epsilon(1e-12));
    CHECK(p[1] == Approx(-0.9853273061897143).epsilon(1e-12));
    CHECK(p[2] == Approx(0.4809130800049695).epsilon(1e-12));
    CHECK(p[3] == Approx(-0.9873163061902143).epsilon(1e-12));
}

TEST_CASE("optim: AdamW in float follows the double result", "[optim]") {
    Parameters<float> pf = two_parameters<float>();
    Parameters<double> pd = two_parameters<double>();
    AdamW<float> of(pf);
    AdamW<double> od(pd);
    for (int t = 0; t < 3; ++t) {
        set_gradient(pf, 0.1 * (t + 1), -0.3 + 0.2 * t);
        set_gradient(pd, 0.1 * (t + 1), -0.3 + 0.2 * t);
        of.step(1e-2);
        od.step(1e-2);
    }
    for (int i = 0; i < 4; ++i) CHECK(pf.data()[i] == Approx(pd.data()[i]).epsilon(1e-6));
}

TEST_CASE("optim: the fast AdamW loop equals the plain one", "[optim]") {
    // Several 16384-element chunks and a tail that is not a multiple of 16, so with AVX-512 or NEON
    // both the vector loop and its scalar remainder run. Same operations in the same order; only
    // FMA contraction in the plain loop may round differently, by an ulp or so of the terms
    // (|(1 - beta1) g| < 0.6, |p| < 1.1), hence the absolute margins.
    const std::int64_t n = 2 * 16384 + 37;
    std::vector<float> grad(n), p0(n), m0(n), v0(n);
    for (std::int64_t i = 0; i < n; ++i) {
        grad[i] = std::sin(0.37f * float(i)) * (1.0f + float(i % 5));
        p0[i] = std::cos(0.11f * float(i));
        m0[i] = 0.01f * std::sin(0.05f * float(i));
        v0[i] = 0.001f * (1.0f + std::cos(0.07f * float(i)));
    }
    std::vector<float> p_fast = p0, m_fast = m0, v_fast = v0, p_plain = p0, m_plain = m0,
                       v_plain = v0;
    const AdamWConfig config{};
    nanogpt::kernels::adamw_update(p_fast.data(), grad.data(), m_fast.data(), v_fast.data(), n,
                                   3e-3, 0.1, config, 7, 0.5);
    const double bias1 = 1.0 - std::pow(config.beta1, 7.0),
                 bias2 = 1.0 - std::pow(config.beta2, 7.0);
    const nanogpt::kernels::AdamWScalars<float> s{float(config.beta1),
                                                  float(config.beta2),
                                                  float(3e-3 / bias1),
                                                  float(1.0 / std::sqrt(bias2)),
                                                  float(1.0 - 3e-3 * 0.1),
                                                  float(config.eps),
                                                  0.5f};
    nanogpt::kernels::adamw_span(p_plain.data(), grad.data(), m_plain.data(), v_plain.data(),
                                 std::int64_t{0}, n, s);
    for (std::int64_t i = 0; i < n; ++i) {
        INFO("element " << i);
        REQUIRE(m_fast[i] == Approx(m_plain[i]).epsilon(1e-6).margin(2e-7));
        REQUIRE(v_fast[i] == Approx(v_plain[i]).epsilon(1e-6).margin(1e-8));
        REQUIRE(p_fast[i] == Approx(p_plain[i]).epsilon(1e-6).margin(1e-6));
        REQUIRE(p_fast[i] != p0[i]);  // every element was updated
    }
}

TEST_CASE("optim: AdamW weight decay touches only 2-D parameters", "[optim]") {
    // With a zero gradient, m = v = 0 and the update is pure decay: p (1 - lr wd).
    Parameters<double> params = two_parameters<double>();
    AdamW<double> opt(params, AdamWConfig{0.9, 0.95, 1e-8, 0.5});
    opt.step(0.1);
    CHECK(params.data()[0] == Approx(0.5 * (1 - 0.1 * 0.5)).epsilon(1e-15));
    CHECK(params.data()[1] == Approx(-1.0 * (1 - 0.1 * 0.5)).epsilon(1e-15));
    CHECK(params.data()[2] == 0.5);
    CHECK(params.data()[3] == -1.0);
    CHECK(params.infos()[0].decay());
    CHECK_FALSE(params.infos()[1].decay());
}

TEST_CASE("optim: AdamW rejects invalid settings", "[optim]") {
    Parameters<double> params = two_parameters<double>();
    const double nan = std::numeric_limits<double>::quiet_NaN();
    auto make = [&](AdamWConfig c) { (void)AdamW<double>{params, c}; };
    SECTION("beta1") {
        CHECK_THROWS_AS(make(AdamWConfig{1.0, 0.95, 1e-8, 0.1}), std::invalid_argument);
        CHECK_THROWS_WITH(make(AdamWConfig{1.0, 0.95, 1e-8, 0.1}), Contains("beta1"));
        CHECK_THROWS_WITH(make(AdamWConfig{-0.1, 0.95, 1e-8, 0.1}), Contains("beta1"));
        CHECK_THROWS_WITH(make(AdamWConfig{nan, 0.95, 1e-8, 0.1}), Contains("beta1"));
    }
    SECTION("beta2") {
        CHECK_THROWS_AS(make(AdamWConfig{0.9, 1.5, 1e-8, 0.1}), std::invalid_argument);
        CHECK_THROWS_WITH(make(AdamWConfig{0.9, 1.5, 1e-8, 0.1}), Contains("beta2"));
    }
    SECTION("eps") {
        CHECK_THROWS_AS(make(AdamWConfig{0.9, 0.95, 0.0, 0.1}), std::invalid_argument);
        CHECK_THROWS_WITH(make(AdamWConfig{0.9, 0.95, 0.0, 0.1}), Contains("eps"));
    }
    SECTION("weight_decay") {
        CHECK_THROWS_AS(make(AdamWConfig{0.9, 0.95, 1e-8, -0.1}), std::invalid_argument);
        CHECK_THROWS_WITH(make(AdamWConfig{0.9, 0.95, 1e-8, -0.1}), Contains("weight_decay"));
    }
    SECTION("learning rate of a step") {
        AdamW<double> opt(params);
        CHECK_THROWS_AS(opt.step(-1e-3), std::invalid_argument);
        CHECK_THROWS_WITH(opt.step(-1e-3), Contains("learning rate"));
        CHECK_THROWS_WITH(opt.step(nan), Contains("learning rate"));
        CHECK_THROWS_WITH(opt.step(std::numeric_limits<double>::infinity()),
                          Contains("learning rate"));
        CHECK(opt.steps() == 0);  // a rejected step changes nothing
        CHECK(params.data()[0] == 0.5);
    }
}

// ---- gradient clipping ----

TEST_CASE("optim: clip_grad_norm returns the norm and scales to max_norm", "[optim]") {
    Parameters<double> params(2);
    params.add("p", Shape{2}, Init::zeros());
    auto set = [&](double a, double b) {
        params.grad()[0] = a;
        params.grad()[1] = b;
    };
    SECTION("above max_norm: scaled by max_norm / (norm + 1e-6), as PyTorch") {
        set(3.0, 4.0);
        CHECK(nanogpt::clip_grad_norm(params, 1.0) == Approx(5.0).epsilon(1e-15));
        CHECK(params.grad()[0] == Approx(3.0 / (5.0 + 1e-6)).epsilon(1e-14));
        CHECK(params.grad()[1] == Approx(4.0 / (5.0 + 1e-6)).epsilon(1e-14));
        const double after =
            std::sqrt(params.grad()[0] * params.grad()[0] + params.grad()[1] * params.grad()[1]);
        CHECK(after == Approx(1.0).epsilon(1e-6));
    }
    SECTION("below max_norm: unchanged") {
        set(3.0, 4.0);
        CHECK(nanogpt::clip_grad_norm(params, 10.0) == Approx(5.0));
        CHECK(params.grad()[0] == 3.0);
        CHECK(params.grad()[1] == 4.0);
    }
    SECTION("max_norm 0 only measures") {
        set(-6.0, 8.0);
        CHECK(nanogpt::clip_grad_norm(params, 0.0) == Approx(10.0));
        CHECK(params.grad()[0] == -6.0);
    }
    SECTION("a non-finite gradient is reported, not scaled") {
        set(std::numeric_limits<double>::infinity(), 1.0);
        CHECK(std::isinf(nanogpt::clip_grad_norm(params, 1.0)));
        CHECK(params.grad()[1] == 1.0);
        set(std::numeric_limits<double>::quiet_NaN(), 1.0);
        CHECK(std::isnan(nanogpt::clip_grad_norm(params, 1.0)));
        CHECK(params.grad()[1] == 1.0);
    }
}

TEST_CASE("optim: clip_grad_norm over several chunks", "[optim]") {
    const std::int64_t n = 3 * 65536 + 5;  // more than one chunk of the parallel sum
    Parameters<float> params(n);
    params.add("a", Shape{n}, Init::zeros());
    for (std::int64_t i = 0; i < n; ++i) params.grad()[i] = (i % 2) ? 2.0f : -2.0f;
    const double norm = nanogpt::clip_grad_norm(params, 1.0);
    CHECK(norm == Approx(2.0 * std::sqrt(static_cast<double>(n))).epsilon(1e-12));
    double after = 0.0;
    for (std::int64_t i = 0; i < n; ++i)
        after += static_cast<double>(params.grad()[i]) * params.grad()[i];
    CHECK(std::sqrt(after) == Approx(1.0).epsilon(1e-5));
}

// ---- learning-rate schedule ----

TEST_CASE("optim: clipping folded into AdamW::step equals clip_grad_norm then step", "[optim]") {
    // Two float parameter sets with the same values and gradients, over several chunks.
    const std::int64_t n = 200003;
    Parameters<float> a(n), b(n);
    a.add("w", Shape{n}, Init::normal(1.0));  // same default seed: same values
    b.add("w", Shape{n}, Init::normal(1.0));
    AdamW<float> opt_a(a), opt_b(b);
    for (int step = 0; step < 3; ++step) {
        for (std::int64_t i = 0; i < n; ++i)
            a.grad()[i] = b.grad()[i] = 0.01f * static_cast<float>((i * 7919 + step) % 101 - 50);
        const double max_norm = step == 1 ? 1e9 : 0.5;  // clips, does not clip, clips
        const double norm_a = nanogpt::clip_grad_norm(a, max_norm);
        opt_a.step(1e-3);
        const double norm_b = nanogpt::grad_norm(b);
        CHECK(norm_b == norm_a);
        CHECK((nanogpt::clip_scale(norm_b, max_norm) == 1.0) == (step == 1));
        opt_b.step(1e-3, nanogpt::clip_scale(norm_b, max_norm));
        CHECK(b.grad()[5] ==
              0.01f * static_cast<float>((5 * 7919 + step) % 101 - 50));  // untouched
        std::int64_t differ = 0;
        for (std::int64_t i = 0; i < n; ++i) differ += a.data()[i] != b.data()[i];
        CHECK(differ == 0);  // bitwise the same parameters
    }
    CHECK(opt_a.m() == opt_b.m());
    CHECK(opt_a.v() == opt_b.v());
}

TEST_CASE("optim: clip_scale", "[optim]") {
    CHECK(nanogpt::clip_scale(5.0, 1.0) == Approx(1.0 / (5.0 + 1e-6)).epsilon(1e-15));
    CHECK(nanogpt::clip_scale(0.5, 1.0) == 1.0);
    CHECK(nanogpt::clip_scale(5.0, 0.0) == 1.0);  // max_norm 0: no clipping
    CHECK(nanogpt::clip_scale(std::numeric_limits<double>::infinity(), 1.0) == 1.0);
    CHECK(nanogpt::clip_scale(std::nan(""), 1.0) == 1.0);
}

TEST_CASE("optim: LRSchedule warmup, cosine decay and floor", "[optim]") {
    const LRSchedule s{1.0, 0.1, 10, 110, true};
    SECTION("linear warmup: lr (it + 1) / (warmup + 1)") {
        CHECK(s.at(0) == Approx(1.0 / 11).epsilon(1e-15));
        CHECK(s.at(4) == Approx(5.0 / 11).epsilon(1e-15));
        CHECK(s.at(9) == Approx(10.0 / 11).epsilon(1e-15));
    }
    SECTION("cosine from lr at the end of warmup to min_lr at lr_decay_iters") {
        CHECK(s.at(10) == Approx(1.0).epsilon(1e-15));
        // Quarter way: 0.1 + 0.5 (1 + cos(pi / 4)) 0.9 = 0.868198...
        CHECK(s.at(35) ==
              Approx(0.1 + 0.5 * (1 + std::cos(3.141592653589793 / 4)) * 0.9).epsilon(1e-14));
        CHECK(s.at(35) == Approx(0.8681980515339464).epsilon(1e-14));
        CHECK(s.at(60) == Approx(0.55).epsilon(1e-14));  // midpoint: halfway between lr and min_lr
        CHECK(s.at(110) == Approx(0.1).epsilon(1e-14));
    }
    SECTION("min_lr after decay") {
        CHECK(s.at(111) == 0.1);
        CHECK(s.at(1000000) == 0.1);
    }
    SECTION("decay_lr = false: constant") {
        const LRSchedule c{1.0, 0.1, 10, 110, false};
        CHECK(c.at(0) == 1.0);
        CHECK(c.at(60) == 1.0);
        CHECK(c.at(1000000) == 1.0);
    }
    SECTION("nanoGPT's defaults") {
        const LRSchedule d;
        CHECK(d.at(0) == Approx(6e-4 / 2001).epsilon(1e-14));
        CHECK(d.at(2000) == Approx(6e-4).epsilon(1e-14));
        CHECK(d.at(600001) == Approx(6e-5).epsilon(1e-14));
    }
    SECTION("values change monotonically") {
        for (std::int64_t it = 0; it < 10; ++it) CHECK(s.at(it) < s.at(it + 1));
        for (std::int64_t it = 10; it < 110; ++it) CHECK(s.at(it) > s.at(it + 1));
    }
}

TEST_CASE("optim: AdamW over shards equals AdamW over the whole buffer (ZeRO-1)", "[optim]") {
    // Three parameters (two decayed) and shard edges inside them: each shard's optimizer keeps
    // moments for its range only and updates only it; together they are the whole update.
    const std::int64_t n = 2 * 3 + 5 + 4 * 2;
    auto make = [] {
        Parameters<float> p(n);
        p.add("w", Shape{2, 3}, Init::normal(1.0));
        p.add("b", Shape{5}, Init::normal(1.0));
        p.add("u", Shape{4, 2}, Init::normal(1.0));
        return p;
    };
    Parameters<float> whole = make(), sharded = make();
    AdamW<float> opt(whole);
    const std::int64_t edges[] = {0, 4, 9, n};
    std::vector<AdamW<float>> shards;
    for (int s = 0; s < 3; ++s) shards.emplace_back(sharded, AdamWConfig{}, edges[s], edges[s + 1]);
    CHECK(shards[1].m().size() == 5);
    CHECK(shards[1].shard_begin() == 4);
    for (int step = 0; step < 3; ++step) {
        for (std::int64_t i = 0; i < n; ++i)
            whole.grad()[i] = sharded.grad()[i] = 0.1f * static_cast<float>((i * 31 + step) % 7) - 0.3f;
        opt.step(1e-2, 0.5);
        for (AdamW<float>& shard : shards) shard.step(1e-2, 0.5);
    }
    for (std::int64_t i = 0; i < n; ++i) CHECK(sharded.data()[i] == whole.data()[i]);
    for (int s = 0; s < 3; ++s) {
        for (std::int64_t i = edges[s]; i < edges[s + 1]; ++i) {
            CHECK(shards[s].m()[i - edges[s]] == opt.m()[i]);
            CHECK(shards[s].v()[i - edges[s]] == opt.v()[i]);
        }
    }
    SECTION("a shard outside the buffer is an error") {
        CHECK_THROWS_WITH((AdamW<float>(whole, AdamWConfig{}, 4, n + 1)),
                          Contains("AdamW: shard [4, 20) is not within the 19 parameters"));
    }
}

TEST_CASE("optim: sum_of_squares over ranges adds up to grad_norm", "[optim]") {
    const std::int64_t n = 200003;
    Parameters<float> p(n);
    p.add("w", Shape{n}, Init::normal(1.0));
    for (std::int64_t i = 0; i < n; ++i) p.grad()[i] = p.data()[i];
    const double whole = nanogpt::grad_norm(p);
    const double halves = std::sqrt(nanogpt::sum_of_squares(p.grad(), 70001) +
                                    nanogpt::sum_of_squares(p.grad() + 70001, n - 70001));
    CHECK(halves == Approx(whole).epsilon(1e-12));
}

TEST_CASE("optim: AdamW::step reports non-finite weights and moments (issue 11, item 7)",
          "[optim]") {
    SECTION("float, long enough for the vector loop") {
        Parameters<float> params(40000);
        params.add("w", Shape{200, 200}, Init::ones());
        AdamW<float> opt(params);
        std::fill(params.grad(), params.grad() + params.size(), 0.5f);
        CHECK(opt.step(1e-3));
        params.grad()[39999] = 1e30f;  // its square overflows float: v becomes infinite
        CHECK_FALSE(opt.step(1e-3));
        CHECK(std::isinf(opt.v()[39999]));
    }
    SECTION("a learning rate that sends a weight to infinity") {
        Parameters<float> params(8);
        params.add("b", Shape{8}, Init::ones());
        AdamW<float> opt(params);
        std::fill(params.grad(), params.grad() + params.size(), 1.0f);
        CHECK_FALSE(opt.step(1e39));
    }
    SECTION("double") {
        Parameters<double> params = two_parameters<double>();
        AdamW<double> opt(params);
        CHECK(opt.step(0.1));
        params.grad()[0] = std::numeric_limits<double>::quiet_NaN();
        CHECK_FALSE(opt.step(0.1));
    }
}
