// bench_sample — generation speed with and without the KV cache, how close the cached path
// comes to the memory-bandwidth bound of reading every weight once per token, and the process's
// peak memory (RSS) against the size of the weights.
//
//   ./build/bench_sample --model shakespeare_char --tokens 256 [--threads 2] [--runs 3]
//   ./build/bench_sample --model gpt2 --tokens 64 --skip_uncached true --dtype bfloat16
//   ./build/bench_sample --model gpt2 --save_checkpoint ckpt.bin     # weights + AdamW state
//   ./build/bench_sample --checkpoint ckpt.bin --tokens 32 --skip_uncached true
//   ./build/bench_sample --checkpoint ckpt.bin ... --training_model true   # as before: for scale
//
// Weights are random (speed does not depend on them); both paths must produce the same greedy
// tokens. With --checkpoint the model is loaded as the sample program loads it: an inference
// model (GPT::for_inference) without the optimizer state; --training_model true loads the whole
// checkpoint into a training model instead (gradient buffer, AdamW's moments read).
#include <algorithm>  // std::sort
#include <chrono>     // std::chrono::steady_clock
#include <cstdio>     // std::printf
#include <cstring>    // std::memcpy
#include <string>     // std::string
#include <utility>    // std::move
#include <vector>     // std::vector

#include <sys/resource.h>  // getrusage: peak RSS (benchmarks may use POSIX; the library does not)

#include <nanogpt.hpp>

#include "../examples/args.hpp"

