// layers.hpp — the building blocks of a GPT in nanoGPT's order: Linear, Embedding, LayerNorm,
// Dropout, CausalSelfAttention, MLP, Block. Each layer takes its parameters from the model's
// single buffer (parameters.hpp) under GPT-2's names, and its forward is a few differentiable ops.
// Builds on ops/*.hpp and kv_cache.hpp; read next: config.hpp.
#pragma once

#include <cmath>    // std::sqrt
#include <cstdint>  // std::int64_t, std::int32_t
#include <memory>   // std::shared_ptr
#include <string>   // std::string

#include <nanogpt/kv_cache.hpp>
#include <nanogpt/random.hpp>
#include <nanogpt/ops/attention.hpp>
#include <nanogpt/ops/elementwise.hpp>
#include <nanogpt/ops/embedding.hpp>
#include <nanogpt/ops/matmul.hpp>
#include <nanogpt/ops/norm.hpp>
#include <nanogpt/parameters.hpp>
#include <nanogpt/tensor.hpp>

namespace nanogpt {

/// GPT-2's initial standard deviation for weights.
inline constexpr double kInitStd = 0.02;

/// y = x W^T + b with W [out, in] (PyTorch's layout).
template <class T>
struct Linear {
    Tensor<T> weight;  // (out, in)
    Tensor<T> bias;    // (out), or empty when bias = false

    Linear(Parameters<T>& params, const std::string& name, std::int64_t in, std::int64_t out,
           bool bias_on, double init_std = kInitStd)
        : weight(params.add(name + ".weight", Shape{out, in}, Init::normal(init_std))),
          bias(bias_on ? params.add(name + ".bias", Shape{out}, Init::zeros()) : Tensor<T>()) {}

    static std::int64_t num_parameters(std::int64_t in, std::int64_t out, bool bias_on) {
        return in * out + (bias_on ? out : 0);
    }

    Tensor<T> forward(const Tensor<T>& x) const { return linear(x, weight, bias); }  // (..., out)
    /// In generation the cache may hold a bfloat16 copy of the weight (KVCacheLayer::linear).
    Tensor<T> forward(const Tensor<T>& x, const KVCacheLayer<T>& cache) const {
        return cache ? cache.linear(x, weight, bias) : linear(x, weight, bias);
    }
    /// gelu(forward(x)) as one fused op (ops/matmul.hpp: linear_gelu).
    Tensor<T> forward_gelu(const Tensor<T>& x) const { return linear_gelu(x, weight, bias); }
};

/// Rows of a [num, dim] table selected by integer ids.
template <class T>
struct Embedding {
    Tensor<T> weight;  // (num, dim)

    Embedding(Parameters<T>& params, const std::string& name, std::int64_t num, std::int64_t dim)
        : weight(params.add(name + ".weight", Shape{num, dim}, Init::normal(kInitStd))) {}

    /// One row of weight per id: ids (...) -> (..., dim).
    Tensor<T> forward(const Tensor<std::int32_t>& ids) const { return embedding(ids, weight); }
};

/// Layer normalisation with a learned scale and (optional) shift.
template <class T>
struct LayerNorm {
    Tensor<T> weight;  // (C)
    Tensor<T> bias;    // (C), or empty

    LayerNorm(Parameters<T>& params, const std::string& name, std::int64_t C, bool bias_on)
        : weight(params.add(name + ".weight", Shape{C}, Init::ones())),
          bias(bias_on ? params.add(name + ".bias", Shape{C}, Init::zeros()) : Tensor<T>()) {}

    static std::int64_t num_parameters(std::int64_t C, bool bias_on) { return bias_on ? 2 * C : C; }

    Tensor<T> forward(const Tensor<T>& x) const { return layernorm(x, weight, bias); }
};

/// Shared by all dropout sites of one model: whether it is training, and the generator that
/// hands each dropout call a fresh seed (so a run is reproducible from the model's seed).
struct DropoutControl {
    bool training = true;
    Random rng;
};

template <class T>
struct Dropout {
    double p;
    std::shared_ptr<DropoutControl> control;

    /// Identity outside training or when p = 0 (no tape node, no copy).
    Tensor<T> forward(const Tensor<T>& x) const {
        if (!control->training || p == 0.0) return x;
        return dropout(x, p, control->rng.next_u64());
    }
};

/// Everything a layer needs to know about the model's shape.
struct LayerShape {
    std::int64_t n_layer, n_head, n_embd;
    double dropout;
    bool bias;
};

/// Multi-head causal self-attention: one fused qkv projection, n_head heads, output projection.
template <class T>
struct CausalSelfAttention {
    Linear<T> c_attn;  // C -> 3C: q, k, v for all heads at once
    Linear<T> c_proj;  // C -> C, a residual projection
    std::int64_t n_head;
    Dropout<T> attn_dropout, resid_dropout;
    bool fused = true;  // the fused kernel, or nanoGPT's op-by-op form (GPT::set_fused_attention)

