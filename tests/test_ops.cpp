// Tests for ops/*.hpp. For every differentiable op: forward values against a direct hand
// computation on a small case, a double-precision finite-difference check of every input that
// takes a gradient (gradcheck.hpp), the error messages of bad arguments, and agreement between a
// float run and a double run. The fused causal_self_attention is also checked against its
// composed twin, composed_causal_self_attention (slice, heads, matmul, scale, causal softmax,
// matmul, merge).
#include <catch2/catch.hpp>

#include <algorithm>  // std::max
#include <cmath>      // std::exp, std::log, std::sqrt, std::fabs
#include <cstdint>    // std::int32_t, std::int64_t, std::uint64_t
#include <numeric>    // std::iota
#include <stdexcept>  // std::invalid_argument, std::out_of_range
#include <string>     // std::string, std::to_string
#include <thread>     // std::thread (a fresh tape)
#include <utility>    // std::swap
#include <vector>     // std::vector

#include <nanogpt/ops/attention.hpp>
#include <nanogpt/ops/elementwise.hpp>
#include <nanogpt/ops/embedding.hpp>
#include <nanogpt/ops/loss.hpp>
#include <nanogpt/ops/matmul.hpp>
#include <nanogpt/ops/norm.hpp>
#include <nanogpt/ops/shape.hpp>
#include <nanogpt/tape.hpp>
#include <nanogpt/tensor.hpp>

#include "gradcheck.hpp"

namespace {

using Catch::Matchers::Contains;
using nanogpt::Shape;
using nanogpt::Tape;
using nanogpt::Tensor;
using nanogpt::test::gradcheck;
using nanogpt::test::random_tensor;
using nanogpt::test::weighted_sum;
using Ids = Tensor<std::int32_t>;

/// A double leaf (requires grad) of seeded N(0, std^2) values.
Tensor<double> leaf(const Shape& shape, std::uint64_t seed, double std = 1.0) {
    return random_tensor<double>(shape, seed, true, std);
}

/// A constant (no gradient) double tensor with the given values.
Tensor<double> values(const Shape& shape, const std::vector<double>& v,
                      bool requires_grad = false) {
    return Tensor<double>::from_vector(shape, v, requires_grad);
}

Ids ids(const Shape& shape, const std::vector<std::int32_t>& v) {
    return Ids::from_vector(shape, v);
}

/// Every element of `actual` equals `expected` within tol (absolute and relative).
template <class T>
void check_values(const Tensor<T>& actual, const std::vector<double>& expected,
                  double tol = 1e-12) {
    REQUIRE(actual.numel() == static_cast<std::int64_t>(expected.size()));
    const T* a = actual.data();
    for (std::size_t i = 0; i < expected.size(); ++i) {
        INFO("element " << i);
        CHECK(static_cast<double>(a[i]) == Approx(expected[i]).epsilon(tol).margin(tol));
    }
}

/// C[M, N] = op(A) op(B) with A stored [M, K] (or [K, M] when ta) and B [K, N] (or [N, K]).
std::vector<double> naive_matmul(const double* A, const double* B, std::int64_t M, std::int64_t N,
                                 std::int64_t K, bool ta, bool tb) {
    std::vector<double> C(static_cast<std::size_t>(M * N), 0.0);
    for (std::int64_t i = 0; i < M; ++i)
        for (std::int64_t j = 0; j < N; ++j)
            for (std::int64_t p = 0; p < K; ++p)
                C[static_cast<std::size_t>(i * N + j)] +=
                    (ta ? A[p * M + i] : A[i * K + p]) * (tb ? B[j * K + p] : B[p * N + j]);
    return C;
}

/// Output of build(leaves) and the gradient of weighted_sum(output) w.r.t. every leaf, in
/// precision T from seeded inputs, all converted to double.
template <class T, class Build>
std::vector<std::vector<double>> run_in(const std::vector<Shape>& shapes, const Build& build) {
    std::vector<Tensor<T>> leaves;
    for (std::size_t i = 0; i < shapes.size(); ++i) {
        leaves.push_back(random_tensor<T>(shapes[i], 500 + i, true));
    }
    Tape::current().begin_graph();
    const Tensor<T> out = build(leaves);
    std::vector<std::vector<double>> result{
        std::vector<double>(out.data(), out.data() + out.numel())};
    weighted_sum(out).backward();
    for (const Tensor<T>& l : leaves) result.emplace_back(l.grad(), l.grad() + l.numel());
    return result;
}

/// Two run_in results agree: every output and gradient within tol of the largest magnitude in
/// `want` (at least 1).
void check_runs_agree(const std::vector<std::vector<double>>& got,
                      const std::vector<std::vector<double>>& want, double tol) {
    REQUIRE(got.size() == want.size());
    for (std::size_t k = 0; k < want.size(); ++k) {
        REQUIRE(got[k].size() == want[k].size());
        double magnitude = 1.0, worst = 0.0;
        for (std::size_t i = 0; i < want[k].size(); ++i) {
            magnitude = std::max(magnitude, std::fabs(want[k][i]));
            worst = std::max(worst, std::fabs(got[k][i] - want[k][i]));
        }
        INFO((k == 0 ? std::string("output") : "gradient of leaf " + std::to_string(k - 1))
             << ": max difference " << worst << ", magnitude " << magnitude);
        CHECK(worst <= tol * magnitude);
    }
}

/// The float run of an op agrees with the double run.
template <class Build>
void check_float_matches_double(const std::vector<Shape>& shapes, const Build& build,
                                double tol = 1e-4) {
    check_runs_agree(run_in<float>(shapes, build), run_in<double>(shapes, build), tol);
}

/// sum(mul(out, w)) as a loss for gradcheck.
template <class Fn>
auto weighted(Fn fn) {
    return [fn] { return weighted_sum(fn()); };
}

}  // namespace

// ---- add ----

