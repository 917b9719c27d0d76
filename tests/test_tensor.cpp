// Tests for tensor.hpp and tape.hpp: Shape, the ownership rules (owned, view, graph memory),
// reshape as a view, backward's preconditions, gradient accumulation, the life of a graph
// (consumed by backward, freed by the next one), NoGradGuard, and one tape node per op.
#include <catch2/catch.hpp>

#include <cstdint>    // std::int32_t, std::int64_t
#include <stdexcept>  // std::invalid_argument, std::logic_error
#include <tuple>      // std::make_tuple
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
using nanogpt::NoGradGuard;
using nanogpt::Shape;
using nanogpt::Tape;
using nanogpt::Tensor;
using nanogpt::test::random_tensor;

}  // namespace

// ---- Shape ----

TEST_CASE("tensor: Shape basics", "[tensor]") {
    const Shape s{2, 3, 4};
    CHECK(s.ndim() == 3);
    CHECK(s.numel() == 24);
    CHECK(s.rows() == 6);
    CHECK(s[0] == 2);
    CHECK(s[2] == 4);
    CHECK(s[-1] == 4);
    CHECK(s[-3] == 2);
    CHECK(s.to_string() == "[2, 3, 4]");
    CHECK(s.with_last(7) == Shape{2, 3, 7});
    CHECK(s.with_dim(0, 5) == Shape{5, 3, 4});
    CHECK(s != Shape{2, 3});
    CHECK(s != Shape{2, 3, 5});
    CHECK(s == Shape{2, 3, 4});

    const Shape scalar;
    CHECK(scalar.ndim() == 0);
    CHECK(scalar.numel() == 1);
    CHECK(scalar.to_string() == "[]");
    CHECK(Shape{4, 0}.numel() == 0);
    CHECK(Shape{1, 2, 3, 4}.numel() == 24);
}

TEST_CASE("tensor: Shape errors", "[tensor]") {
    SECTION("more than 4 dimensions") {
        CHECK_THROWS_AS((Shape{1, 2, 3, 4, 5}), std::invalid_argument);
        CHECK_THROWS_WITH((Shape{1, 2, 3, 4, 5}), Contains("at most 4") && Contains("5"));
    }
    SECTION("negative dimension") {
        CHECK_THROWS_AS((Shape{2, -3}), std::invalid_argument);
        CHECK_THROWS_WITH((Shape{2, -3}), Contains("-3"));
    }
    SECTION("dimension index out of range") {
        const Shape s{2, 3};
        CHECK_THROWS_AS(s[2], std::invalid_argument);
        CHECK_THROWS_WITH(s[2], Contains("2") && Contains("[2, 3]"));
        CHECK_THROWS_WITH(s[-3], Contains("-3") && Contains("[2, 3]"));
    }
}

// ---- ownership ----

TEST_CASE("tensor: owned tensors are zero-filled and copies share storage", "[tensor]") {
    Tensor<float> a(Shape{2, 3});
    CHECK(a.defined());
    CHECK_FALSE(a.requires_grad());
    CHECK(a.grad() == nullptr);
    CHECK(a.to_vector() == std::vector<float>(6, 0.0f));
    CHECK(a.grad_to_vector().empty());

    Tensor<float> b = a;  // a handle, not a copy of the elements
    b.data()[4] = 7.0f;
    CHECK(a.data() == b.data());
    CHECK(a.data()[4] == 7.0f);

    Tensor<double> g(Shape{3}, true);
    CHECK(g.requires_grad());
    REQUIRE(g.grad() != nullptr);
    CHECK(g.grad_to_vector() == std::vector<double>(3, 0.0));
    Tensor<double> h = g;
    h.grad()[1] = 2.0;
    CHECK(g.grad()[1] == 2.0);

    CHECK_FALSE(Tensor<float>().defined());
}

