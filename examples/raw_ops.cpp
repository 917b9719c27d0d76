// raw_ops — the library's ops without a GPT around them, and the one rule for their memory.
//
//   ./build/raw_ops
//
// Op outputs live in the tape's graph memory until a new graph begins (docs/library.md). A
// training loop begins one at every step by itself: the first op after backward() does. A loop
// with no backward (here: evaluation under NoGradGuard) does not, so it opens a GraphScope per
// iteration; without it the memory would grow with every iteration.
#include <cstdio>     // std::printf
#include <exception>  // std::exception
#include <vector>     // std::vector

#include <nanogpt.hpp>

namespace {

/// A two-layer perceptron, y = W2 gelu(W1 x + b1) + b2, on owned tensors with gradients.
struct Mlp {
    nanogpt::Tensor<float> w1{nanogpt::Shape{32, 4}, true}, b1{nanogpt::Shape{32}, true};
    nanogpt::Tensor<float> w2{nanogpt::Shape{1, 32}, true}, b2{nanogpt::Shape{1}, true};

    explicit Mlp(nanogpt::Random& rng) {
        for (auto* w : {&w1, &w2})
            for (std::int64_t i = 0; i < w->numel(); ++i)
                w->data()[i] = static_cast<float>(0.3 * rng.normal());
    }
    nanogpt::Tensor<float> forward(const nanogpt::Tensor<float>& x) const {  // x: (N, 4)
        return nanogpt::linear(nanogpt::gelu(nanogpt::linear(x, w1, b1)), w2, b2);  // (N, 1)
    }
    void sgd_step(float lr) {
        for (auto* p : {&w1, &b1, &w2, &b2}) {
            for (std::int64_t i = 0; i < p->numel(); ++i) {
                p->data()[i] -= lr * p->grad()[i];
                p->grad()[i] = 0.0f;
            }
        }
    }
};

/// N inputs in [-1, 1)^4 and their targets sum(x) * x0.
void make_batch(nanogpt::Random& rng, std::int64_t N, nanogpt::Tensor<float>& x,
                nanogpt::Tensor<float>& target) {
    x = nanogpt::Tensor<float>(nanogpt::Shape{N, 4});
    target = nanogpt::Tensor<float>(nanogpt::Shape{N, 1});
    for (std::int64_t n = 0; n < N; ++n) {
        float s = 0;
        for (std::int64_t c = 0; c < 4; ++c) {
            x.data()[n * 4 + c] = static_cast<float>(2 * rng.uniform() - 1);
            s += x.data()[n * 4 + c];
        }
        target.data()[n] = s * x.data()[n * 4];
    }
}

/// Mean squared error as a graph: sum((y - target)^2) / N.
nanogpt::Tensor<float> mse(const nanogpt::Tensor<float>& y, const nanogpt::Tensor<float>& target) {
    const auto d = nanogpt::add(y, nanogpt::scale(target, -1.0f));                      // (N, 1)
    return nanogpt::scale(nanogpt::sum(nanogpt::mul(d, d)), 1.0f / float(y.size(0)));  // (1)
}

}  // namespace

int main() {
    try {
        nanogpt::Random rng(1337);
        Mlp mlp(rng);
        nanogpt::Tensor<float> x, target;
        // Training: each step's first op after the previous backward() begins a new graph.
        for (int step = 0; step <= 2000; ++step) {
            make_batch(rng, 64, x, target);
            auto loss = mse(mlp.forward(x), target);
            if (step % 500 == 0) std::printf("step %4d: train loss %.4f\n", step, loss.item());
            loss.backward();
            mlp.sgd_step(0.05f);
        }
        // Evaluation: no backward, so each iteration opens its own graph and frees it.
        nanogpt::NoGradGuard no_grad;
        nanogpt::Tape::current().reset_peak_bytes();
        double total = 0;
        const int batches = 10000;
        for (int i = 0; i < batches; ++i) {
            nanogpt::GraphScope scope;
            make_batch(rng, 16, x, target);
            total += mse(mlp.forward(x), target).item();  // item() copies the value out
        }
        std::printf("eval loss over %d batches %.4f; graph memory high-water mark %zu bytes\n",
                    batches, total / batches, nanogpt::Tape::current().peak_bytes());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