TEST_CASE("ops: add forward, same shape and broadcast", "[ops]") {
    const auto a = values(Shape{2, 2, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
    SECTION("same shape") {
        const auto b = values(Shape{2, 2, 3}, {12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1});
        check_values(nanogpt::add(a, b), std::vector<double>(12, 13.0));
    }
    SECTION("bias [C] over [B, T, C]") {
        check_values(nanogpt::add(a, values(Shape{3}, {10, 20, 30})),
                     {11, 22, 33, 14, 25, 36, 17, 28, 39, 20, 31, 42});
    }
    SECTION("positions [T, C] over [B, T, C]") {
        check_values(nanogpt::add(a, values(Shape{2, 3}, {100, 200, 300, 400, 500, 600})),
                     {101, 202, 303, 404, 505, 606, 107, 208, 309, 410, 511, 612});
    }
}

TEST_CASE("ops: add gradient", "[ops][double]") {
    const auto a = leaf(Shape{2, 3, 4}, 1);
    SECTION("same shape") {
        const auto b = leaf(Shape{2, 3, 4}, 2);
        gradcheck(weighted([=] { return nanogpt::add(a, b); }), {a, b});
    }
    SECTION("bias [C]") {
        const auto b = leaf(Shape{4}, 3);
        gradcheck(weighted([=] { return nanogpt::add(a, b); }), {a, b});
    }
    SECTION("positions [T, C]") {
        const auto b = leaf(Shape{3, 4}, 4);
        gradcheck(weighted([=] { return nanogpt::add(a, b); }), {a, b});
    }
    SECTION("the same tensor twice") {
        gradcheck(weighted([=] { return nanogpt::add(a, a); }), {a});
    }
    SECTION("only one input requires grad") {
        const auto b = random_tensor<double>(Shape{4}, 5);
        gradcheck(weighted([=] { return nanogpt::add(a, b); }), {a});
    }
}

TEST_CASE("ops: add rejects shapes that do not broadcast", "[ops]") {
    const auto a = values(Shape{2, 3}, {1, 2, 3, 4, 5, 6});
    SECTION("wrong last dimension") {
        const auto b = values(Shape{4}, {1, 2, 3, 4});
        CHECK_THROWS_AS(nanogpt::add(a, b), std::invalid_argument);
        CHECK_THROWS_WITH(nanogpt::add(a, b),
                          Contains("add") && Contains("[4]") && Contains("[2, 3]"));
    }
    SECTION("transposed shape") {
        const auto b = values(Shape{3, 2}, {1, 2, 3, 4, 5, 6});
        CHECK_THROWS_WITH(nanogpt::add(a, b), Contains("[3, 2]") && Contains("[2, 3]"));
    }
    SECTION("b has more dimensions than a") {
        const auto b = values(Shape{3}, {1, 2, 3});
        CHECK_THROWS_AS(nanogpt::add(b, a), std::invalid_argument);
        CHECK_THROWS_WITH(nanogpt::add(b, a), Contains("[2, 3]") && Contains("[3]"));
    }
    SECTION("empty handle") {
        CHECK_THROWS_WITH(nanogpt::add(a, Tensor<double>()), Contains("add") && Contains("empty"));
    }
}

// ---- mul, scale, sum ----

TEST_CASE("ops: mul forward, gradient and shape check", "[ops][double]") {
    check_values(nanogpt::mul(values(Shape{3}, {1, -2, 3}), values(Shape{3}, {4, 5, -6})),
                 {4, -10, -18});
    const auto a = leaf(Shape{2, 5}, 10), b = leaf(Shape{2, 5}, 11);
    gradcheck(weighted([=] { return nanogpt::mul(a, b); }), {a, b});
    gradcheck(weighted([=] { return nanogpt::mul(a, a); }), {a});  // d(a^2) = 2a: aliased inputs

    SECTION("shapes differ") {
        const auto c = leaf(Shape{5, 2}, 12);
        CHECK_THROWS_AS(nanogpt::mul(a, c), std::invalid_argument);
        CHECK_THROWS_WITH(nanogpt::mul(a, c),
                          Contains("mul") && Contains("[2, 5]") && Contains("[5, 2]"));
    }
}

TEST_CASE("ops: scale forward and gradient", "[ops][double]") {
    check_values(nanogpt::scale(values(Shape{3}, {1, -2, 0.5}), -3.0), {-3, 6, -1.5});
    const auto a = leaf(Shape{3, 4}, 20);
    gradcheck(weighted([=] { return nanogpt::scale(a, 0.37); }), {a});
}

TEST_CASE("ops: sum forward and gradient", "[ops][double]") {
    const auto s = nanogpt::sum(values(Shape{2, 2}, {1.5, 2, -4, 10}));
    CHECK(s.shape() == Shape{1});
    CHECK(s.item() == 9.5);
    const auto a = leaf(Shape{4, 3}, 21);
    gradcheck([=] { return nanogpt::sum(a); }, {a});  // plain sum: every gradient is 1
    gradcheck(weighted([=] { return nanogpt::sum(a); }), {a});
}

// ---- gelu ----

TEST_CASE("ops: gelu forward at known points", "[ops]") {
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), evaluated independently.
    const auto x = values(Shape{6}, {0.0, 1.0, -1.0, 2.0, -3.0, 0.5});
    check_values(nanogpt::gelu(x),
                 {0.0, 0.8411919906082768, -0.15880800939172324, 1.954597694087775,
                  -0.0036373920817729943, 0.34571400982514394},
                 1e-14);
    // Far from 0 it is the identity on the right and 0 on the left.
    check_values(nanogpt::gelu(values(Shape{2}, {10.0, -10.0})), {10.0, 0.0}, 1e-12);
}

TEST_CASE("ops: gelu gradient", "[ops][double]") {
    const auto x = leaf(Shape{3, 7}, 30, 2.0);
    gradcheck(weighted([=] { return nanogpt::gelu(x); }), {x});
}

// ---- dropout ----

TEST_CASE("ops: dropout forward", "[ops]") {
    const std::int64_t n = 20000;
    const Tensor<double> x = Tensor<double>::from_vector(Shape{n}, std::vector<double>(n, 1.0));

    SECTION("p = 0 is the identity, without a copy") {
        const auto y = nanogpt::dropout(x, 0.0, 7);
        CHECK(y.data() == x.data());
    }
    SECTION("keeps about 1 - p of the elements, scaled by 1 / (1 - p)") {
        const auto y = nanogpt::dropout(x, 0.25, 7);
        std::int64_t kept = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            const double v = y.data()[i];
            if (v != 0.0) {
                ++kept;
                REQUIRE(v == Approx(1.0 / 0.75).epsilon(1e-15));
            }
        }
        CHECK(static_cast<double>(kept) / n == Approx(0.75).margin(0.02));
    }
    SECTION("the mask is a function of the seed") {
        const auto a = nanogpt::dropout(x, 0.5, 11).to_vector();
        const auto b = nanogpt::dropout(x, 0.5, 11).to_vector();
        const auto c = nanogpt::dropout(x, 0.5, 12).to_vector();
        CHECK(a == b);
        CHECK(a != c);
    }
    SECTION("p outside [0, 1)") {
        CHECK_THROWS_AS(nanogpt::dropout(x, 1.0, 1), std::invalid_argument);
        CHECK_THROWS_WITH(nanogpt::dropout(x, 1.0, 1), Contains("dropout") && Contains("[0, 1)"));
        CHECK_THROWS_WITH(nanogpt::dropout(x, -0.1, 1), Contains("[0, 1)"));
    }
}

TEST_CASE("ops: dropout gradient", "[ops][double]") {
    const auto x = leaf(Shape{4, 6}, 40);
    gradcheck(weighted([=] { return nanogpt::dropout(x, 0.4, 99); }), {x});
    gradcheck(weighted([=] { return nanogpt::dropout(x, 0.0, 99); }), {x});
}

// ---- matmul ----