TEST_CASE("tensor: from_vector, view, item and their errors", "[tensor]") {
    const auto t = Tensor<double>::from_vector(Shape{2, 2}, {1, 2, 3, 4});
    CHECK(t.to_vector() == std::vector<double>{1, 2, 3, 4});
    CHECK(t.size(0) == 2);
    CHECK(t.dim() == 2);

    SECTION("wrong number of values") {
        CHECK_THROWS_AS(Tensor<double>::from_vector(Shape{2, 2}, {1, 2, 3}), std::invalid_argument);
        CHECK_THROWS_WITH(Tensor<double>::from_vector(Shape{2, 2}, {1, 2, 3}),
                          Contains("3 values") && Contains("[2, 2]"));
    }
    SECTION("item needs one element") {
        CHECK(Tensor<double>::from_vector(Shape{1}, {2.5}).item() == 2.5);
        CHECK_THROWS_AS(t.item(), std::invalid_argument);
        CHECK_THROWS_WITH(t.item(), Contains("[2, 2]"));
    }
    SECTION("requires_grad needs a floating-point type") {
        CHECK_THROWS_AS(Tensor<std::int32_t>(Shape{2}, true), std::invalid_argument);
    }
    SECTION("a view aliases memory kept alive elsewhere") {
        std::vector<float> data{1, 2, 3, 4, 5, 6}, grad(6, 0.0f);
        auto v = Tensor<float>::view(Shape{3, 2}, data.data(), grad.data());
        CHECK(v.requires_grad());
        CHECK(v.data() == data.data());
        v.data()[0] = 10.0f;
        CHECK(data[0] == 10.0f);
        auto no_grad = Tensor<float>::view(Shape{6}, data.data(), nullptr);
        CHECK_FALSE(no_grad.requires_grad());
    }
}

TEST_CASE("tensor: an empty handle has no elements to read", "[tensor]") {
    const Tensor<double> empty;
    CHECK_FALSE(empty.defined());
    REQUIRE(empty.numel() == 0);
    CHECK_THROWS_AS(empty.item(), std::invalid_argument);
    CHECK(empty.to_vector().empty());
}

TEST_CASE("tensor: reshape is a view that shares the gradient", "[tensor][double]") {
    Tensor<double> x = random_tensor<double>(Shape{2, 6}, 1, true);
    Tensor<double> r = x.reshape(Shape{3, 4});
    CHECK(r.shape() == Shape{3, 4});
    CHECK(r.data() == x.data());
    CHECK(r.grad() == x.grad());
    CHECK(r.requires_grad());

    // A gradient that flows into the reshaped handle lands in x.
    const auto w = random_tensor<double>(Shape{3, 4}, 2);
    nanogpt::sum(nanogpt::mul(r, w)).backward();
    for (std::int64_t i = 0; i < 12; ++i) CHECK(x.grad()[i] == w.data()[i]);

    // Reshaping an op output shares its gradient slot too (kept after backward on request).
    Tape::current().begin_graph();
    Tape::current().set_retain_grads(true);
    x.zero_grad();
    const auto y = nanogpt::scale(x, 3.0);
    const auto y2 = y.reshape(Shape{12});
    const auto w2 = random_tensor<double>(Shape{12}, 3);
    nanogpt::sum(nanogpt::mul(y2, w2)).backward();
    Tape::current().set_retain_grads(false);
    CHECK(y.grad() == y2.grad());
    for (std::int64_t i = 0; i < 12; ++i) CHECK(y2.grad()[i] == w2.data()[i]);
    for (std::int64_t i = 0; i < 12; ++i) CHECK(x.grad()[i] == Approx(3.0 * w2.data()[i]));

    SECTION("wrong number of elements") {
        CHECK_THROWS_AS(x.reshape(Shape{5, 2}), std::invalid_argument);
        CHECK_THROWS_WITH(x.reshape(Shape{5, 2}), Contains("[2, 6]") && Contains("[5, 2]"));
    }
}

