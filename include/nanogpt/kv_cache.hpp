// kv_cache.hpp — generation without recomputing the prefix. Each attention layer keeps the keys
// and values of every position seen so far; a new token then needs one row through each matrix
// (reading the weights once) and one attention row against the cache, instead of a forward over
// the whole context. The model runs its usual layers: Block::forward takes an optional
// KVCacheLayer, and only the attention core differs (KVCacheLayer::attend below instead of the
// fused causal_self_attention). It has no backward: generation runs under NoGradGuard.
//
// The cache holds a window [start, start + length) of the token sequence. GPT::generate crops the
// context to the last block_size tokens, as nanoGPT does; once the window has to slide, position
// embeddings of every cached token change, so the cache is rebuilt from the new window. Results
// match the no-cache path up to float rounding.
//
// When the products run in bfloat16 (matmul_dtype(), set from the model's dtype; T = float) the
// cache also keeps a bfloat16 copy of each weight matrix, made the first time generation
// multiplies by it: a new token's products then read 2 bytes per weight instead of 4, which is
// the whole cost of a one-token step. They round as gemm_bf16 does (the inputs to bfloat16,
// float32 sums). A cache kept across GPT::generate calls keeps its copies, so only its first
// call pays for them (~0.1 s for GPT-2's 124M weights). The copies are stamped with the
// weights' ParametersVersion (parameters.hpp): after an update (AdamW::step, a checkpoint
// load, Parameters::mark_changed) they are refreshed in place on their next use, and a cache
// used by another model drops them. Builds on ops/matmul.hpp and parameters.hpp; read next:
// layers.hpp.
#pragma once

#include <algorithm>  // std::max, std::copy
#include <cmath>      // std::sqrt
#include <cstdint>    // std::int64_t
#include <limits>     // std::numeric_limits
#include <memory>     // std::unique_ptr
#include <optional>   // std::optional
#include <stdexcept>  // std::invalid_argument, std::out_of_range
#include <string>     // std::string, std::to_string
#include <type_traits>  // std::is_same_v
#include <unordered_map>  // std::unordered_map
#include <vector>     // std::vector

#include <nanogpt/config.hpp>
#include <nanogpt/detail/fast_math.hpp>
#include <nanogpt/detail/op_support.hpp>
#include <nanogpt/detail/parallel.hpp>
#include <nanogpt/dtype.hpp>
#include <nanogpt/ops/matmul.hpp>
#include <nanogpt/parameters.hpp>
#include <nanogpt/tensor.hpp>

namespace nanogpt {

template <class T>
class KVCache;

/// One attention layer's part of a KVCache, handed to Block::forward; a default-constructed one
/// means "no cache" (the training forward).
template <class T>
class KVCacheLayer {
public:
    KVCacheLayer() = default;
    KVCacheLayer(KVCache<T>* cache, std::int64_t layer) : cache_(cache), layer_(layer) {}

    explicit operator bool() const { return cache_ != nullptr; }

    /// Appends the keys and values of qkv's n rows (the next n positions of the window) and
    /// returns the causal attention of their queries over every cached position. qkv is c_attn's
    /// output (1, n, 3C); the result is (1, n, C), like causal_self_attention's.
    Tensor<T> attend(const Tensor<T>& qkv) const { return cache_->attend(layer_, qkv); }

    /// x W^T + b for the new positions: from the cache's bfloat16 copy of W when the model runs
    /// in bfloat16 (KVCache::linear), otherwise linear().
    Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias) const {
        return cache_->linear(x, weight, bias);
    }

private:
    KVCache<T>* cache_ = nullptr;
    std::int64_t layer_ = 0;
};

template <class T>
class KVCache {
public:
    explicit KVCache(const GPTConfig& config)
        : config_(config),
          keys_(static_cast<std::size_t>(config.n_layer * config.block_size * config.n_embd)),
          values_(keys_.size()),
          lengths_(static_cast<std::size_t>(config.n_layer), 0) {}

