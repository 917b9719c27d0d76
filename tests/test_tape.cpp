// Tests for tape.hpp's graph memory outside GPT::forward: GraphScope keeps a loop of raw ops
// from growing it.
#include <catch2/catch.hpp>

#include <cstddef>    // std::size_t
#include <stdexcept>  // std::logic_error
#include <vector>     // std::vector

#include <nanogpt/ops/elementwise.hpp>
#include <nanogpt/ops/matmul.hpp>
#include <nanogpt/ops/norm.hpp>
#include <nanogpt/tape.hpp>
#include <nanogpt/tensor.hpp>

using namespace nanogpt;

namespace {

struct RawOps {
    Tensor<float> x = Tensor<float>::from_vector(Shape{4, 8}, std::vector<float>(32, 0.5f));
    Tensor<float> w, b, g = Tensor<float>::from_vector(Shape{16}, std::vector<float>(16, 1.0f));

    explicit RawOps(bool requires_grad) {
        std::vector<float> wv(16 * 8);
        for (std::size_t i = 0; i < wv.size(); ++i) wv[i] = 0.01f * float(i % 13) - 0.05f;
        w = Tensor<float>::from_vector(Shape{16, 8}, wv, requires_grad);
        b = Tensor<float>::from_vector(Shape{16}, std::vector<float>(16, 0.1f), requires_grad);
    }
    /// layernorm(gelu(x W^T + b)): three ops, three outputs in graph memory.
    Tensor<float> run() const { return layernorm(gelu(linear(x, w, b)), g); }  // (4, 16)
};

}  // namespace

TEST_CASE("tape: a GraphScope per iteration keeps a raw-op loop's memory flat", "[tape]") {
    for (const bool grad_mode : {false, true}) {
        INFO((grad_mode ? "grad mode, no backward" : "under NoGradGuard"));
        const RawOps ops(grad_mode);
        NoGradGuard no_grad;
        Tape::current().set_grad_enabled(grad_mode);
        std::vector<float> first;
        std::size_t peak_after_10 = 0;
        Tape::current().reset_peak_bytes();
        for (int i = 0; i < 10000; ++i) {
            GraphScope scope;
            const std::vector<float> y = ops.run().to_vector();
            if (i == 0) first = y;
            if (i == 9) peak_after_10 = Tape::current().peak_bytes();
            if (i % 1000 == 0) REQUIRE(y == first);
        }
        CHECK(peak_after_10 > 0);
        CHECK(Tape::current().peak_bytes() == peak_after_10);
    }
}

TEST_CASE("tape: without a GraphScope a raw-op loop's graph memory grows", "[tape]") {
    // What GraphScope is for: no forward pass begins a new graph here, so every output stays.
    const RawOps ops(false);
    NoGradGuard no_grad;
    Tape::current().begin_graph();
    Tape::current().reset_peak_bytes();
    (void)ops.run();
    const std::size_t one_iteration = Tape::current().peak_bytes();
    for (int i = 1; i < 100; ++i) (void)ops.run();
    CHECK(Tape::current().peak_bytes() >= 100 * one_iteration);
    Tape::current().begin_graph();
}

TEST_CASE("tape: tensors made inside a GraphScope are invalid after it", "[tape]") {
    const RawOps ops(false);
    NoGradGuard no_grad;
    Tensor<float> kept;
    {
        GraphScope scope;
        kept = ops.run();
        CHECK(kept.to_vector().size() == 64);
    }
    REQUIRE_THROWS_AS(kept.data(), std::logic_error);
    REQUIRE_THROWS_WITH(kept.data(), Catch::Contains("freed graph"));
}