TEST_CASE("ops: matmul forward", "[ops]") {
    SECTION("a hand-computed 2x3 @ 3x2") {
        const auto a = values(Shape{2, 3}, {1, 2, 3, 4, 5, 6});
        const auto b = values(Shape{3, 2}, {7, 8, 9, 10, 11, 12});
        const auto c = nanogpt::matmul(a, b);
        CHECK(c.shape() == Shape{2, 2});
        check_values(c, {58, 64, 139, 154});
    }
    const std::int64_t M = 3, N = 4, K = 5;
    for (int form = 0; form < 4; ++form) {
        const bool ta = form & 1, tb = form & 2;
        DYNAMIC_SECTION("trans_a " << ta << " trans_b " << tb) {
            const Shape a_mat = ta ? Shape{K, M} : Shape{M, K};
            const Shape b_mat = tb ? Shape{N, K} : Shape{K, N};
            // 2-D.
            const auto a2 = random_tensor<double>(a_mat, 1), b2 = random_tensor<double>(b_mat, 2);
            check_values(nanogpt::matmul(a2, b2, ta, tb),
                         naive_matmul(a2.data(), b2.data(), M, N, K, ta, tb), 1e-13);
            // Batched [2, ...] with a B per batch, and with one 2-D B shared by every batch.
            const auto a3 = random_tensor<double>(Shape{2, a_mat[0], a_mat[1]}, 3);
            const auto b3 = random_tensor<double>(Shape{2, b_mat[0], b_mat[1]}, 4);
            std::vector<double> batched, shared;
            for (std::int64_t i = 0; i < 2; ++i) {
                const auto c =
                    naive_matmul(a3.data() + i * M * K, b3.data() + i * K * N, M, N, K, ta, tb);
                const auto s = naive_matmul(a3.data() + i * M * K, b2.data(), M, N, K, ta, tb);
                batched.insert(batched.end(), c.begin(), c.end());
                shared.insert(shared.end(), s.begin(), s.end());
            }
            const auto c3 = nanogpt::matmul(a3, b3, ta, tb);
            CHECK(c3.shape() == Shape{2, M, N});
            check_values(c3, batched, 1e-13);
            check_values(nanogpt::matmul(a3, b2, ta, tb), shared, 1e-13);
        }
    }
}

TEST_CASE("ops: matmul gradient in all four transpose forms", "[ops][double]") {
    const std::int64_t M = 3, N = 2, K = 4;
    for (int form = 0; form < 4; ++form) {
        const bool ta = form & 1, tb = form & 2;
        const Shape a_mat = ta ? Shape{K, M} : Shape{M, K};
        const Shape b_mat = tb ? Shape{N, K} : Shape{K, N};
        DYNAMIC_SECTION("2-D, trans_a " << ta << " trans_b " << tb) {
            const auto a = leaf(a_mat, 50), b = leaf(b_mat, 51);
            gradcheck(weighted([=] { return nanogpt::matmul(a, b, ta, tb); }), {a, b});
        }
        DYNAMIC_SECTION("batched 3-D, trans_a " << ta << " trans_b " << tb) {
            const auto a = leaf(Shape{2, a_mat[0], a_mat[1]}, 52);
            const auto b = leaf(Shape{2, b_mat[0], b_mat[1]}, 53);
            gradcheck(weighted([=] { return nanogpt::matmul(a, b, ta, tb); }), {a, b});
        }
        DYNAMIC_SECTION("batched 4-D, trans_a " << ta << " trans_b " << tb) {
            const auto a = leaf(Shape{2, 2, a_mat[0], a_mat[1]}, 54);
            const auto b = leaf(Shape{2, 2, b_mat[0], b_mat[1]}, 55);
            gradcheck(weighted([=] { return nanogpt::matmul(a, b, ta, tb); }), {a, b});
        }
        DYNAMIC_SECTION("shared 2-D B, trans_a " << ta << " trans_b " << tb) {
            const auto a = leaf(Shape{3, a_mat[0], a_mat[1]}, 56);
            const auto b = leaf(b_mat, 57);
            gradcheck(weighted([=] { return nanogpt::matmul(a, b, ta, tb); }), {a, b});
        }
    }
    SECTION("aliased operands: x @ x^T") {
        const auto x = leaf(Shape{2, 3, 4}, 58);
        gradcheck(weighted([=] { return nanogpt::matmul(x, x, false, true); }), {x});
    }
}

TEST_CASE("ops: matmul rejects shapes that do not multiply", "[ops]") {
    SECTION("inner dimensions differ") {
        const auto a = leaf(Shape{2, 3}, 1), b = leaf(Shape{4, 5}, 2);
        CHECK_THROWS_AS(nanogpt::matmul(a, b), std::invalid_argument);
        CHECK_THROWS_WITH(nanogpt::matmul(a, b),
                          Contains("matmul") && Contains("[2, 3]") && Contains("[4, 5]"));
    }
    SECTION("transposed operand named with ^T") {
        const auto a = leaf(Shape{2, 3}, 1), b = leaf(Shape{4, 5}, 2);
        CHECK_THROWS_WITH(nanogpt::matmul(a, b, true, false), Contains("[2, 3]^T"));
    }
    SECTION("batch dimensions differ") {
        const auto a = leaf(Shape{2, 3, 4}, 1), b = leaf(Shape{3, 4, 5}, 2);
        CHECK_THROWS_WITH(nanogpt::matmul(a, b), Contains("[2, 3, 4]") && Contains("[3, 4, 5]"));
    }
    SECTION("one dimension") {
        const auto a = leaf(Shape{3}, 1), b = leaf(Shape{3, 2}, 2);
        CHECK_THROWS_WITH(nanogpt::matmul(a, b),
                          Contains("at least 2 dimensions") && Contains("[3]"));
    }
}

// ---- linear ----

TEST_CASE("ops: linear forward", "[ops]") {
    const auto W = values(Shape{3, 2}, {1, 0, 0, 1, 1, 1});  // (OC, C)
    const auto b = values(Shape{3}, {0.5, -0.5, 1});
    SECTION("with bias") {
        const auto y = nanogpt::linear(values(Shape{1, 2}, {1, 2}), W, b);
        CHECK(y.shape() == Shape{1, 3});
        check_values(y, {1.5, 1.5, 4});
    }
    SECTION("without bias, 3-D input") {
        const auto y = nanogpt::linear(values(Shape{2, 1, 2}, {1, 2, -3, 4}), W);
        CHECK(y.shape() == Shape{2, 1, 3});
        check_values(y, {1, 2, 3, -3, 4, 1});
    }
}

TEST_CASE("ops: linear gradient", "[ops][double]") {
    const auto W = leaf(Shape{5, 4}, 61), b = leaf(Shape{5}, 62);
    SECTION("with bias") {
        const auto x = leaf(Shape{2, 3, 4}, 60);
        gradcheck(weighted([=] { return nanogpt::linear(x, W, b); }), {x, W, b});
    }
    SECTION("without bias") {
        const auto x = leaf(Shape{3, 4}, 63);
        gradcheck(weighted([=] { return nanogpt::linear(x, W); }), {x, W});
    }
}