namespace {

double peak_rss_mb() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

/// The model to time: random weights for a preset, or a checkpoint's.
nanogpt::GPT<float> make_model(const std::string& preset, const std::string& checkpoint,
                               bool training_model) {
    if (checkpoint.empty()) {
        nanogpt::GPTConfig config = nanogpt::GPTConfig::preset(preset);
        config.dropout = 0.0;
        return nanogpt::GPT<float>(config, 1337);
    }
    if (training_model) return nanogpt::load_checkpoint<float>(checkpoint).make_model();
    auto ck = nanogpt::load_checkpoint<float>(checkpoint, nanogpt::OptimizerState::skip);
    return nanogpt::GPT<float>::for_inference(ck.config, std::move(ck.weights));
}

/// Read bandwidth in GB/s of summing a buffer of `bytes` on every thread, after one untimed pass
/// (median of 5). With a buffer the size of the weights this is the speed at which sampling can
/// re-read them each token wherever they sit (DRAM, or a large last-level cache); with a buffer
/// larger than every cache it is the DRAM bandwidth.
double read_bandwidth_gbs(std::size_t bytes) {
    std::vector<float> buffer(bytes / sizeof(float), 1.0f);
    std::vector<double> runs;
    const std::int64_t n = static_cast<std::int64_t>(buffer.size());
    const std::int64_t chunks = 64;
    std::vector<float> partial(chunks, 0.0f);
    for (int r = 0; r < 6; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        nanogpt::detail::parallel_for(chunks, [&](std::int64_t c) {
            float lanes[16] = {};  // independent sums: limited by memory, not by add latency
            const float* p = buffer.data() + c * n / chunks;
            for (std::int64_t i = 0; i + 16 <= n / chunks; i += 16)
                for (int j = 0; j < 16; ++j) lanes[j] += p[i + j];
            for (float v : lanes) partial[static_cast<std::size_t>(c)] += v;
        });
        const double s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (partial[0] < 0) std::printf("impossible\n");  // keeps the loop from being dropped
        if (r > 0) runs.push_back(static_cast<double>(buffer.size() * sizeof(float)) / s / 1e9);
    }
    std::sort(runs.begin(), runs.end());
    return runs[runs.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    try {
        examples::Args args(argc, argv);
        const std::string model_name = args.get("model", "shakespeare_char");
        const std::int64_t tokens = args.get_int("tokens", 256), runs = args.get_int("runs", 3);
        const int threads = static_cast<int>(args.get_int("threads", 0));
        const bool skip_uncached = args.get_bool("skip_uncached", false);
        const nanogpt::Dtype dtype = nanogpt::parse_dtype(args.get("dtype", "float32"), "--dtype");
        const std::string save_path = args.get("save_checkpoint", "");
        const std::string checkpoint = args.get("checkpoint", "");
        const bool training_model = args.get_bool("training_model", false);
        args.reject_unknown();
        if (threads > 0) nanogpt::set_num_threads(threads);
        if (!save_path.empty()) {  // a checkpoint as train writes it: weights and AdamW state
            nanogpt::GPT<float> model = make_model(model_name, "", true);
            nanogpt::AdamW<float> optimizer(model.parameters());
            nanogpt::save_checkpoint(save_path, model, &optimizer, {});
            std::printf("saved %s: %.2fM parameters with AdamW state\n", save_path.c_str(),
                        static_cast<double>(model.num_parameters()) / 1e6);
            return 0;
        }
        nanogpt::GPT<float> model = make_model(model_name, checkpoint, training_model);
        model.set_dtype(dtype);  // the products' number format; a checkpoint's own is overridden
        const double loaded_rss = peak_rss_mb();
        // Greedy decoding, so "same tokens" is a meaningful check: with random weights the full
        // distribution over 50k tokens is nearly flat, and float rounding (batched vs cached
        // arithmetic) can move a sampled token across a boundary.
        nanogpt::SamplingOptions sampling;
        sampling.top_k = 1;
        std::printf(
            "model %s: %.2fM parameters, %lld new tokens from a 1-token prompt, %d threads, "
            "dtype %s\n",
            checkpoint.empty() ? model_name.c_str() : checkpoint.c_str(),
            static_cast<double>(model.num_parameters()) / 1e6, static_cast<long long>(tokens),
            nanogpt::num_threads(), nanogpt::dtype_name(dtype));
        double rate[2] = {0, 0};
        std::vector<std::int32_t> outputs[2];
        // The cached runs share one KV cache, as sample does for its samples: the first call
        // makes its bfloat16 weight copies (with dtype bfloat16) and is reported apart.
        nanogpt::KVCache<float> cache(model.config());
        for (int cached = skip_uncached ? 1 : 0; cached <= 1; ++cached) {
            std::vector<double> rates;
            double first_rate = 0;
            for (std::int64_t r = 0; r < runs + cached; ++r) {
                nanogpt::Random rng(7);
                const auto t0 = std::chrono::steady_clock::now();
                outputs[cached] = cached ? model.generate({0}, tokens, sampling, rng, cache)
                                         : model.generate({0}, tokens, sampling, rng, {}, false);
                const double s =
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                if (cached && r == 0)
                    first_rate = static_cast<double>(tokens) / s;
                else
                    rates.push_back(static_cast<double>(tokens) / s);
            }
            std::sort(rates.begin(), rates.end());
            rate[cached] = rates[rates.size() / 2];
            std::printf("%-22s %10.1f tokens/s (median of %lld)\n",
                        cached ? "with KV cache" : "without cache (nanoGPT)", rate[cached],
                        static_cast<long long>(runs));
            if (cached)
                std::printf("%-22s %10.1f tokens/s (the cache's first call, which makes its "
                            "bfloat16 weight copies under bfloat16)\n",
                            "  first call", first_rate);
        }
        if (!skip_uncached) {
            std::printf("same tokens with and without cache: %s; speed-up %.1fx\n",
                        outputs[0] == outputs[1] ? "yes" : "NO", rate[1] / rate[0]);
        }
        // With bfloat16 the cached path reads the KV cache's bfloat16 copy: 2 bytes a weight.
        const double weight_bytes = (dtype == nanogpt::Dtype::bfloat16 ? 2.0 : 4.0) *
                                    static_cast<double>(model.num_parameters());
        const double float_bytes = 4.0 * static_cast<double>(model.num_parameters());
        const double sampled_rss = peak_rss_mb();
        std::printf(
            "peak RSS: %.1f MB after loading, %.1f MB after sampling = %.2fx the float32 weights "
            "(%.1f MB)%s\n",
            loaded_rss, sampled_rss, sampled_rss * 1048576 / float_bytes, float_bytes / 1048576,
            checkpoint.empty()            ? " (a training model with random weights)"
            : training_model ? " (whole checkpoint into a training model)"
                             : " (inference model, optimizer state skipped)");
        const double bandwidth = read_bandwidth_gbs(static_cast<std::size_t>(weight_bytes));
        const double dram = read_bandwidth_gbs(std::size_t{2} << 30);  // 2 GB: past any cache
        const double bound = bandwidth * 1e9 / weight_bytes;
        std::printf(
            "bandwidth bound: %.1f MB of weights per token, a buffer that size re-read at %.1f "
            "GB/s = %.1f tokens/s; cached path at %.0f%% (DRAM-sized buffer: %.1f GB/s)\n",
            weight_bytes / 1e6, bandwidth, bound, 100.0 * rate[1] / bound, dram);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