    /// The configuration the cache was sized for.
    const GPTConfig& config() const { return config_; }
    /// Token index of window position 0.
    std::int64_t start() const { return start_; }
    /// Cached positions (those every layer has seen).
    std::int64_t length() const { return lengths_.back(); }
    /// Forgets every cached position (not the bfloat16 weight copies); the next window begins at
    /// token index `start`.
    void reset(std::int64_t start) {
        start_ = start;
        std::fill(lengths_.begin(), lengths_.end(), 0);
    }

    /// The part of the cache for block `layer` (0 .. n_layer - 1).
    KVCacheLayer<T> layer(std::int64_t layer) {
        if (layer < 0 || layer >= config_.n_layer) {
            throw std::out_of_range("KVCache::layer: " + std::to_string(layer) + " is not in [0, " +
                                    std::to_string(config_.n_layer) + ")");
        }
        return KVCacheLayer<T>(this, layer);
    }

    /// True when generation's products read bfloat16 copies of the weights: a float model whose
    /// products run in bfloat16 now (matmul_dtype(); GPT::forward and generate set it from the
    /// model's dtype).
    bool uses_bf16_weights() const {
        return std::is_same_v<T, float> && matmul_dtype() == Dtype::bfloat16;
    }

    /// Ties the cache to the weights it computes with (GPT::forward and generate call it with
    /// Parameters::version()). Cached positions were computed with the weights the cache was tied
    /// to, so they must be forgotten (reset) before it is tied to other values; the bfloat16
    /// copies of the same buffer are refreshed on their next use, another buffer's are dropped.
    void use_weights(const ParametersVersion& weights) {
        if (weights == weights_) return;
        if (length() > 0) {
            throw std::invalid_argument(
                "KVCache: its cached positions were computed with other weights (another model, "
                "or before an update); reset() it first");
        }
        if (weights.id != weights_.id) bf16_weights_.clear();
        weights_ = weights;
    }

    /// x W^T + b, W [OC, C]: with bfloat16 weights from W's bfloat16 copy (made on first use),
    /// otherwise the usual linear op. No backward either way (generation runs under NoGradGuard).
    Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias) {
        if constexpr (std::is_same_v<T, float>) {
            if (uses_bf16_weights()) {
                // linear_bf16_weights checks the shapes; they are the same as W's copy's.
                return linear_bf16_weights(x, weight, bf16_copy(weight), bias);
            }
        }
        return nanogpt::linear(x, weight, bias);
    }

    /// out[OC] = x[C] W^T for one row, W [OC, C], written straight into out: the head's product
    /// in generation (GPT::generate), the same way as linear().
    void linear_row(T* out, const T* x, const Tensor<T>& weight) {
        const std::int64_t C = weight.size(1), OC = weight.size(0);
        if constexpr (std::is_same_v<T, float>) {
            if (uses_bf16_weights()) {
                kernels::linear_forward_bf16_weights(out, x, bf16_copy(weight), nullptr, 1, C, OC);
                return;
            }
        }
        kernels::linear_forward(out, x, weight.data(), static_cast<const T*>(nullptr), 1, C, OC);
    }

