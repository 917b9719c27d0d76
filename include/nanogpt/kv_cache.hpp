// kv_cache.hpp — generation without recomputing the prefix. Each layer keeps the keys and values
// of every position seen so far; a new token then needs one row through each matrix (reading the
// weights once) and one attention row against the cache, instead of a forward over the whole
// context. Runs the raw forward kernels of ops/*.hpp directly (no tape, no graph memory).
//
// The cache holds a window [start, start + length) of the token sequence. GPT::generate crops the
// context to the last block_size tokens, as nanoGPT does; once the window has to slide, position
// embeddings of every cached token change, so the cache is rebuilt from the new window. Results
// match the no-cache path up to float rounding.
// With config.dtype = bfloat16 (and T = float) the cache also keeps a bfloat16 copy of every
// weight matrix, made at its first forward: a token's products then read 2 bytes per weight
// instead of 4 (linear_forward_bf16_weights, gemm_bf16.hpp), the same rounding as gemm_bf16.
// The attention row against the cache stays float32. Builds on layers.hpp; read next: model.hpp.
#pragma once

#include <algorithm>  // std::max, std::copy
#include <cmath>      // std::sqrt
#include <cstdint>      // std::int64_t, std::int32_t, std::uint16_t
#include <memory>       // std::unique_ptr
#include <type_traits>  // std::is_same_v
#include <vector>       // std::vector

#include <nanogpt/config.hpp>
#include <nanogpt/detail/bfloat16.hpp>
#include <nanogpt/detail/fast_math.hpp>
#include <nanogpt/detail/gemm.hpp>
#include <nanogpt/detail/parallel.hpp>
#include <nanogpt/layers.hpp>

namespace nanogpt {

template <class T>
class KVCache {
public:
    explicit KVCache(const GPTConfig& config)
        : config_(config),
          keys_(static_cast<std::size_t>(config.n_layer * config.block_size * config.n_embd)),
          values_(keys_.size()) {}

    std::int64_t start() const { return start_; }
    std::int64_t length() const { return length_; }
    /// Forgets every cached position; the next window begins at token index `start`.
    void reset(std::int64_t start) {
        start_ = start;
        length_ = 0;
    }

    /// Runs n new tokens (positions length() .. length() + n - 1 of the window) through the model,
    /// appends their keys and values, and writes the last token's logits [V] to `logits`.
    void forward(const std::int32_t* tokens, std::int64_t n, const Embedding<T>& wte,
                 const Embedding<T>& wpe, const std::vector<Block<T>>& blocks,
                 const LayerNorm<T>& ln_f, T* logits) {
        const std::int64_t C = config_.n_embd, pos0 = length_;
        ensure_scratch(n);
        if (uses_bf16_weights() && !bf16_weights_) copy_bf16_weights(wte, blocks);
        const std::uint16_t* w16 = bf16_weights_.get();
        check_token_ids(tokens, n, config_.vocab_size, "KVCache::forward");
        T* x = x_.data();  // (n, C): the residual stream of the new tokens
        for (std::int64_t i = 0; i < n; ++i)
            for (std::int64_t c = 0; c < C; ++c)
                x[i * C + c] =
                    wte.weight.data()[tokens[i] * C + c] + wpe.weight.data()[(pos0 + i) * C + c];
        for (std::size_t l = 0; l < blocks.size(); ++l) {
            const Block<T>& block = blocks[l];
            layernorm_rows(block.ln_1, x, n);                                     // h = ln_1(x)
            linear_rows(block.attn.c_attn, h_.data(), n, C, 3 * C, qkv_.data(), w16);  // (n, 3C)
            append_keys_values(static_cast<std::int64_t>(l), n);
            attend(static_cast<std::int64_t>(l), n);  // y: (n, C)
            linear_rows(block.attn.c_proj, y_.data(), n, C, C, proj_.data(), w16);
            kernels::add_forward(x, x, proj_.data(), 1, n * C);  // x += attn
            layernorm_rows(block.ln_2, x, n);
            linear_rows(block.mlp.c_fc, h_.data(), n, C, 4 * C, fc_.data(), w16);  // (n, 4C)
            kernels::gelu_forward(fc_.data(), fc_.data(), n * 4 * C);
            linear_rows(block.mlp.c_proj, fc_.data(), n, 4 * C, C, proj_.data(), w16);
            kernels::add_forward(x, x, proj_.data(), 1, n * C);  // x += mlp
        }
        length_ += n;
        layernorm_rows(ln_f, x + (n - 1) * C, 1);  // only the last position predicts
        if (w16 != nullptr) {  // the head's copy is the last matrix
            kernels::linear_forward_bf16_weights(logits, h_.data(),
                                                 bf16_weights_.get() + bf16_count_ -
                                                     config_.vocab_size * C,
                                                 nullptr, 1, C, config_.vocab_size);
        } else {
            kernels::linear_forward(logits, h_.data(), wte.weight.data(),
                                    static_cast<const T*>(nullptr), 1, C, config_.vocab_size);
        }
    }