TEST_CASE("ops: linear rejects mismatched shapes", "[ops]") {
    const auto W = leaf(Shape{4, 5}, 1);
    SECTION("input features") {
        const auto x = leaf(Shape{2, 3}, 2);
        CHECK_THROWS_AS(nanogpt::linear(x, W), std::invalid_argument);
        CHECK_THROWS_WITH(nanogpt::linear(x, W),
                          Contains("linear") && Contains("[2, 3]") && Contains("[4, 5]"));
    }
    SECTION("bias") {
        const auto x = leaf(Shape{2, 5}, 2), b = leaf(Shape{3}, 3);
        CHECK_THROWS_WITH(nanogpt::linear(x, W, b), Contains("bias [3]") && Contains("[4, 5]"));
    }
    SECTION("weight not 2-D") {
        const auto x = leaf(Shape{2, 5}, 2), w1 = leaf(Shape{5}, 3);
        CHECK_THROWS_WITH(nanogpt::linear(x, w1), Contains("weight [5]"));
    }
}

// ---- linear_gelu ----

TEST_CASE("ops: linear_gelu equals gelu(linear)", "[ops]") {
    const auto fused = []<class T>(const std::vector<Tensor<T>>& x) {
        return x.size() == 3 ? nanogpt::linear_gelu(x[0], x[1], x[2])
                             : nanogpt::linear_gelu(x[0], x[1]);
    };
    const auto composed = []<class T>(const std::vector<Tensor<T>>& x) {
        return nanogpt::gelu(x.size() == 3 ? nanogpt::linear(x[0], x[1], x[2])
                                           : nanogpt::linear(x[0], x[1]));
    };
    const auto fused_matches_composed = [&]<class T>(const std::vector<Shape>& shapes, double tol) {
        check_runs_agree(run_in<T>(shapes, fused), run_in<T>(shapes, composed), tol);
    };
    SECTION("double, with and without bias") {
        fused_matches_composed.operator()<double>({Shape{2, 3, 8}, Shape{6, 8}, Shape{6}}, 1e-12);
        fused_matches_composed.operator()<double>({Shape{5, 8}, Shape{6, 8}}, 1e-12);
    }
    SECTION("float, large enough for the threaded, blocked sgemm with edge tiles") {
        // 256 x 200 x 96: the epilogue runs per tile, including the partial last rows/columns.
        fused_matches_composed.operator()<float>({Shape{4, 64, 96}, Shape{200, 96}, Shape{200}},
                                                 1e-5);
        fused_matches_composed.operator()<float>({Shape{3, 96}, Shape{200, 96}}, 1e-5);
    }
    SECTION("float agrees with double") {
        check_float_matches_double({Shape{2, 3, 8}, Shape{6, 8}, Shape{6}}, fused);
    }
}

TEST_CASE("ops: linear_gelu gradient", "[ops][double]") {
    const auto W = leaf(Shape{5, 4}, 71), b = leaf(Shape{5}, 72);
    SECTION("with bias") {
        const auto x = leaf(Shape{2, 3, 4}, 70);
        gradcheck(weighted([=] { return nanogpt::linear_gelu(x, W, b); }), {x, W, b});
    }
    SECTION("without bias, x also used by a later linear (so the fused op adds into dx)") {
        const auto x = leaf(Shape{3, 4}, 73);
        gradcheck(weighted([=] {
                      return nanogpt::add(nanogpt::linear_gelu(x, W), nanogpt::linear(x, W));
                  }),
                  {x, W});
    }
}

TEST_CASE("ops: linear_gelu rejects mismatched shapes", "[ops]") {
    const auto W = leaf(Shape{4, 5}, 1);
    const auto x = leaf(Shape{2, 3}, 2);
    CHECK_THROWS_WITH(nanogpt::linear_gelu(x, W),
                      Contains("linear_gelu") && Contains("[2, 3]") && Contains("[4, 5]"));
    const auto x5 = leaf(Shape{2, 5}, 2), b = leaf(Shape{3}, 3);
    CHECK_THROWS_WITH(nanogpt::linear_gelu(x5, W, b), Contains("bias [3]"));
}

// ---- transpose, slice_last ----

TEST_CASE("ops: transpose forward", "[ops]") {
    SECTION("2-D") {
        const auto y = nanogpt::transpose(values(Shape{2, 3}, {0, 1, 2, 3, 4, 5}), 0, 1);
        CHECK(y.shape() == Shape{3, 2});
        check_values(y, {0, 3, 1, 4, 2, 5});
    }
    SECTION("4-D, every pair of dimensions") {
        const Shape s{2, 3, 4, 5};
        std::vector<double> v(120);
        std::iota(v.begin(), v.end(), 0.0);
        const auto x = values(s, v);
        for (int d0 = 0; d0 < 4; ++d0) {
            for (int d1 = 0; d1 < 4; ++d1) {
                // Negative dimensions on odd pairs: -4 .. -1 name the same dimensions.
                const auto y = (d0 + d1) % 2 ? nanogpt::transpose(x, d0 - 4, d1 - 4)
                                             : nanogpt::transpose(x, d0, d1);
                std::int64_t ys[4] = {s[0], s[1], s[2], s[3]};
                std::swap(ys[d0], ys[d1]);
                REQUIRE(y.shape() == Shape{ys[0], ys[1], ys[2], ys[3]});
                bool ok = true;
                for (std::int64_t i = 0; i < 120; ++i) {
                    std::int64_t idx[4] = {i / 60, i / 20 % 3, i / 5 % 4, i % 5};  // in x
                    std::swap(idx[d0], idx[d1]);
                    const std::int64_t o =
                        ((idx[0] * ys[1] + idx[1]) * ys[2] + idx[2]) * ys[3] + idx[3];
                    ok = ok && y.data()[o] == v[static_cast<std::size_t>(i)];
                }
                INFO("transpose(" << d0 << ", " << d1 << ")");
                CHECK(ok);
            }
        }
    }
}

TEST_CASE("ops: transpose gradient", "[ops][double]") {
    SECTION("2-D") {
        const auto x = leaf(Shape{3, 4}, 70);
        gradcheck(weighted([=] { return nanogpt::transpose(x, 0, 1); }), {x});
    }
    SECTION("3-D (0, 2) and (1, 2)") {
        const auto x = leaf(Shape{2, 3, 4}, 71);
        gradcheck(weighted([=] { return nanogpt::transpose(x, 0, 2); }), {x});
        gradcheck(weighted([=] { return nanogpt::transpose(x, 1, 2); }), {x});
    }
    SECTION("4-D (1, 2), (0, 3) and (-1, -2)") {
        const auto x = leaf(Shape{2, 3, 2, 3}, 72);
        gradcheck(weighted([=] { return nanogpt::transpose(x, 1, 2); }), {x});
        gradcheck(weighted([=] { return nanogpt::transpose(x, 0, 3); }), {x});
        gradcheck(weighted([=] { return nanogpt::transpose(x, -1, -2); }), {x});
    }
    SECTION("out of range") {
        const auto x = leaf(Shape{2, 3, 4}, 73);
        CHECK_THROWS_AS(nanogpt::transpose(x, 0, 3), std::invalid_argument);
        CHECK_THROWS_WITH(nanogpt::transpose(x, 0, 3),
                          Contains("transpose") && Contains("[2, 3, 4]"));
        CHECK_THROWS_WITH(nanogpt::transpose(x, -4, 1), Contains("out of range"));
    }
}

