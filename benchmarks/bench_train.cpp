// bench_train — times training steps (forward, backward, gradient clipping, AdamW) of the
// workloads in bench_configs.hpp: median ms/iter, tokens/s, model FLOPs utilisation, peak RSS,
// a memory breakdown and a per-op profile. Run one workload per process (peak RSS is per process):
//
//   ./build/bench_train --workload recipe --iters 20 [--threads 2] [--profile] [--dtype bfloat16]
//   ./build/bench_train --workload gpt2_block512_b4 --iters 5 --compare_dtypes true
//       (float32 and bfloat16 steps in alternation: per-pair ratios and medians)
//
// benchmarks/compare_pytorch.sh runs every workload here and in PyTorch and prints the ratios.
#include <algorithm>  // std::sort
#include <chrono>     // std::chrono::steady_clock
#include <cstdio>     // std::printf
#include <cstring>    // std::strcmp
#include <string>     // std::string
#include <vector>     // std::vector

#include <sys/resource.h>  // getrusage: peak RSS (benchmarks may use POSIX; the library does not)

#include <nanogpt.hpp>

#include "../examples/args.hpp"
#include "bench_configs.hpp"
#include "peak_flops.hpp"

namespace {

double peak_rss_mb() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

void print_profile(std::int64_t iters) {
    auto ops = nanogpt::Tape::current().profile();
    std::sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) {
        return a.forward_seconds + a.backward_seconds > b.forward_seconds + b.backward_seconds;
    });
    double total = 0.0;
    for (const auto& op : ops) total += op.forward_seconds + op.backward_seconds;
    std::printf(
        "per-op profile (ms per iteration; forward = time since the previous op was recorded):\n");
    std::printf("  %-24s %10s %10s %8s\n", "op", "forward", "backward", "share");
    for (const auto& op : ops) {
        std::printf("  %-24s %10.2f %10.2f %7.1f%%\n", op.name,
                    1e3 * op.forward_seconds / double(iters),
                    1e3 * op.backward_seconds / double(iters),
                    100.0 * (op.forward_seconds + op.backward_seconds) / total);
    }
}