    /// True when the products read a bfloat16 copy of the weights (float model, dtype bfloat16).
    bool uses_bf16_weights() const {
        return std::is_same_v<T, float> && config_.dtype == Dtype::bfloat16;
    }

private:
    void ensure_scratch(std::int64_t n) {
        const auto rows = static_cast<std::size_t>(std::max(n, std::int64_t{1}));
        const auto C = static_cast<std::size_t>(config_.n_embd);
        if (x_.size() >= rows * C) return;
        x_.resize(rows * C);
        h_.resize(rows * C);
        y_.resize(rows * C);
        proj_.resize(rows * C);
        qkv_.resize(rows * 3 * C);
        fc_.resize(rows * 4 * C);
        stats_.resize(2 * rows);
        scores_.resize(rows * static_cast<std::size_t>(config_.n_head * config_.block_size));
    }

    void layernorm_rows(const LayerNorm<T>& ln, const T* x, std::int64_t n) {
        kernels::layernorm_forward(h_.data(), stats_.data(), stats_.data() + n, x, ln.weight.data(),
                                   ln.bias.defined() ? ln.bias.data() : nullptr, n, config_.n_embd);
    }

    // w16: the bfloat16 copies, consumed in the order of forward's calls (see copy_bf16_weights).
    void linear_rows(const Linear<T>& layer, const T* in, std::int64_t n, std::int64_t C,
                     std::int64_t OC, T* out, const std::uint16_t*& w16) {
        const T* bias = layer.bias.defined() ? layer.bias.data() : nullptr;
        if constexpr (std::is_same_v<T, float>) {
            if (w16 != nullptr) {
                kernels::linear_forward_bf16_weights(out, in, w16, bias, n, C, OC);
                w16 += OC * C;
                return;
            }
        }
        kernels::linear_forward(out, in, layer.weight.data(), bias, n, C, OC);
    }

    // Every block's c_attn, attn.c_proj, c_fc, mlp.c_proj, then the head (wte), rounded to
    // bfloat16, in the order forward uses them.
    void copy_bf16_weights(const Embedding<T>& wte, const std::vector<Block<T>>& blocks) {
        std::vector<const Tensor<T>*> matrices;
        for (const Block<T>& b : blocks) {
            for (const Linear<T>* l : {&b.attn.c_attn, &b.attn.c_proj, &b.mlp.c_fc, &b.mlp.c_proj})
                matrices.push_back(&l->weight);
        }
        matrices.push_back(&wte.weight);
        std::size_t total = 0;
        for (const Tensor<T>* m : matrices) total += static_cast<std::size_t>(m->numel());
        // Not a vector: its zero fill would be a pass over memory that the copy overwrites.
        bf16_weights_.reset(new std::uint16_t[total]);
        bf16_count_ = total;
        std::uint16_t* dst = bf16_weights_.get();
        for (const Tensor<T>* m : matrices) {
            if constexpr (std::is_same_v<T, float>) kernels::to_bf16(m->data(), m->numel(), dst);
            dst += m->numel();
        }
    }

    T* layer_keys(std::int64_t l) { return keys_.data() + l * config_.block_size * config_.n_embd; }
    T* layer_values(std::int64_t l) {
        return values_.data() + l * config_.block_size * config_.n_embd;
    }

    void append_keys_values(std::int64_t l, std::int64_t n) {
        const std::int64_t C = config_.n_embd;
        for (std::int64_t i = 0; i < n; ++i) {
            const T* row = qkv_.data() + i * 3 * C;
            std::copy(row + C, row + 2 * C, layer_keys(l) + (length_ + i) * C);
            std::copy(row + 2 * C, row + 3 * C, layer_values(l) + (length_ + i) * C);
        }
    }

    /// Causal attention of the n new positions against every cached position up to their own.
    void attend(std::int64_t l, std::int64_t n) {
        const std::int64_t C = config_.n_embd, NH = config_.n_head, hs = C / NH,
                           S = config_.block_size;
        const T scale = T(1) / std::sqrt(static_cast<T>(hs));
        const T* K = layer_keys(l);
        const T* V = layer_values(l);
        detail::parallel_for(n * NH, [&](std::int64_t task) {
            const std::int64_t i = task / NH, h = task % NH, visible = length_ + i + 1;
            const T* q = qkv_.data() + i * 3 * C + h * hs;
            T* p = scores_.data() + task * S;
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
            T* y = y_.data() + i * C + h * hs;
            for (std::int64_t d = 0; d < hs; ++d) y[d] = 0;
            for (std::int64_t t = 0; t < visible; ++t) {
                const T w = p[t] / total;
                for (std::int64_t d = 0; d < hs; ++d) y[d] += w * V[t * C + h * hs + d];
            }
        });
    }

    GPTConfig config_;
    std::vector<T> keys_, values_;                                 // (n_layer, block_size, C) each
    std::vector<T> x_, h_, y_, proj_, qkv_, fc_, stats_, scores_;  // scratch, grown once
    std::unique_ptr<std::uint16_t[]> bf16_weights_;  // with dtype bfloat16: see copy_bf16_weights
    std::size_t bf16_count_ = 0;
    std::int64_t start_ = 0;   // token index of window position 0
    std::int64_t length_ = 0;  // cached positions
};

}  // namespace nanogpt