// ---- backward ----

TEST_CASE("tensor: backward preconditions", "[tensor]") {
    Tensor<double> x = random_tensor<double>(Shape{2, 3}, 4, true);
    SECTION("non-scalar") {
        const auto y = nanogpt::scale(x, 2.0);
        Tensor<double> y_copy = y;
        CHECK_THROWS_AS(y_copy.backward(), std::invalid_argument);
        CHECK_THROWS_WITH(y_copy.backward(), Contains("scalar") && Contains("[2, 3]"));
    }
    SECTION("a tensor that does not require grad") {
        auto c = Tensor<double>::from_vector(Shape{1}, {1.0});
        CHECK_THROWS_AS(c.backward(), std::logic_error);
        CHECK_THROWS_WITH(c.backward(), Contains("does not require grad"));
    }
}

TEST_CASE("tensor: gradients accumulate across backward calls until zeroed", "[tensor][double]") {
    Tensor<double> x = random_tensor<double>(Shape{2, 3}, 5, true);
    const auto w = random_tensor<double>(Shape{2, 3}, 6);
    auto loss = [&] { return nanogpt::sum(nanogpt::mul(x, w)); };  // d/dx = w

    loss().backward();
    for (std::int64_t i = 0; i < 6; ++i) CHECK(x.grad()[i] == w.data()[i]);
    loss().backward();  // the first op after a backward starts a new graph by itself
    for (std::int64_t i = 0; i < 6; ++i) CHECK(x.grad()[i] == 2.0 * w.data()[i]);
    x.zero_grad();
    CHECK(x.grad_to_vector() == std::vector<double>(6, 0.0));
    loss().backward();
    for (std::int64_t i = 0; i < 6; ++i) CHECK(x.grad()[i] == w.data()[i]);
}

TEST_CASE("tensor: a second backward on the same graph throws", "[tensor]") {
    Tensor<double> x = random_tensor<double>(Shape{4}, 7, true);
    Tensor<double> loss = nanogpt::sum(nanogpt::gelu(x));
    loss.backward();
    const auto grad_once = x.grad_to_vector();
    CHECK_THROWS_AS(loss.backward(), std::logic_error);
    CHECK_THROWS_WITH(loss.backward(), Contains("consumed"));
    CHECK(x.grad_to_vector() == grad_once);  // the failed calls added nothing
    CHECK_NOTHROW(loss.item());  // the graph's tensors stay readable until the next graph
}

TEST_CASE("tensor: tensors of an older graph throw after a new graph begins", "[tensor]") {
    Tensor<double> x = random_tensor<double>(Shape{3}, 8, true);
    SECTION("explicit begin_graph") {
        const auto y = nanogpt::scale(x, 2.0);
        CHECK(y.data()[0] == 2.0 * x.data()[0]);
        Tape::current().begin_graph();
        CHECK_THROWS_AS(y.data(), std::logic_error);
        CHECK_THROWS_WITH(y.data(), Contains("freed"));
        CHECK_THROWS_WITH(y.to_vector(), Contains("freed"));
        CHECK_THROWS_WITH(y.grad(), Contains("freed"));
        CHECK_THROWS_WITH(nanogpt::gelu(y), Contains("freed"));  // as an op input too
        CHECK_NOTHROW(x.data());                                 // owned leaves live on
    }
    SECTION("the first op after a backward") {
        const auto y = nanogpt::scale(x, 2.0);
        Tensor<double> loss = nanogpt::sum(y);
        loss.backward();
        CHECK(y.data()[1] == 2.0 * x.data()[1]);  // readable until the next graph
        const auto z = nanogpt::scale(x, 3.0);    // starts a new graph
        CHECK(z.data()[1] == 3.0 * x.data()[1]);
        CHECK_THROWS_WITH(y.data(), Contains("freed"));
        CHECK_THROWS_WITH(loss.backward(), Contains("freed"));
    }
}