// --compare_dtypes: float32 and bfloat16 steps of the same model in alternation (f b f b ...),
// each pair a few seconds apart, so a slow spell of a shared machine falls on both dtypes alike:
// every pair's ratio, and the medians. (The model keeps training across the steps; its speed does
// not depend on the values. Peak RSS is per process, so it is not reported here.)
template <class StepMs>
int compare_dtypes(nanogpt::GPT<float>& model, StepMs step_ms, const std::string& name,
                   std::int64_t warmup, std::int64_t iters) {
    using nanogpt::Dtype;
    for (std::int64_t it = 0; it < warmup; ++it) {
        for (Dtype d : {Dtype::float32, Dtype::bfloat16}) {
            model.set_dtype(d);
            step_ms();
        }
    }
    std::vector<double> f32, b16, ratios;
    for (std::int64_t it = 0; it < iters; ++it) {
        model.set_dtype(Dtype::float32);
        f32.push_back(step_ms());
        model.set_dtype(Dtype::bfloat16);
        b16.push_back(step_ms());
        ratios.push_back(f32.back() / b16.back());
        std::printf("pair %lld: float32 %.1f ms, bfloat16 %.1f ms, ratio %.3f\n",
                    static_cast<long long>(it + 1), f32.back(), b16.back(), ratios.back());
    }
    std::printf(
        "RESULT workload=%s compare_dtypes threads=%d gemm=%s/%s float32_ms=%.2f "
        "bfloat16_ms=%.2f ratio_of_medians=%.3f median_pair_ratio=%.3f\n",
        name.c_str(), nanogpt::num_threads(), nanogpt::kernels::sgemm_kernel_name(),
        nanogpt::kernels::gemm_bf16_kernel_name(), median(f32), median(b16),
        median(f32) / median(b16), median(ratios));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        examples::Args args(argc, argv);
        const std::string name = args.get("workload", "recipe");
        const std::int64_t iters = args.get_int("iters", 10), warmup = args.get_int("warmup", 2);
        const int threads = static_cast<int>(args.get_int("threads", 0));
        const bool profile = args.get_bool("profile", false);
        const double given_peak = args.get_double("peak_gflops", 0.0);  // 0: measure it
        const nanogpt::Dtype dtype = nanogpt::parse_dtype(args.get("dtype", "float32"), "--dtype");
        const bool compare = args.get_bool("compare_dtypes", false);
        args.reject_unknown();
        if (threads > 0) nanogpt::set_num_threads(threads);
        // Measured before and after the timed steps, keeping the higher: a busy moment on a shared
        // machine can only lower a measurement, and a low peak would inflate the MFU.
        double peak = given_peak > 0.0 ? given_peak : bench::measured_peak_gflops(dtype);
        const bench::Workload w = bench::find_workload(name);
        nanogpt::GPTConfig c = w.config;
        c.dtype = dtype;

        nanogpt::GPT<float> model(c, 1337);
        nanogpt::AdamW<float> optimizer(model.parameters(), {});
        nanogpt::Random rng(1);
        nanogpt::Tensor<std::int32_t> x(nanogpt::Shape{w.batch_size, c.block_size}), y(x.shape());
        for (std::int64_t i = 0; i < x.numel(); ++i) {
            x.data()[i] = static_cast<std::int32_t>(
                rng.uniform_int(static_cast<std::uint64_t>(c.vocab_size)));
            y.data()[i] = static_cast<std::int32_t>(
                rng.uniform_int(static_cast<std::uint64_t>(c.vocab_size)));
        }
        float last_loss = 0;
        const auto step_ms = [&] {  // one training step; its milliseconds
            const auto t0 = std::chrono::steady_clock::now();
            auto out = model.forward(x, y);
            model.zero_grad();
            out.loss.backward();
            const double norm = nanogpt::grad_norm(model.parameters());
            optimizer.step(1e-4, nanogpt::clip_scale(norm, 1.0));  // = clip_grad_norm, then step
            last_loss = out.loss.item();
            return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count();
        };
        if (compare) return compare_dtypes(model, step_ms, name, warmup, iters);
        std::vector<double> ms;
        for (std::int64_t it = 0; it < warmup + iters; ++it) {
            if (it == warmup && profile) nanogpt::Tape::current().set_profiling(true);
            const double t = step_ms();
            if (it >= warmup) ms.push_back(t);
        }
        if (given_peak <= 0.0) peak = std::max(peak, bench::measured_peak_gflops(dtype));
        const double med = median(ms);
        const double tokens = static_cast<double>(w.batch_size * c.block_size);
        const double tokens_per_s = tokens / (med / 1e3);
        const double mfu = bench::flops_per_token(c) * tokens_per_s / (peak * 1e9);
        const double n = static_cast<double>(model.num_parameters());
        std::printf(
            "workload %s: %lld layers x %lld heads x %lld dims, block %lld, batch %lld, %.2fM "
            "parameters\n",
            name.c_str(), (long long)c.n_layer, (long long)c.n_head,
            (long long)(c.n_embd / c.n_head), (long long)c.block_size, (long long)w.batch_size,
            n / 1e6);
        std::printf(
            "threads %d (%s), dtype %s, gemm kernel %s, %lld timed iterations after %lld "
            "warm-up, last loss %.4f\n",
            nanogpt::num_threads(), nanogpt::threading_backend(), nanogpt::dtype_name(dtype),
            dtype == nanogpt::Dtype::bfloat16 ? nanogpt::kernels::gemm_bf16_kernel_name()
                                              : nanogpt::kernels::sgemm_kernel_name(),
            (long long)iters, (long long)warmup, static_cast<double>(last_loss));
        std::printf("MFU against %.1f GFLOP/s %s peak (%s)\n", peak,
                    dtype == nanogpt::Dtype::bfloat16 ? "bfloat16" : "FP32",
                    given_peak > 0.0 ? "--peak_gflops" : "measured: FMA loop on every thread");
        std::printf(
            "memory (MB): parameters %.1f, gradients %.1f, AdamW state %.1f, activations+their "
            "grads %.1f\n",
            4 * n / 1e6, 4 * n / 1e6, 8 * n / 1e6,
            double(nanogpt::Tape::current().peak_bytes()) / 1e6);
        if (profile) print_profile(iters);
        std::printf(
            "RESULT workload=%s dtype=%s ms_per_iter=%.2f tokens_per_s=%.1f mfu=%.4f "
            "peak_rss_mb=%.1f peak_gflops=%.1f\n",
            name.c_str(), nanogpt::dtype_name(dtype), med, tokens_per_s, mfu, peak_rss_mb(), peak);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