    CausalSelfAttention(Parameters<T>& params, const std::string& name, const LayerShape& s,
                        const std::shared_ptr<DropoutControl>& control)
        : c_attn(params, name + ".c_attn", s.n_embd, 3 * s.n_embd, s.bias),
          // GPT-2 scales residual projections by 1/sqrt(2 n_layer): each block adds two of them
          // to the residual stream, and this keeps its variance from growing with depth.
          c_proj(params, name + ".c_proj", s.n_embd, s.n_embd, s.bias,
                 kInitStd / std::sqrt(2.0 * s.n_layer)),
          n_head(s.n_head),
          attn_dropout{s.dropout, control},
          resid_dropout{s.dropout, control} {}

    static std::int64_t num_parameters(const LayerShape& s) {
        return Linear<T>::num_parameters(s.n_embd, 3 * s.n_embd, s.bias) +
               Linear<T>::num_parameters(s.n_embd, s.n_embd, s.bias);
    }

    /// With a cache (generation), x holds only the new positions and attention also sees the
    /// cached ones.
    Tensor<T> forward(const Tensor<T>& x, const KVCacheLayer<T>& cache = {}) const {
        const Tensor<T> qkv = c_attn.forward(x, cache);                  // (B, T, 3C)
        const Tensor<T> y = cache ? cache.attend(qkv) : attention(qkv);  // (B, T, C)
        return resid_dropout.forward(c_proj.forward(y, cache));          // (B, T, C)
    }

    /// The attention core of the training forward: all heads over T causal positions.
    Tensor<T> attention(const Tensor<T>& qkv) const {
        const bool drop = attn_dropout.control->training && attn_dropout.p > 0.0;
        const double p = drop ? attn_dropout.p : 0.0;
        const std::uint64_t seed = drop ? attn_dropout.control->rng.next_u64() : 0;
        return fused ? causal_self_attention(qkv, n_head, p, seed)  // (B, T, C)
                     : composed_causal_self_attention(qkv, n_head, p, seed);
    }
};

/// The feed-forward part of a block: C -> 4C -> GELU -> C.
template <class T>
struct MLP {
    Linear<T> c_fc;
    Linear<T> c_proj;
    Dropout<T> drop;

    MLP(Parameters<T>& params, const std::string& name, const LayerShape& s,
        const std::shared_ptr<DropoutControl>& control)
        : c_fc(params, name + ".c_fc", s.n_embd, 4 * s.n_embd, s.bias),
          c_proj(params, name + ".c_proj", 4 * s.n_embd, s.n_embd, s.bias,
                 kInitStd / std::sqrt(2.0 * s.n_layer)),
          drop{s.dropout, control} {}

    static std::int64_t num_parameters(const LayerShape& s) {
        return Linear<T>::num_parameters(s.n_embd, 4 * s.n_embd, s.bias) +
               Linear<T>::num_parameters(4 * s.n_embd, s.n_embd, s.bias);
    }

    Tensor<T> forward(const Tensor<T>& x, const KVCacheLayer<T>& cache = {}) const {
        // gelu(c_fc(x)), fused: (B, T, 4C); in generation with bfloat16 weights, not fused.
        const Tensor<T> h = cache ? gelu(c_fc.forward(x, cache)) : c_fc.forward_gelu(x);
        return drop.forward(c_proj.forward(h, cache));  // (B, T, C)
    }
};

/// A pre-LN transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x)).
template <class T>
struct Block {
    LayerNorm<T> ln_1;
    CausalSelfAttention<T> attn;
    LayerNorm<T> ln_2;
    MLP<T> mlp;

    Block(Parameters<T>& params, const std::string& name, const LayerShape& s,
          const std::shared_ptr<DropoutControl>& control)
        : ln_1(params, name + ".ln_1", s.n_embd, s.bias),
          attn(params, name + ".attn", s, control),
          ln_2(params, name + ".ln_2", s.n_embd, s.bias),
          mlp(params, name + ".mlp", s, control) {}

    static std::int64_t num_parameters(const LayerShape& s) {
        return 2 * LayerNorm<T>::num_parameters(s.n_embd, s.bias) +
               CausalSelfAttention<T>::num_parameters(s) + MLP<T>::num_parameters(s);
    }

    Tensor<T> forward(Tensor<T> x, const KVCacheLayer<T>& cache = {}) const {
        x = add(x, attn.forward(ln_1.forward(x), cache));  // (B, T, C)
        x = add(x, mlp.forward(ln_2.forward(x), cache));   // (B, T, C)
        return x;
    }
};

}  // namespace nanogpt
