// Generation with the KV cache against nanoGPT's full-forward generation: same logits (to float
// rounding), same tokens, including when the context window slides past block_size.
#include <catch2/catch.hpp>

#include <algorithm>  // std::copy, std::fill
#include <cmath>      // std::fabs
#include <cstdint>    // std::int32_t
#include <stdexcept>  // std::invalid_argument, std::out_of_range
#include <vector>     // std::vector

#include <nanogpt/model.hpp>
#include <nanogpt/optim.hpp>

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
        Tensor<std::int32_t> ids(Shape{1, chunk});
        std::copy(tokens.begin() + fed, tokens.begin() + fed + chunk, ids.data());
        {
            NoGradGuard no_grad;
            const auto step = model.forward(ids, cache).logits.to_vector();  // (1, chunk, V)
            std::copy(step.end() - V, step.end(), logits.begin());           // the last position
        }
        fed += chunk;
        CHECK(cache.length() == fed);
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
            {
                MatmulDtypeScope scope(dtype);  // forward sets it from the model's dtype
                CHECK(cache.uses_bf16_weights() == (dtype == Dtype::bfloat16));
            }
            NoGradGuard no_grad;
            const auto step = [&](std::int64_t first, std::int64_t count) {
                Tensor<std::int32_t> idx(Shape{1, count});
                std::copy(tokens.begin() + first, tokens.begin() + first + count, idx.data());
                const auto all = model.forward(idx, cache).logits.to_vector();
                std::copy(all.end() - V, all.end(), logits.begin());
            };
            step(0, 3);
            for (std::int64_t i = 3; i < n; ++i) step(i, 1);
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

TEST_CASE("generation: KV cache errors name the problem") {
    GPTConfig config = GPTConfig::tiny();  // block_size 16
    GPT<float> model(config, 5);
    KVCache<float> cache(config);
    Tensor<std::int32_t> ids(Shape{1, 10});
    std::fill(ids.data(), ids.data() + 10, 1);
    SECTION("attention against the cache has no backward") {
        REQUIRE_THROWS_AS(model.forward(ids, cache), std::invalid_argument);
        REQUIRE_THROWS_WITH(model.forward(ids, cache), Catch::Contains("NoGradGuard"));
    }
    SECTION("more positions than block_size") {
        NoGradGuard no_grad;
        (void)model.forward(ids, cache);
        CHECK(cache.length() == 10);
        REQUIRE_THROWS_WITH(model.forward(ids, cache),
                            "GPT::forward: sequence length 20 is outside [1, block_size = 16]");
    }
    SECTION("a batch of several sequences") {
        NoGradGuard no_grad;
        REQUIRE_THROWS_WITH(model.forward(Tensor<std::int32_t>(Shape{2, 3}), cache),
                            "GPT::forward: with a KV cache idx must be [1, T], got [2, 3]");
    }
    SECTION("layer index") {
        REQUIRE_THROWS_AS(cache.layer(2), std::out_of_range);
        REQUIRE_THROWS_WITH(cache.layer(-1), "KVCache::layer: -1 is not in [0, 2)");
    }
}

namespace {
// The last position's logits for `tokens` through `cache`, after forgetting its positions.
std::vector<float> cached_logits(GPT<float>& model, KVCache<float>& cache,
                                 const std::vector<std::int32_t>& tokens) {
    NoGradGuard no_grad;
    cache.reset(0);
    Tensor<std::int32_t> idx(Shape{1, static_cast<std::int64_t>(tokens.size())});
    std::copy(tokens.begin(), tokens.end(), idx.data());
    const auto all = model.forward(idx, cache).logits.to_vector();
    return std::vector<float>(all.end() - model.config().vocab_size, all.end());
}

// One AdamW step on a next-token loss, so the weights really move.
void train_one_step(GPT<float>& model, AdamW<float>& optimizer) {
    Tensor<std::int32_t> idx(Shape{1, 4}), targets(Shape{1, 4});
    for (std::int32_t i = 0; i < 4; ++i) idx.data()[i] = i + 1, targets.data()[i] = i + 2;
    model.zero_grad();
    model.forward(idx, targets).loss.backward();
    optimizer.step(0.05);
}
}  // namespace

