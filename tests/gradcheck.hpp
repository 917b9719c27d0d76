// gradcheck.hpp — the one gradient-check helper of the test suite, plus seeded random inputs.
//
// gradcheck(loss_fn, leaves) compares the gradients that backward() adds into every leaf with
// central differences, (f(x + h) - f(x - h)) / 2h, taken by perturbing each element of each leaf
// in place. Everything runs in double so h = 1e-6 gives ~1e-10 relative accuracy. An element
// passes when |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|); on failure the
// report names the leaf, the worst element and its analytic/numeric pair.
//
// Tests reduce an op's output with weighted_sum(out) = sum(mul(out, w)) for fixed random w rather
// than a plain sum: a plain sum sends the same upstream gradient to every output element, which
// hides errors such as swapped indices or a missing term that cancels out.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>   // std::max
#include <cmath>       // std::fabs, std::isfinite
#include <cstdint>     // std::int32_t, std::int64_t, std::uint64_t
#include <functional>  // std::function
#include <iomanip>     // std::setprecision
#include <sstream>     // std::ostringstream
#include <string>      // std::string, std::to_string
#include <utility>     // std::move
#include <vector>      // std::vector

#include <nanogpt/random.hpp>
#include <nanogpt/ops/elementwise.hpp>
#include <nanogpt/parameters.hpp>
#include <nanogpt/tape.hpp>
#include <nanogpt/tensor.hpp>

