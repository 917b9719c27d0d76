// Generation with the KV cache against nanoGPT's full-forward generation: same logits (to float
// rounding), same tokens, including when the context window slides past block_size.
#include <catch2/catch.hpp>

#include <cmath>    // std::fabs
#include <cstdint>  // std::int32_t
#include <vector>   // std::vector

#include <nanogpt/model.hpp>

using namespace nanogpt;

TEST_CASE("generation: KV cache gives the same tokens as the full forward") {
    GPTConfig config = GPTConfig::tiny();  // block_size 16
    for (bool bias : {true, false}) {
        config.bias = bias;
        GPT<float> model(config, 42);
        // 40 new tokens from a 3-token prompt run far past block_size = 16, so the window slides.
        for (std::int64_t top_k : {0, 1, 5}) {
            SamplingOptions options;
            options.top_k = top_k;
            Random a(9), b(9);
            const auto cached = model.generate({1, 2, 3}, 40, options, a, {}, true);
            const auto uncached = model.generate({1, 2, 3}, 40, options, b, {}, false);
            INFO("bias " << bias << ", top_k " << top_k);
            CHECK(cached == uncached);
            CHECK(cached.size() == 43);
        }
    }
}

TEST_CASE("generation: cached logits match the forward pass at every position") {
    GPTConfig config = GPTConfig::tiny();
    GPT<float> model(config, 3);
    model.eval();
    const std::vector<std::int32_t> tokens = {5, 1, 7, 7, 0, 31, 2, 9, 4};
    Tensor<std::int32_t> idx(Shape{1, static_cast<std::int64_t>(tokens.size())});
    std::copy(tokens.begin(), tokens.end(), idx.data());
    std::vector<float> full;
    {
        NoGradGuard no_grad;
        full = model.forward(idx).logits.to_vector();  // (1, 9, V)
    }
    // Feed the prompt in two chunks (a multi-token prefill, then single tokens).
    KVCache<float> cache(config);
    std::vector<float> logits(static_cast<std::size_t>(config.vocab_size));
    const std::int64_t V = config.vocab_size;
    double worst = 0;
    std::int64_t fed = 0;
    for (std::int64_t chunk : {4, 1, 1, 1, 1, 1}) {
        cache.forward(tokens.data() + fed, chunk, model.wte(), model.wpe(), model.blocks(),
                      model.ln_f(), logits.data());
        fed += chunk;
        for (std::int64_t v = 0; v < V; ++v) {
            worst = std::max(worst, double(std::fabs(logits[v] - full[(fed - 1) * V + v])));
        }
    }
    CHECK(fed == 9);
    CHECK(worst < 1e-4);
}

TEST_CASE("generation: dtype bfloat16 reads a bfloat16 copy of the weights") {
    // A wider model than tiny, so that bfloat16's rounding shows in the logits.
    GPTConfig config{16, 97, 2, 2, 64, 0.0, true};
    const std::vector<std::int32_t> tokens = {5, 1, 7, 7, 0, 31, 2, 9, 4, 60, 96};
    const auto n = static_cast<std::int64_t>(tokens.size());
    const std::int64_t V = config.vocab_size;
    // The last position's logits: from the forward pass (gemm_bf16 on float weights), and from the
    // cache (bfloat16 weights), fed one token at a time after a 3-token prefill.
    const auto run = [&](Dtype dtype, bool cached) {
        config.dtype = dtype;
        GPT<float> model(config, 3);
        model.eval();
        std::vector<float> logits(static_cast<std::size_t>(V));
        if (cached) {
            KVCache<float> cache(config);
            CHECK(cache.uses_bf16_weights() == (dtype == Dtype::bfloat16));
            cache.forward(tokens.data(), 3, model.wte(), model.wpe(), model.blocks(), model.ln_f(),
                          logits.data());
            for (std::int64_t i = 3; i < n; ++i)
                cache.forward(tokens.data() + i, 1, model.wte(), model.wpe(), model.blocks(),
                              model.ln_f(), logits.data());
        } else {
            Tensor<std::int32_t> idx(Shape{1, n});
            std::copy(tokens.begin(), tokens.end(), idx.data());
            NoGradGuard no_grad;
            const auto all = model.forward(idx).logits.to_vector();
            std::copy(all.end() - V, all.end(), logits.begin());
        }
        return logits;
    };
    const auto max_diff = [](const std::vector<float>& a, const std::vector<float>& b) {
        double worst = 0;
        for (std::size_t i = 0; i < a.size(); ++i)
            worst = std::max(worst, std::fabs(double(a[i]) - b[i]));
        return worst;
    };
    const auto bf16_cached = run(Dtype::bfloat16, true), bf16_full = run(Dtype::bfloat16, false);
    const auto fp32_cached = run(Dtype::float32, true);
    // The cache's bfloat16 weights give the forward's bfloat16 numbers up to rounding: float32
    // sums in another order can move an activation across a bfloat16 rounding boundary, so the
    // two bfloat16 paths differ by about as much as bfloat16 differs from float32 (~1e-3 here),
    // far below a wrong weight's effect. And the cache really rounded: it is not float32.
    const double same = max_diff(bf16_cached, bf16_full), other = max_diff(bf16_cached, fp32_cached);
    INFO("bf16 cached vs bf16 forward " << same << ", vs float32 " << other);
    CHECK(same < 1e-2);
    CHECK(other > 1e-4);
    CHECK(bf16_cached == run(Dtype::bfloat16, true));  // deterministic
}