// ---- NoGradGuard and the tape ----

TEST_CASE("tensor: NoGradGuard records nothing", "[tensor]") {
    Tensor<double> x = random_tensor<double>(Shape{2, 4}, 9, true);
    Tensor<double> W = random_tensor<double>(Shape{3, 4}, 10, true);
    Tape::current().begin_graph();
    {
        NoGradGuard no_grad;
        CHECK_FALSE(Tape::current().grad_enabled());
        const auto y =
            nanogpt::layernorm(nanogpt::gelu(nanogpt::linear(x, W)), Tensor<double>(Shape{3}));
        CHECK_FALSE(y.requires_grad());
        CHECK(y.grad() == nullptr);
        CHECK(Tape::current().num_nodes() == 0);
        {
            NoGradGuard nested;
            CHECK_FALSE(Tape::current().grad_enabled());
        }
        CHECK_FALSE(Tape::current().grad_enabled());  // the inner guard restores "off"
        Tensor<double> s = nanogpt::sum(y);
        CHECK_THROWS_AS(s.backward(), std::logic_error);
    }
    CHECK(Tape::current().grad_enabled());
    const auto y = nanogpt::linear(x, W);
    CHECK(y.requires_grad());
    CHECK(Tape::current().num_nodes() == 1);
}

TEST_CASE("tensor: every op records exactly one tape node", "[tensor]") {
    Tape& tape = Tape::current();
    const auto x = random_tensor<double>(Shape{2, 3, 4}, 11, true);
    const auto W = random_tensor<double>(Shape{12, 4}, 12, true);
    const auto b = random_tensor<double>(Shape{12}, 13, true);
    const auto ln_w = random_tensor<double>(Shape{4}, 14, true);
    const auto E = random_tensor<double>(Shape{5, 4}, 15, true);
    const auto tokens = Tensor<std::int32_t>::from_vector(Shape{2, 3}, {0, 1, 2, 3, 4, 0});
    const auto targets = Tensor<std::int32_t>::from_vector(Shape{2, 3}, {0, 1, 2, 3, -1, 0});
    tape.begin_graph();
    REQUIRE(tape.num_nodes() == 0);

    std::size_t expected = 0;
    auto one_more = [&](const char* op) {
        INFO(op);
        CHECK(tape.num_nodes() == ++expected);
    };
    const auto h = nanogpt::layernorm(x, ln_w);
    one_more("layernorm");
    const auto qkv = nanogpt::linear(h, W, b);
    one_more("linear");
    const auto y = nanogpt::causal_self_attention(qkv, 2);
    one_more("causal_self_attention");
    const auto e = nanogpt::embedding(tokens, E);
    one_more("embedding");
    const auto y2 = nanogpt::add(y, e);
    one_more("add");
    const auto m = nanogpt::mul(y2, y2);
    one_more("mul");
    const auto g = nanogpt::gelu(m);
    one_more("gelu");
    const auto sl = nanogpt::slice_last(g, 0, 3);  // (2, 3, 3)
    one_more("slice_last");
    const auto t = nanogpt::transpose(sl, 1, 2);
    one_more("transpose");
    const auto tt = nanogpt::matmul(t, t);
    one_more("matmul");
    const auto s = nanogpt::softmax(tt, true);
    one_more("softmax");
    const auto sc = nanogpt::scale(s, 2.0);
    one_more("scale");
    const auto d = nanogpt::dropout(sc, 0.5, 3);
    one_more("dropout");
    const auto r = y2.reshape(Shape{6, 4});  // a view: no node
    CHECK(tape.num_nodes() == expected);
    const auto ce = nanogpt::cross_entropy(r, targets);
    one_more("cross_entropy");
    const auto total = nanogpt::sum(d);
    one_more("sum");
    const auto loss = nanogpt::add(ce, total);
    one_more("add (scalars)");

    SECTION("inputs that need no gradient record nothing") {
        const auto c = random_tensor<double>(Shape{4}, 16);
        const auto z = nanogpt::gelu(nanogpt::scale(c, 2.0));
        CHECK_FALSE(z.requires_grad());
        CHECK(tape.num_nodes() == expected);
    }
    SECTION("backward empties the tape") {
        Tensor<double> l = loss;
        l.backward();
        CHECK(tape.num_nodes() == 0);
        CHECK(tape.consumed());
    }
}

