// bench_attention — the fused attention kernel against the composed, op-by-op form
// (composed_causal_self_attention) on one layer of the reference GPT: 12 heads x 64 dims,
// block 512. Checks first that both give the same output and gradient, then times forward +
// backward in alternating runs and reports medians and the graph memory each keeps.
//
//   ./build/bench_attention [--batch 4] [--block 512] [--n_head 12] [--n_embd 768] [--iters 7]
#include <algorithm>  // std::sort, std::max
#include <chrono>     // std::chrono::steady_clock
#include <cmath>      // std::fabs
#include <cstdio>     // std::printf
#include <thread>     // std::thread
#include <vector>     // std::vector

#include <nanogpt.hpp>

#include "../examples/args.hpp"

namespace {

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

struct Run {
    double ms;                 // forward + backward
    std::size_t graph_bytes;   // the tape's high-water mark: activations and their gradients
    std::vector<float> y, dqkv;
};

/// One forward + backward on a fresh graph; the loss is sum(y * w), so dy = w.
Run run_once(const nanogpt::Tensor<float>& qkv, const nanogpt::Tensor<float>& w,
             std::int64_t n_head, bool fused) {
    Run r{};
    std::fill(qkv.grad(), qkv.grad() + qkv.numel(), 0.0f);
    // A fresh thread has a fresh tape, so its high-water mark is this graph's alone.
    std::thread([&] {
        nanogpt::Tape::current().begin_graph();
        const auto t0 = std::chrono::steady_clock::now();
        const auto y = fused ? nanogpt::causal_self_attention(qkv, n_head)
                             : nanogpt::composed_causal_self_attention(qkv, n_head);
        nanogpt::sum(nanogpt::mul(y, w)).backward();
        const auto t1 = std::chrono::steady_clock::now();
        r.ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
        r.graph_bytes = nanogpt::Tape::current().peak_bytes();
        r.y = y.to_vector();
    }).join();
    r.dqkv.assign(qkv.grad(), qkv.grad() + qkv.numel());
    return r;
}

double max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
    double worst = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i)
        worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
    return worst;
}

}  // namespace

int main(int argc, char** argv) {
    return examples::run_main(argc, argv, "see the comment at the top of bench_attention.cpp\n",
                              [](examples::Args& args) {
        const std::int64_t B = args.get_int("batch", 4), T = args.get_int("block", 512);
        const std::int64_t NH = args.get_int("n_head", 12), C = args.get_int("n_embd", 768);
        const std::int64_t iters = args.get_int("iters", 7);
        const int threads = static_cast<int>(args.get_int("threads", 0));
        args.reject_unknown();
        if (threads > 0) nanogpt::set_num_threads(threads);

        nanogpt::Random rng(1);
        nanogpt::Tensor<float> qkv(nanogpt::Shape{B, T, 3 * C}, true), w(nanogpt::Shape{B, T, C});
        for (std::int64_t i = 0; i < qkv.numel(); ++i)
            qkv.data()[i] = static_cast<float>(rng.normal());
        for (std::int64_t i = 0; i < w.numel(); ++i) w.data()[i] = static_cast<float>(rng.normal());

        const Run check_fused = run_once(qkv, w, NH, true);
        const Run check_composed = run_once(qkv, w, NH, false);
        const double dy = max_abs_difference(check_fused.y, check_composed.y);
        const double dg = max_abs_difference(check_fused.dqkv, check_composed.dqkv);
        std::printf("B %lld, T %lld, %lld heads x %lld dims, threads %d, gemm kernel %s\n",
                    (long long)B, (long long)T, (long long)NH, (long long)(C / NH),
                    nanogpt::num_threads(), nanogpt::kernels::sgemm_kernel_name());
        std::printf("validation: max |y fused - y composed| %.2e, max |dqkv difference| %.2e\n",
                    dy, dg);
        if (!(dy < 1e-4 && dg < 1e-3)) {
            std::fprintf(stderr, "error: the two forms disagree\n");
            return 1;
        }
        std::vector<double> fused_ms, composed_ms;
        std::size_t fused_bytes = 0, composed_bytes = 0;
        for (std::int64_t it = 0; it < iters; ++it) {  // alternating, so drift hits both alike
            const Run f = run_once(qkv, w, NH, true);
            const Run c = run_once(qkv, w, NH, false);
            fused_ms.push_back(f.ms);
            composed_ms.push_back(c.ms);
            fused_bytes = f.graph_bytes;
            composed_bytes = c.graph_bytes;
        }
        const double weights_mb = 4.0 * double(B * NH * T * T) / 1e6;
        std::printf("one (B, nh, T, T) float tensor: %.1f MB\n", weights_mb);
        std::printf("%-10s %12s %16s\n", "attention", "fwd+bwd ms", "graph memory MB");
        std::printf("%-10s %12.2f %16.1f\n", "fused", median(fused_ms), double(fused_bytes) / 1e6);
        std::printf("%-10s %12.2f %16.1f\n", "composed", median(composed_ms),
                    double(composed_bytes) / 1e6);
        std::printf("RESULT fused_ms=%.2f composed_ms=%.2f time_ratio=%.2f fused_mb=%.1f "
                    "composed_mb=%.1f memory_ratio=%.1f\n",
                    median(fused_ms), median(composed_ms), median(composed_ms) / median(fused_ms),
                    double(fused_bytes) / 1e6, double(composed_bytes) / 1e6,
                    double(composed_bytes) / double(std::max<std::size_t>(fused_bytes, 1)));
        return 0;
    });
}