TEST_CASE("ops: slice_last forward and gradient", "[ops][double]") {
    const auto y = nanogpt::slice_last(values(Shape{2, 4}, {0, 1, 2, 3, 4, 5, 6, 7}), 1, 2);
    CHECK(y.shape() == Shape{2, 2});
    check_values(y, {1, 2, 5, 6});

    const auto x = leaf(Shape{2, 3, 6}, 80);
    gradcheck(weighted([=] { return nanogpt::slice_last(x, 2, 3); }), {x});
    // Two overlapping slices: their gradients add up in x.
    gradcheck(
        [=] {
            return nanogpt::add(weighted_sum(nanogpt::slice_last(x, 0, 4), 1),
                                weighted_sum(nanogpt::slice_last(x, 2, 4), 2));
        },
        {x});

    SECTION("range outside the last dimension") {
        CHECK_THROWS_AS(nanogpt::slice_last(x, 4, 3), std::invalid_argument);
        CHECK_THROWS_WITH(nanogpt::slice_last(x, 4, 3),
                          Contains("slice_last") && Contains("[4, 7)") && Contains("[2, 3, 6]"));
        CHECK_THROWS_AS(nanogpt::slice_last(x, -1, 2), std::invalid_argument);
    }
}

// ---- layernorm ----

TEST_CASE("ops: layernorm forward", "[ops]") {
    const std::int64_t N = 4, C = 8;
    // Rows with a large mean and a small spread: the two-pass variance keeps them exact.
    auto x = random_tensor<double>(Shape{N, C}, 90, false, 3.0);
    for (std::int64_t i = 0; i < N * C; ++i) x.data()[i] += (i / C == 3 ? 1e4 : 2.0);
    const auto ones = values(Shape{C}, std::vector<double>(C, 1.0));

    SECTION("weight 1, no bias: every row has mean 0 and variance var / (var + eps)") {
        const auto y = nanogpt::layernorm(x, ones);
        for (std::int64_t r = 0; r < N; ++r) {
            double xm = 0, xv = 0, ym = 0, yv = 0;
            for (std::int64_t c = 0; c < C; ++c) xm += x.data()[r * C + c] / C;
            for (std::int64_t c = 0; c < C; ++c) {
                xv += (x.data()[r * C + c] - xm) * (x.data()[r * C + c] - xm) / C;
                ym += y.data()[r * C + c] / C;
            }
            for (std::int64_t c = 0; c < C; ++c)
                yv += (y.data()[r * C + c] - ym) * (y.data()[r * C + c] - ym) / C;
            INFO("row " << r);
            CHECK(ym == Approx(0.0).margin(1e-12));
            CHECK(yv == Approx(xv / (xv + 1e-5)).epsilon(1e-10));
            CHECK(yv == Approx(1.0).epsilon(1e-5));
        }
    }
    SECTION("weight and bias: xhat * w + b") {
        const auto w = random_tensor<double>(Shape{C}, 91), b = random_tensor<double>(Shape{C}, 92);
        const auto y = nanogpt::layernorm(x, w, b);
        std::vector<double> expected;
        for (std::int64_t r = 0; r < N; ++r) {
            double m = 0, v = 0;
            for (std::int64_t c = 0; c < C; ++c) m += x.data()[r * C + c] / C;
            for (std::int64_t c = 0; c < C; ++c)
                v += (x.data()[r * C + c] - m) * (x.data()[r * C + c] - m) / C;
            for (std::int64_t c = 0; c < C; ++c) {
                expected.push_back((x.data()[r * C + c] - m) / std::sqrt(v + 1e-5) * w.data()[c] +
                                   b.data()[c]);
            }
        }
        check_values(y, expected, 1e-11);
    }
}

TEST_CASE("ops: layernorm gradient", "[ops][double]") {
    const auto x = leaf(Shape{2, 3, 5}, 93), w = leaf(Shape{5}, 94), b = leaf(Shape{5}, 95);
    SECTION("with bias") {
        gradcheck(weighted([=] { return nanogpt::layernorm(x, w, b); }), {x, w, b});
    }
    SECTION("without bias") {
        gradcheck(weighted([=] { return nanogpt::layernorm(x, w); }), {x, w});
    }
}

TEST_CASE("ops: layernorm rejects mismatched shapes", "[ops]") {
    const auto x = leaf(Shape{2, 4}, 1);
    SECTION("weight") {
        const auto w = leaf(Shape{3}, 2);
        CHECK_THROWS_AS(nanogpt::layernorm(x, w), std::invalid_argument);
        CHECK_THROWS_WITH(nanogpt::layernorm(x, w),
                          Contains("layernorm") && Contains("weight [3]") && Contains("[2, 4]"));
    }
    SECTION("bias") {
        const auto w = leaf(Shape{4}, 2), b = leaf(Shape{5}, 3);
        CHECK_THROWS_WITH(nanogpt::layernorm(x, w, b), Contains("bias [5]") && Contains("[4]"));
    }
}

// ---- softmax ----

TEST_CASE("ops: softmax forward", "[ops]") {
    SECTION("one row, by hand") {
        const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
        check_values(nanogpt::softmax(values(Shape{1, 3}, {1, 2, 3})),
                     {std::exp(1.0) / z, std::exp(2.0) / z, std::exp(3.0) / z}, 1e-15);
    }
    SECTION("huge logits do not overflow") {
        const double z = 1 + std::exp(1.0) + std::exp(2.0);
        check_values(nanogpt::softmax(values(Shape{3}, {1000, 1001, 1002})),
                     {1 / z, std::exp(1.0) / z, std::exp(2.0) / z}, 1e-14);
    }
    SECTION("rows sum to 1") {
        const auto y = nanogpt::softmax(random_tensor<double>(Shape{3, 4, 5}, 100, false, 3.0));
        for (std::int64_t r = 0; r < 12; ++r) {
            double s = 0;
            for (std::int64_t j = 0; j < 5; ++j) s += y.data()[r * 5 + j];
            CHECK(s == Approx(1.0).epsilon(1e-14));
        }
    }
    SECTION("causal: row t is the softmax of columns 0..t, the rest is 0") {
        const std::int64_t Tn = 4;
        const auto x = random_tensor<double>(Shape{2, 2, Tn, Tn}, 101, false, 2.0);
        const auto y = nanogpt::softmax(x, true);
        for (std::int64_t m = 0; m < 4; ++m) {
            for (std::int64_t t = 0; t < Tn; ++t) {
                const double* xr = x.data() + (m * Tn + t) * Tn;
                const double* yr = y.data() + (m * Tn + t) * Tn;
                double z = 0;
                for (std::int64_t j = 0; j <= t; ++j) z += std::exp(xr[j]);
                for (std::int64_t j = 0; j < Tn; ++j) {
                    INFO("matrix " << m << " row " << t << " column " << j);
                    CHECK(yr[j] ==
                          Approx(j <= t ? std::exp(xr[j]) / z : 0.0).epsilon(1e-13).margin(1e-15));
                }
            }
        }
    }
    SECTION("causal needs square [..., T, T]") {
        const auto x = leaf(Shape{2, 3}, 1);
        CHECK_THROWS_AS(nanogpt::softmax(x, true), std::invalid_argument);
        CHECK_THROWS_WITH(nanogpt::softmax(x, true), Contains("softmax") && Contains("[2, 3]"));
    }
}