TEST_CASE("tensor: activation gradients are freed during backward and their memory reused",
          "[tensor][double]") {
    // A chain of same-shaped ops: each output's gradient dies once its op has run, so the next
    // (earlier) gradient takes the same memory and the tape holds about two gradients, not eight.
    auto run_chain = [](bool retain) {
        Tape::current().begin_graph();
        Tape::current().reset_peak_bytes();
        Tape::current().set_retain_grads(retain);
        Tensor<double> x = random_tensor<double>(Shape{64, 64}, 5, true);
        Tensor<double> h = x;
        std::vector<Tensor<double>> outputs;
        for (int i = 0; i < 8; ++i) {
            h = nanogpt::gelu(nanogpt::scale(h, 1.5));
            outputs.push_back(h);
        }
        nanogpt::sum(h).backward();
        Tape::current().set_retain_grads(false);
        return std::make_tuple(x.grad_to_vector(), Tape::current().peak_bytes(), outputs);
    };
    const auto [grad_retained, bytes_retained, outputs_retained] = run_chain(true);
    CHECK(outputs_retained.front().grad() != nullptr);  // kept on request
    const auto [grad_freed, bytes_freed, outputs_freed] = run_chain(false);
    CHECK(grad_freed == grad_retained);  // same arithmetic, only the memory differs
    const std::size_t one_tensor = 64 * 64 * sizeof(double);
    // activations: 16 outputs + the sum; gradients: all 16 when retained, a couple when freed
    CHECK(bytes_retained - bytes_freed >= 12 * one_tensor);
    CHECK_THROWS_AS(outputs_freed.front().grad(), std::logic_error);
    CHECK_THROWS_WITH(outputs_freed.back().grad(), Contains("set_retain_grads"));
}

TEST_CASE("tensor: an intermediate gradient is stored by its first writer and added by the rest",
          "[tensor][double]") {
    // h feeds linear, gelu and add. In backward the last of them runs first and finds h's
    // gradient untouched, so it stores (Tensor::grad_for_write) rather than adds into zeroed
    // memory; the others must add. Each order is checked against finite differences.
    const auto a = random_tensor<double>(Shape{5, 6}, 11, true);
    const auto w = random_tensor<double>(Shape{6, 6}, 12, true);
    const auto mix = random_tensor<double>(Shape{5, 6}, 13);
    auto weighted_sum = [&](const Tensor<double>& y) { return nanogpt::sum(nanogpt::mul(y, mix)); };
    SECTION("linear writes first") {
        nanogpt::test::gradcheck(
            [&] {
                const auto h = nanogpt::scale(a, 0.7);
                return weighted_sum(nanogpt::linear(nanogpt::add(nanogpt::gelu(h), h), w));
            },
            {a, w});
    }
    SECTION("gelu writes first") {
        nanogpt::test::gradcheck(
            [&] {
                const auto h = nanogpt::scale(a, 0.7);
                return weighted_sum(nanogpt::add(nanogpt::linear(h, w), nanogpt::gelu(h)));
            },
            {a, w});
    }
    SECTION("add writes first") {
        nanogpt::test::gradcheck(
            [&] {
                const auto h = nanogpt::scale(a, 0.7);
                return weighted_sum(
                    nanogpt::add(h, nanogpt::add(nanogpt::gelu(h), nanogpt::linear(h, w))));
            },
            {a, w});
    }
}