TEST_CASE("generation: a cache kept across generate calls gives the same tokens as a new one") {
    for (Dtype dtype : {Dtype::float32, Dtype::bfloat16}) {
        GPTConfig config{16, 97, 2, 2, 64, 0.0, true};
        config.dtype = dtype;
        GPT<float> model(config, 11);
        KVCache<float> kept(config);
        SamplingOptions options;
        options.top_k = 5;
        // Different prompts and lengths, the second past block_size (the window slides).
        for (const auto& [prompt, count] :
             {std::pair{std::vector<std::int32_t>{1, 2, 3}, 8},
              std::pair{std::vector<std::int32_t>{40, 7}, 30},
              std::pair{std::vector<std::int32_t>{96}, 5}}) {
            Random a(3), b(3);
            const auto with_kept = model.generate(prompt, count, options, a, kept);
            const auto with_new = model.generate(prompt, count, options, b);
            INFO("dtype " << dtype_name(dtype) << ", prompt of " << prompt.size());
            CHECK(with_kept == with_new);
            CHECK(with_kept.size() == prompt.size() + static_cast<std::size_t>(count));
        }
    }
}

TEST_CASE("generation: a kept cache's bfloat16 weights follow the model's updates") {
    GPTConfig config{16, 97, 2, 2, 64, 0.0, true};
    config.dtype = Dtype::bfloat16;
    GPT<float> model(config, 12);
    AdamW<float> optimizer(model.parameters());
    const std::vector<std::int32_t> tokens = {5, 1, 7, 7, 0};
    KVCache<float> kept(config);
    const auto before = cached_logits(model, kept, tokens);
    train_one_step(model, optimizer);
    const auto after = cached_logits(model, kept, tokens);
    KVCache<float> fresh(config);
    CHECK(after == cached_logits(model, fresh, tokens));  // the copies were refreshed
    CHECK(after != before);                               // and the update did change the logits

    SECTION("positions computed before an update must be forgotten first") {
        Tensor<std::int32_t> one(Shape{1, 1});
        one.data()[0] = 3;
        {
            NoGradGuard no_grad;
            (void)model.forward(one, kept);  // kept holds positions from the current weights
        }
        train_one_step(model, optimizer);
        NoGradGuard no_grad;
        REQUIRE_THROWS_AS(model.forward(one, kept), std::invalid_argument);
        REQUIRE_THROWS_WITH(model.forward(one, kept), Catch::Contains("reset() it first"));
    }
    SECTION("a cache passed to another model of the same shape drops the first one's copies") {
        GPT<float> other(config, 99);
        KVCache<float> other_fresh(config);
        CHECK(cached_logits(other, kept, tokens) == cached_logits(other, other_fresh, tokens));
    }
    SECTION("a direct write reported with mark_changed") {
        float* wte = model.parameters().data();  // wte comes first in the buffer
        for (std::int64_t i = 0; i < config.vocab_size * config.n_embd; ++i) wte[i] *= 2.0f;
        model.parameters().mark_changed();
        KVCache<float> brand_new(config);
        const auto doubled = cached_logits(model, kept, tokens);
        CHECK(doubled == cached_logits(model, brand_new, tokens));
        CHECK(doubled != after);
    }
}

TEST_CASE("generation: a cache made for another configuration is refused") {
    GPTConfig config = GPTConfig::tiny();
    GPT<float> model(config, 5);
    GPTConfig wider = config;
    wider.n_embd *= 2;
    KVCache<float> cache(wider);
    Random rng(1);
    REQUIRE_THROWS_WITH(model.generate({1}, 3, SamplingOptions{}, rng, cache),
                        "GPT::generate: the KV cache was made for another configuration");
    NoGradGuard no_grad;
    REQUIRE_THROWS_WITH(model.forward(Tensor<std::int32_t>(Shape{1, 1}), cache),
                        "GPT::forward: the KV cache was made for another configuration");
}