TEST_CASE("ops: softmax gradient", "[ops][double]") {
    SECTION("plain") {
        const auto x = leaf(Shape{2, 3, 5}, 102);
        gradcheck(weighted([=] { return nanogpt::softmax(x); }), {x});
    }
    SECTION("causal, 3-D and 4-D") {
        const auto x3 = leaf(Shape{2, 4, 4}, 103), x4 = leaf(Shape{2, 2, 3, 3}, 104);
        gradcheck(weighted([=] { return nanogpt::softmax(x3, true); }), {x3});
        gradcheck(weighted([=] { return nanogpt::softmax(x4, true); }), {x4});
    }
}

// ---- causal_self_attention ----

TEST_CASE("ops: causal_self_attention equals the composed reference", "[ops][attention]") {
    const std::int64_t B = 2, Tn = 5, C = 8;
    for (const std::int64_t nh : {1, 2, 4}) {
        DYNAMIC_SECTION("n_head " << nh << ", values and gradients, double and float") {
            const std::vector<Shape> shapes{Shape{B, Tn, 3 * C}};
            const auto fused =
                run_in<double>(shapes, [&]<class T>(const std::vector<Tensor<T>>& x) {
                    return nanogpt::causal_self_attention(x[0], nh);
                });
            const auto composed =
                run_in<double>(shapes, [&]<class T>(const std::vector<Tensor<T>>& x) {
                    return nanogpt::composed_causal_self_attention(x[0], nh);
                });
            const auto fused_f =
                run_in<float>(shapes, [&]<class T>(const std::vector<Tensor<T>>& x) {
                    return nanogpt::causal_self_attention(x[0], nh);
                });
            const auto composed_f =
                run_in<float>(shapes, [&]<class T>(const std::vector<Tensor<T>>& x) {
                    return nanogpt::composed_causal_self_attention(x[0], nh);
                });
            for (std::size_t k = 0; k < 2; ++k) {  // 0: values, 1: gradient w.r.t. qkv
                REQUIRE(fused[k].size() == composed[k].size());
                for (std::size_t i = 0; i < fused[k].size(); ++i) {
                    INFO((k ? "gradient" : "value") << " element " << i);
                    REQUIRE(fused[k][i] == Approx(composed[k][i]).epsilon(1e-12).margin(1e-13));
                    REQUIRE(fused_f[k][i] == Approx(composed_f[k][i]).epsilon(1e-5).margin(1e-5));
                }
            }
        }
    }
    SECTION("with dropout on the attention weights") {
        const std::vector<Shape> shapes{Shape{B, Tn, 3 * C}};
        const auto fused = run_in<double>(shapes, [&]<class T>(const std::vector<Tensor<T>>& x) {
            return nanogpt::causal_self_attention(x[0], 2, 0.3, 1234);
        });
        const auto composed = run_in<double>(shapes, [&]<class T>(const std::vector<Tensor<T>>& x) {
            return nanogpt::composed_causal_self_attention(x[0], 2, 0.3, 1234);
        });
        for (std::size_t k = 0; k < 2; ++k) {
            for (std::size_t i = 0; i < fused[k].size(); ++i) {
                INFO((k ? "gradient" : "value") << " element " << i);
                REQUIRE(fused[k][i] == Approx(composed[k][i]).epsilon(1e-12).margin(1e-13));
            }
        }
    }
}

TEST_CASE("ops: causal_self_attention gradient", "[ops][attention][double]") {
    const auto qkv = leaf(Shape{2, 4, 12}, 110);
    SECTION("one head") {
        gradcheck(weighted([=] { return nanogpt::causal_self_attention(qkv, 1); }), {qkv});
    }
    SECTION("two heads") {
        gradcheck(weighted([=] { return nanogpt::causal_self_attention(qkv, 2); }), {qkv});
    }
    SECTION("two heads with dropout (fixed seed: a fixed mask)") {
        gradcheck(weighted([=] { return nanogpt::causal_self_attention(qkv, 2, 0.25, 77); }),
                  {qkv});
    }
    SECTION("T = 70: two row blocks, the weights recomputed in each, with and without dropout") {
        const auto long_qkv = leaf(Shape{1, 70, 12}, 111);
        gradcheck(weighted([=] { return nanogpt::causal_self_attention(long_qkv, 2); }),
                  {long_qkv});
        gradcheck(weighted([=] { return nanogpt::causal_self_attention(long_qkv, 2, 0.25, 78); }),
                  {long_qkv});
    }
}

TEST_CASE("ops: causal_self_attention keeps no T x T weights", "[ops][attention]") {
    // Only two numbers per row and a few row blocks of workspace stay in the graph. A fresh
    // thread has a fresh tape, so its high-water mark counts this graph alone.
    constexpr std::int64_t B = 1, NH = 2, Tn = 512, C = 16;
    const auto qkv = random_tensor<float>(Shape{B, Tn, 3 * C}, 130, true);
    std::size_t peak = 0;
    std::thread([&] {
        Tape::current().begin_graph();
        nanogpt::sum(nanogpt::causal_self_attention(qkv, NH)).backward();
        peak = Tape::current().peak_bytes();
    }).join();
    const std::size_t weights = B * NH * Tn * Tn * sizeof(float);  // 2 MB
    CHECK(peak > 0);
    CHECK(peak < weights / 4);
    CHECK(std::isfinite(qkv.grad()[0]));
}

TEST_CASE("ops: causal_self_attention forward properties", "[ops][attention]") {
    const auto qkv = random_tensor<double>(Shape{1, 6, 12}, 120);
    SECTION("position 0 sees only itself: y_0 = v_0") {
        const auto y = nanogpt::causal_self_attention(qkv, 2);
        for (std::int64_t c = 0; c < 4; ++c)
            CHECK(y.data()[c] == Approx(qkv.data()[8 + c]).epsilon(1e-14));
    }
    SECTION("dropout is deterministic per seed and zero dropout changes nothing") {
        const auto plain = nanogpt::causal_self_attention(qkv, 2).to_vector();
        CHECK(nanogpt::causal_self_attention(qkv, 2, 0.0, 5).to_vector() == plain);
        const auto a = nanogpt::causal_self_attention(qkv, 2, 0.5, 5).to_vector();
        const auto b = nanogpt::causal_self_attention(qkv, 2, 0.5, 5).to_vector();
        const auto c = nanogpt::causal_self_attention(qkv, 2, 0.5, 6).to_vector();
        CHECK(a == b);
        CHECK(a != c);
        CHECK(a != plain);
    }
}