namespace nanogpt::test {

// ---- seeded random inputs ----

/// n values drawn from N(mean, std^2) by nanogpt::Random(seed): the same on every platform.
inline std::vector<double> random_values(std::int64_t n, std::uint64_t seed, double std = 1.0,
                                         double mean = 0.0) {
    Random rng(seed);
    std::vector<double> v(static_cast<std::size_t>(n));
    for (double& x : v) x = mean + std * rng.normal();
    return v;
}

/// Overwrites n elements at p with seeded N(mean, std^2) values (converted to T).
template <class T>
void fill_random(T* p, std::int64_t n, std::uint64_t seed, double std = 1.0, double mean = 0.0) {
    const std::vector<double> v = random_values(n, seed, std, mean);
    for (std::int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(v[static_cast<std::size_t>(i)]);
}

/// An owned tensor of seeded N(0, std^2) values. The same seed gives the same values (up to
/// rounding) for T = float and T = double, which is what float-vs-double comparisons need.
template <class T>
Tensor<T> random_tensor(const Shape& shape, std::uint64_t seed, bool requires_grad = false,
                        double std = 1.0) {
    Tensor<T> t(shape, requires_grad);
    fill_random(t.data(), t.numel(), seed, std);
    return t;
}

/// Uniformly random token ids in [0, vocab), fixed by `seed`.
inline Tensor<std::int32_t> random_ids(const Shape& shape, std::int64_t vocab, std::uint64_t seed) {
    Random rng(seed);
    Tensor<std::int32_t> t(shape);
    for (std::int64_t i = 0; i < t.numel(); ++i) {
        t.data()[i] = static_cast<std::int32_t>(rng.uniform_int(static_cast<std::uint64_t>(vocab)));
    }
    return t;
}

/// sum(mul(out, w)) with w ~ N(0, 1) fixed by `seed`: a scalar in which every element of `out`
/// has its own weight, so its gradient w.r.t. out is w.
template <class T>
Tensor<T> weighted_sum(const Tensor<T>& out, std::uint64_t seed = 4242) {
    return sum(mul(out, random_tensor<T>(out.shape(), seed)));
}

// ---- gradient check ----

/// One block of numbers to check: the values to perturb and the gradient backward() fills.
struct GradLeaf {
    std::string name;
    double* data;
    double* grad;
    std::int64_t n;
};

/// A leaf tensor (owned, or a parameter view) as a GradLeaf.
inline GradLeaf grad_leaf(Tensor<double> t, std::string name) {
    REQUIRE(t.requires_grad());
    return GradLeaf{std::move(name), t.data(), t.grad(), t.numel()};
}

/// Every parameter of a Parameters buffer, one GradLeaf per named tensor.
inline std::vector<GradLeaf> grad_leaves(Parameters<double>& params) {
    std::vector<GradLeaf> leaves;
    for (const ParameterInfo& info : params.infos()) {
        leaves.push_back(GradLeaf{info.name, params.data() + info.offset,
                                  params.grad() + info.offset, info.shape.numel()});
    }
    return leaves;
}

struct GradcheckOptions {
    double h = 1e-6;     // central-difference step
    double rtol = 1e-5;  // relative tolerance
    double atol = 1e-8;  // absolute tolerance, for gradients near zero
    /// Fail when every element of a leaf has a zero numeric gradient: such a leaf is not
    /// connected to the loss, and a check of zeros against zeros proves nothing.
    bool require_nonzero = true;
};

/// Checks d loss_fn() / d leaf for every leaf element. loss_fn must build a one-element loss
/// from the leaves' current values and be deterministic (reseed any dropout inside it).
inline void gradcheck(const std::function<Tensor<double>()>& loss_fn,
                      const std::vector<GradLeaf>& leaves, const GradcheckOptions& opt = {}) {
    // Analytic: one forward, one backward. backward() must ADD into a leaf's gradient, so the
    // gradients start from a known non-zero pattern that is subtracted afterwards: a backward
    // kernel that overwrites instead of accumulating fails here.
    auto start_value = [](std::int64_t i) { return 0.25 * static_cast<double>(1 + i % 7); };
    for (const GradLeaf& leaf : leaves) {
        for (std::int64_t i = 0; i < leaf.n; ++i) leaf.grad[i] = start_value(i);
    }
    Tape::current().begin_graph();
    {
        Tensor<double> loss = loss_fn();
        REQUIRE(loss.numel() == 1);
        REQUIRE(std::isfinite(loss.item()));
        loss.backward();
    }
    std::vector<std::vector<double>> analytic;
    for (const GradLeaf& leaf : leaves) {
        for (std::int64_t i = 0; i < leaf.n; ++i) leaf.grad[i] -= start_value(i);  // plain again
        analytic.emplace_back(leaf.grad, leaf.grad + leaf.n);
    }

    // Numeric: each evaluation starts its own graph and records nothing.
    auto evaluate = [&] {
        NoGradGuard no_grad;
        Tape::current().begin_graph();
        return loss_fn().item();
    };
    for (std::size_t l = 0; l < leaves.size(); ++l) {
        const GradLeaf& leaf = leaves[l];
        std::int64_t failures = 0, worst = -1;
        double worst_excess = -1.0, worst_numeric = 0.0, max_abs_numeric = 0.0;
        for (std::int64_t i = 0; i < leaf.n; ++i) {
            const double saved = leaf.data[i];
            leaf.data[i] = saved + opt.h;
            const double plus = evaluate();
            leaf.data[i] = saved - opt.h;
            const double minus = evaluate();
            leaf.data[i] = saved;
            const double numeric = (plus - minus) / (2.0 * opt.h);
            const double a = analytic[l][static_cast<std::size_t>(i)];
            const double tolerance =
                opt.atol + opt.rtol * std::max(std::fabs(a), std::fabs(numeric));
            const double excess = std::fabs(a - numeric) / tolerance;  // > 1 fails
            if (!(excess <= 1.0)) ++failures;                          // NaN fails too
            if (!(excess <= worst_excess)) {
                worst_excess = excess;
                worst = i;
                worst_numeric = numeric;
            }
            max_abs_numeric = std::max(max_abs_numeric, std::fabs(numeric));
        }
        std::ostringstream report;
        report << std::setprecision(12) << "leaf " << l << " ('" << leaf.name << "', " << leaf.n
               << " elements): " << failures << " elements outside tolerance; worst is element "
               << worst;
        if (worst >= 0) {
            const double a = analytic[l][static_cast<std::size_t>(worst)];
            report << ": analytic " << a << " vs numeric " << worst_numeric << " (relative error "
                   << std::fabs(a - worst_numeric) /
                          std::max(1e-300, std::fabs(a) + std::fabs(worst_numeric))
                   << ")";
        }
        INFO(report.str());
        CHECK(failures == 0);
        if (opt.require_nonzero && leaf.n > 0) CHECK(max_abs_numeric > 0.0);
    }
}

/// The same for leaf tensors, named "leaf 0", "leaf 1", ... in the report.
inline void gradcheck(const std::function<Tensor<double>()>& loss_fn,
                      const std::vector<Tensor<double>>& leaves, const GradcheckOptions& opt = {}) {
    std::vector<GradLeaf> blocks;
    for (std::size_t i = 0; i < leaves.size(); ++i) {
        blocks.push_back(grad_leaf(leaves[i], "leaf " + std::to_string(i)));
    }
    gradcheck(loss_fn, blocks, opt);
}

}  // namespace nanogpt::test