private:
    friend class KVCacheLayer<T>;

    Tensor<T> attend(std::int64_t l, const Tensor<T>& qkv) {
        const std::int64_t C = config_.n_embd, n = qkv.dim() == 3 ? qkv.size(1) : 0;
        const std::int64_t length = lengths_[static_cast<std::size_t>(l)];
        detail::require(qkv.dim() == 3 && qkv.size(0) == 1 && qkv.size(2) == 3 * C, "KVCache",
                        [&] {
                            return "qkv must be (1, n, 3 * n_embd = " + std::to_string(3 * C) +
                                   "), got " + qkv.shape().to_string();
                        });
        detail::require(n >= 1 && length + n <= config_.block_size, "KVCache", [&] {
            return std::to_string(n) + " new positions after " + std::to_string(length) +
                   " cached ones exceed block_size = " + std::to_string(config_.block_size);
        });
        detail::require(!detail::any_requires_grad(qkv), "KVCache", [] {
            return std::string("attention against the cache has no backward; run it under "
                               "NoGradGuard");
        });
        append_keys_values(l, qkv.data(), n, length);
        Tensor<T> y = Tensor<T>::graph_output(Shape{1, n, C}, false);  // (1, n, C)
        attend_rows(y.data(), qkv.data(), n, length, layer_keys(l), layer_values(l));
        lengths_[static_cast<std::size_t>(l)] = length + n;
        return y;
    }

    // The bfloat16 bits of `weight`, rounded on first use and again after the weights changed.
    // Keyed by the weight's storage: a model's matrices live in its one parameter buffer, which
    // never moves, and use_weights drops the copies when the buffer is another one.
    const std::uint16_t* bf16_copy(const Tensor<T>& weight) {
        WeightCopy& copy = bf16_weights_[weight.data()];
        const auto n = static_cast<std::size_t>(weight.numel());
        if (copy.size != n) {
            // Not a vector: its zero fill would be a pass over memory that the copy overwrites.
            copy.bits.reset(new std::uint16_t[n]);
            copy.size = n;
            copy.version.reset();
        }
        if (copy.version != weights_.version) {
            if constexpr (std::is_same_v<T, float>)
                kernels::to_bf16(weight.data(), weight.numel(), copy.bits.get());
            copy.version = weights_.version;
        }
        return copy.bits.get();
    }

    T* layer_keys(std::int64_t l) { return keys_.data() + l * config_.block_size * config_.n_embd; }
    T* layer_values(std::int64_t l) {
        return values_.data() + l * config_.block_size * config_.n_embd;
    }

    void append_keys_values(std::int64_t l, const T* qkv, std::int64_t n, std::int64_t length) {
        const std::int64_t C = config_.n_embd;
        for (std::int64_t i = 0; i < n; ++i) {
            const T* row = qkv + i * 3 * C;
            std::copy(row + C, row + 2 * C, layer_keys(l) + (length + i) * C);
            std::copy(row + 2 * C, row + 3 * C, layer_values(l) + (length + i) * C);
        }
    }

    /// Causal attention of the n new positions (after `length` cached ones) against every cached
    /// position up to their own: y (n, C) from the queries in qkv (n, 3C) and the layer's K, V.
    void attend_rows(T* y_out, const T* qkv, std::int64_t n, std::int64_t length, const T* K,
                     const T* V) {
        const std::int64_t C = config_.n_embd, NH = config_.n_head, hs = C / NH,
                           S = config_.block_size;
        const T scale = T(1) / std::sqrt(static_cast<T>(hs));
        const auto needed = static_cast<std::size_t>(n * NH * S);
        if (scores_.size() < needed) scores_.resize(needed);  // grows once, shared by the layers
        T* scores = scores_.data();
        detail::parallel_for(n * NH, [&](std::int64_t task) {
            const std::int64_t i = task / NH, h = task % NH, visible = length + i + 1;
            const T* q = qkv + i * 3 * C + h * hs;
            T* p = scores + task * S;
            T maxv = -std::numeric_limits<T>::infinity();
            for (std::int64_t t = 0; t < visible; ++t) {
                T s = 0;
                for (std::int64_t d = 0; d < hs; ++d) s += q[d] * K[t * C + h * hs + d];
                p[t] = s * scale;
                maxv = std::max(maxv, p[t]);
            }
            T total = 0;
            for (std::int64_t t = 0; t < visible; ++t) {
                p[t] = detail::exp_fast(p[t] - maxv);
                total += p[t];
            }
            T* y = y_out + i * C + h * hs;
            for (std::int64_t d = 0; d < hs; ++d) y[d] = 0;
            for (std::int64_t t = 0; t < visible; ++t) {
                const T w = p[t] / total;
                for (std::int64_t d = 0; d < hs; ++d) y[d] += w * V[t * C + h * hs + d];
            }
        });
    }

    GPTConfig config_;
    std::vector<T> keys_, values_;       // (n_layer, block_size, C) each
    std::vector<std::int64_t> lengths_;  // cached positions per layer
    std::vector<T> scores_;              // scratch: (n, n_head, block_size)
    struct WeightCopy {
        std::unique_ptr<std::uint16_t[]> bits;
        std::size_t size = 0;
        std::optional<std::uint64_t> version;  // of weights_ when last rounded; none: never
    };
    std::unordered_map<const T*, WeightCopy> bf16_weights_;  // bfloat16 products only
    ParametersVersion weights_;                              // what the cache computes with
    std::int64_t start_ = 0;
};

}  // namespace nanogpt