TEST_CASE("ops: causal_self_attention rejects bad arguments", "[ops][attention]") {
    SECTION("qkv not 3-D") {
        const auto x = leaf(Shape{4, 12}, 1);
        CHECK_THROWS_AS(nanogpt::causal_self_attention(x, 2), std::invalid_argument);
        CHECK_THROWS_WITH(nanogpt::causal_self_attention(x, 2),
                          Contains("causal_self_attention") && Contains("[4, 12]"));
    }
    SECTION("last dimension not a multiple of 3") {
        const auto x = leaf(Shape{1, 4, 10}, 1);
        CHECK_THROWS_WITH(nanogpt::causal_self_attention(x, 2), Contains("[1, 4, 10]"));
    }
    SECTION("C not divisible by n_head") {
        const auto x = leaf(Shape{1, 4, 12}, 1);
        CHECK_THROWS_WITH(nanogpt::causal_self_attention(x, 3),
                          Contains("C = 4") && Contains("n_head = 3"));
        CHECK_THROWS_AS(nanogpt::causal_self_attention(x, 0), std::invalid_argument);
    }
    SECTION("dropout outside [0, 1)") {
        const auto x = leaf(Shape{1, 4, 12}, 1);
        CHECK_THROWS_WITH(nanogpt::causal_self_attention(x, 2, 1.0, 1), Contains("dropout"));
    }
}

TEST_CASE("ops: composed_causal_self_attention gradient and arguments", "[ops][attention][double]") {
    const auto qkv = leaf(Shape{2, 4, 12}, 112);
    SECTION("two heads, with and without dropout") {
        gradcheck(weighted([=] { return nanogpt::composed_causal_self_attention(qkv, 2); }),
                  {qkv});
        gradcheck(
            weighted([=] { return nanogpt::composed_causal_self_attention(qkv, 2, 0.25, 79); }),
            {qkv});
    }
    SECTION("records one node per step: split, heads, scores, softmax, weights x v, merge") {
        Tape::current().begin_graph();
        const auto y = nanogpt::composed_causal_self_attention(qkv, 2);
        CHECK(y.shape() == Shape{2, 4, 4});
        // 3 slices + 3 transposes, matmul, scale, softmax, matmul, transpose.
        CHECK(Tape::current().num_nodes() == 11);
    }
    SECTION("bad arguments name the op and the values") {
        CHECK_THROWS_WITH(nanogpt::composed_causal_self_attention(leaf(Shape{1, 4, 10}, 1), 2),
                          Contains("composed_causal_self_attention") && Contains("[1, 4, 10]"));
        CHECK_THROWS_WITH(nanogpt::composed_causal_self_attention(qkv, 3),
                          Contains("C = 4") && Contains("n_head = 3"));
    }
}

// ---- embedding ----

TEST_CASE("ops: embedding forward", "[ops]") {
    const auto W = values(Shape{4, 2}, {0, 1, 10, 11, 20, 21, 30, 31});
    SECTION("1-D ids") {
        const auto y = nanogpt::embedding(ids(Shape{3}, {2, 0, 2}), W);
        CHECK(y.shape() == Shape{3, 2});
        check_values(y, {20, 21, 0, 1, 20, 21});
    }
    SECTION("2-D and 3-D ids") {
        const auto y2 = nanogpt::embedding(ids(Shape{2, 2}, {3, 1, 1, 0}), W);
        CHECK(y2.shape() == Shape{2, 2, 2});
        check_values(y2, {30, 31, 10, 11, 10, 11, 0, 1});
        const auto y3 = nanogpt::embedding(ids(Shape{1, 2, 1}, {1, 3}), W);
        CHECK(y3.shape() == Shape{1, 2, 1, 2});
        check_values(y3, {10, 11, 30, 31});
    }
}

TEST_CASE("ops: embedding gradient with repeated ids", "[ops][double]") {
    auto W = leaf(Shape{5, 3}, 130);
    const auto tokens = ids(Shape{2, 3}, {1, 3, 1, 0, 1, 3});  // rows 2 and 4 unused
    gradcheck(weighted([=] { return nanogpt::embedding(tokens, W); }), {W});

    // By hand: dW[v] is the sum of the upstream rows of every position holding v.
    W.zero_grad();
    Tape::current().begin_graph();
    const auto w = random_tensor<double>(Shape{2, 3, 3}, 131);
    nanogpt::sum(nanogpt::mul(nanogpt::embedding(tokens, W), w)).backward();
    for (std::int64_t c = 0; c < 3; ++c) {
        CHECK(W.grad()[1 * 3 + c] == Approx(w.data()[0 + c] + w.data()[6 + c] + w.data()[12 + c]));
        CHECK(W.grad()[3 * 3 + c] == Approx(w.data()[3 + c] + w.data()[15 + c]));
        CHECK(W.grad()[0 * 3 + c] == Approx(w.data()[9 + c]));
        CHECK(W.grad()[2 * 3 + c] == 0.0);
        CHECK(W.grad()[4 * 3 + c] == 0.0);
    }
}

TEST_CASE("ops: embedding rejects bad ids and shapes", "[ops]") {
    const auto W = leaf(Shape{5, 3}, 1);
    SECTION("id too large") {
        const auto bad = ids(Shape{4}, {0, 1, 9, 2});
        CHECK_THROWS_AS(nanogpt::embedding(bad, W), std::out_of_range);
        CHECK_THROWS_WITH(nanogpt::embedding(bad, W),
                          Contains("token id 9") && Contains("position 2") && Contains("[0, 5)"));
    }
    SECTION("negative id") {
        const auto bad = ids(Shape{2}, {-1, 0});
        CHECK_THROWS_AS(nanogpt::embedding(bad, W), std::out_of_range);
        CHECK_THROWS_WITH(nanogpt::embedding(bad, W), Contains("token id -1"));
    }
    SECTION("ids with 4 dimensions") {
        const auto bad = ids(Shape{1, 1, 1, 2}, {0, 1});
        CHECK_THROWS_AS(nanogpt::embedding(bad, W), std::invalid_argument);
        CHECK_THROWS_WITH(nanogpt::embedding(bad, W), Contains("[1, 1, 1, 2]"));
    }
    SECTION("weight not 2-D") {
        const auto w1 = leaf(Shape{5}, 2);
        CHECK_THROWS_WITH(nanogpt::embedding(ids(Shape{1}, {0}), w1),
                          Contains("weight") && Contains("[5]"));
    }
}

// ---- cross_entropy ----

TEST_CASE("ops: cross_entropy forward", "[ops]") {
    SECTION("uniform logits give ln V") {
        const auto logits = values(Shape{2, 3, 7}, std::vector<double>(42, 0.25));
        const auto loss = nanogpt::cross_entropy(logits, ids(Shape{2, 3}, {0, 6, 3, 2, 1, 5}));
        CHECK(loss.shape() == Shape{1});
        CHECK(loss.item() == Approx(std::log(7.0)).epsilon(1e-15));
    }
    SECTION("one row by hand") {
        const auto loss =
            nanogpt::cross_entropy(values(Shape{1, 3}, {1, 2, 3}), ids(Shape{1}, {2}));
        CHECK(loss.item() == Approx(0.40760596444438013).epsilon(1e-14));  // ln(e + e^2 + e^3) - 3
    }
    SECTION("targets -1 are left out of the mean") {
        // Row losses: ln(e + e^2 + e^3) - 1, ignored, ln(1 + e + e^2) - 2 (the shift of 1000
        // must not overflow).
        const auto logits = values(Shape{3, 3}, {1, 2, 3, 5, 5, 5, 1000, 1001, 1002});
        const auto loss = nanogpt::cross_entropy(logits, ids(Shape{3}, {0, -1, 2}));
        const double r0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 1.0;
        const double r2 = std::log(1.0 + std::exp(1.0) + std::exp(2.0)) - 2.0;
        CHECK(loss.item() == Approx((r0 + r2) / 2).epsilon(1e-13));
    }
}

TEST_CASE("ops: cross_entropy gradient", "[ops][double]") {
    const auto logits = leaf(Shape{2, 3, 5}, 140, 2.0);
    const auto targets = ids(Shape{2, 3}, {4, -1, 0, 2, 2, -1});
    gradcheck([=] { return nanogpt::cross_entropy(logits, targets); }, {logits});
    gradcheck([=] { return nanogpt::scale(nanogpt::cross_entropy(logits, targets), 2.5); },
              {logits});
    // Ignored rows get exactly zero gradient.
    for (std::int64_t v = 0; v < 5; ++v) {
        CHECK(logits.grad()[1 * 5 + v] == 0.0);
        CHECK(logits.grad()[5 * 5 + v] == 0.0);
    }
}

TEST_CASE("ops: cross_entropy rejects bad targets", "[ops]") {
    const auto logits = leaf(Shape{2, 3, 5}, 1);
    SECTION("target >= V") {
        const auto t = ids(Shape{2, 3}, {0, 5, 1, 2, 3, 4});
        CHECK_THROWS_AS(nanogpt::cross_entropy(logits, t), std::out_of_range);
        CHECK_THROWS_WITH(nanogpt::cross_entropy(logits, t),
                          Contains("target 5") && Contains("position 1") && Contains("[0, 5)"));
    }
    SECTION("target below -1") {
        const auto t = ids(Shape{2, 3}, {0, 1, 1, 2, -2, 4});
        CHECK_THROWS_AS(nanogpt::cross_entropy(logits, t), std::out_of_range);
        CHECK_THROWS_WITH(nanogpt::cross_entropy(logits, t), Contains("target -2"));
    }
    SECTION("every target is -1") {
        const auto t = ids(Shape{2, 3}, {-1, -1, -1, -1, -1, -1});
        CHECK_THROWS_AS(nanogpt::cross_entropy(logits, t), std::invalid_argument);
        CHECK_THROWS_WITH(nanogpt::cross_entropy(logits, t), Contains("every target is -1"));
    }
    SECTION("wrong number of targets") {
        const auto t = ids(Shape{5}, {0, 1, 2, 3, 4});
        CHECK_THROWS_AS(nanogpt::cross_entropy(logits, t), std::invalid_argument);
        CHECK_THROWS_WITH(nanogpt::cross_entropy(logits, t),
                          Contains("[5]") && Contains("[2, 3, 5]"));
    }
}

// ---- float vs double ----

TEST_CASE("ops: float results agree with double results", "[ops]") {
    using std::vector;
    SECTION("add, mul, scale, gelu, dropout, sum") {
        check_float_matches_double(
            {Shape{3, 4, 5}, Shape{4, 5}, Shape{3, 4, 5}}, []<class T>(const vector<Tensor<T>>& x) {
                const auto h = nanogpt::gelu(nanogpt::mul(nanogpt::add(x[0], x[1]), x[2]));
                return nanogpt::dropout(nanogpt::scale(h, T(0.7)), 0.3, 17);
            });
        check_float_matches_double(
            {Shape{6, 7}}, []<class T>(const vector<Tensor<T>>& x) { return nanogpt::sum(x[0]); });
    }
    SECTION("matmul, every transpose form, batched and shared") {
        for (int form = 0; form < 4; ++form) {
            const bool ta = form & 1, tb = form & 2;
            const Shape a = ta ? Shape{2, 9, 7} : Shape{2, 7, 9},
                        b = tb ? Shape{2, 11, 9} : Shape{2, 9, 11};
            const Shape b2 = tb ? Shape{11, 9} : Shape{9, 11};
            auto mm = [ta, tb]<class T>(const vector<Tensor<T>>& x) {
                return nanogpt::matmul(x[0], x[1], ta, tb);
            };
            check_float_matches_double({a, b}, mm);
            check_float_matches_double({a, b2}, mm);
        }
    }
    SECTION("linear, transpose, slice_last") {
        check_float_matches_double(
            {Shape{2, 3, 8}, Shape{6, 8}, Shape{6}},
            []<class T>(const vector<Tensor<T>>& x) { return nanogpt::linear(x[0], x[1], x[2]); });
        check_float_matches_double({Shape{2, 3, 4, 5}}, []<class T>(const vector<Tensor<T>>& x) {
            return nanogpt::transpose(nanogpt::slice_last(x[0], 1, 3), 1, 3);
        });
    }
    SECTION("layernorm, softmax") {
        check_float_matches_double({Shape{3, 16}, Shape{16}, Shape{16}},
                                   []<class T>(const vector<Tensor<T>>& x) {
                                       return nanogpt::layernorm(x[0], x[1], x[2]);
                                   });
        check_float_matches_double({Shape{2, 5, 5}}, []<class T>(const vector<Tensor<T>>& x) {
            return nanogpt::softmax(x[0], true);
        });
    }
    SECTION("causal_self_attention with and without dropout") {
        check_float_matches_double({Shape{2, 6, 24}}, []<class T>(const vector<Tensor<T>>& x) {
            return nanogpt::causal_self_attention(x[0], 2);
        });
        check_float_matches_double({Shape{2, 6, 24}}, []<class T>(const vector<Tensor<T>>& x) {
            return nanogpt::causal_self_attention(x[0], 4, 0.2, 3);
        });
    }
    SECTION("embedding, cross_entropy") {
        const auto tokens = ids(Shape{2, 3}, {1, 4, 1, 0, 2, 4});
        const auto targets = ids(Shape{2, 3}, {3, -1, 0, 6, 2, 2});
        check_float_matches_double({Shape{5, 7}}, [&]<class T>(const vector<Tensor<T>>& x) {
            return nanogpt::embedding(tokens, x[0]);
        });
        check_float_matches_double({Shape{2, 3, 7}}, [&]<class T>(const vector<Tensor<T>>& x) {
            return nanogpt::cross_entropy(x[0], targets);
        });
    }
}
