// model.hpp — GPT: token + position embeddings, n_layer pre-LN blocks, a final layernorm and a
// head that reuses the token embedding (weight tying), exactly GPT-2's architecture as in
// nanoGPT's model.py. Builds on layers.hpp, config.hpp and sampling.hpp; read next: tape_print.hpp.
#pragma once

#include <algorithm>   // std::min
#include <cmath>       // std::isfinite
#include <cstdint>     // std::int64_t, std::int32_t
#include <functional>  // std::function
#include <memory>      // std::shared_ptr
#include <numeric>     // std::iota
#include <stdexcept>   // std::invalid_argument
#include <string>      // std::to_string
#include <utility>     // std::move, std::exchange
#include <vector>      // std::vector

#include <nanogpt/config.hpp>
#include <nanogpt/dtype.hpp>
#include <nanogpt/kv_cache.hpp>
#include <nanogpt/layers.hpp>
#include <nanogpt/ops/loss.hpp>
#include <nanogpt/parameters.hpp>
#include <nanogpt/sampling.hpp>
#include <nanogpt/tape.hpp>

namespace nanogpt {

template <class T>
class GPT {
public:
    /// What forward returns, like nanoGPT's (logits, loss); loss is empty without targets.
    struct Output {
        Tensor<T> logits;  // (B, T, vocab_size)
        Tensor<T> loss;    // (1), mean cross-entropy
    };

    /// Builds and initialises the model (GPT-2's scheme) from `seed`; validates the config.
    explicit GPT(const GPTConfig& config, std::uint64_t seed = 1337)
        : GPT(config, Parameters<T>((config.validate(), config.num_parameters()), seed), seed) {}

    /// A model for sampling only, in eval mode: `weights` (config.num_parameters() of them, in
    /// parameter order, as a checkpoint stores them) become its parameters, with no gradient
    /// buffer, so it holds the weights' memory once (a training model: twice, and AdamW twice
    /// more). forward and generate work as usual; backward and optimizers do not apply.
    static GPT for_inference(const GPTConfig& config, std::vector<T> weights) {
        config.validate();
        if (static_cast<std::int64_t>(weights.size()) != config.num_parameters()) {
            throw std::invalid_argument("GPT::for_inference: " + std::to_string(weights.size()) +
                                        " weights, the configuration needs " +
                                        std::to_string(config.num_parameters()));
        }
        GPT model(config, Parameters<T>::for_inference(std::move(weights)), 1337);
        model.eval();
        return model;
    }

    /// Logits for every position of idx [B, T]; with targets [B, T] also the mean loss.
    /// Starts a new graph: tensors from the previous forward become invalid (see tape.hpp).
    Output forward(const Tensor<std::int32_t>& idx,
                   const Tensor<std::int32_t>& targets = Tensor<std::int32_t>()) {
        if (targets.defined() && targets.shape() != idx.shape()) {  // before any work or freeing
            throw std::invalid_argument("GPT::forward: targets " + targets.shape().to_string() +
                                        " do not match idx " + idx.shape().to_string());
        }
        MatmulDtypeScope dtype(config_.dtype);  // each op's backward keeps the dtype it ran with
        const Tensor<T> x = hidden_states(idx);           // (B, T, C)
        Output out{linear(x, wte_.weight), Tensor<T>()};  // (B, T, V): lm_head shares wte
        if (targets.defined()) out.loss = cross_entropy(out.logits, targets);  // (1)
        return out;
    }

    /// Logits (1, T, vocab_size) for idx [1, T], the positions right after those already in
    /// `cache`, which then holds them too: a generation step (no loss; use it under NoGradGuard).
    /// Starts a new graph, like forward.
    Output forward(const Tensor<std::int32_t>& idx, KVCache<T>& cache) {
        if (idx.dim() != 2 || idx.size(0) != 1) {
            throw std::invalid_argument("GPT::forward: with a KV cache idx must be [1, T], got " +
                                        idx.shape().to_string());
        }
        if (Tape::current().grad_enabled()) {
            throw std::invalid_argument(
                "GPT::forward: attention against a KV cache has no backward; run it under "
                "NoGradGuard");
        }
        check_cache(cache, "GPT::forward");
        cache.use_weights(params_.version());
        MatmulDtypeScope dtype(config_.dtype);
        const Tensor<T> x = hidden_states(idx, &cache);                 // (1, T, C)
        return {cache.linear(x, wte_.weight, Tensor<T>()), Tensor<T>()};  // (1, T, V)
    }

    /// Appends max_new_tokens sampled tokens to `tokens` (cropping the context to block_size),
    /// calling on_token for each new one as it is produced; returns the whole sequence. With the
    /// KV cache (the default) each step processes only the new token; without it, each step runs
    /// the full forward over the context, as nanoGPT's generate does.
    std::vector<std::int32_t> generate(std::vector<std::int32_t> tokens,
                                       std::int64_t max_new_tokens, const SamplingOptions& options,
                                       Random& rng,
                                       const std::function<void(std::int32_t)>& on_token = {},
                                       bool use_kv_cache = true) {
        if (!use_kv_cache)
            return generate_tokens(std::move(tokens), max_new_tokens, options, rng, on_token,
                                   nullptr);
        KVCache<T> cache(config_);
        return generate_tokens(std::move(tokens), max_new_tokens, options, rng, on_token, &cache);
    }

    /// The same with a cache the caller keeps across calls (made with this model's config):
    /// its memory is reused, and with dtype bfloat16 its bfloat16 copies of the weights are made
    /// once, by the first call, instead of by every call (kv_cache.hpp). Each call starts by
    /// forgetting the cache's positions.
    std::vector<std::int32_t> generate(std::vector<std::int32_t> tokens,
                                       std::int64_t max_new_tokens, const SamplingOptions& options,
                                       Random& rng, KVCache<T>& cache,
                                       const std::function<void(std::int32_t)>& on_token = {}) {
        check_cache(cache, "GPT::generate");
        return generate_tokens(std::move(tokens), max_new_tokens, options, rng, on_token, &cache);
    }

    /// Dropout is active only in training mode (the default, as in PyTorch).
    void train(bool on = true) { dropout_->training = on; }
    void eval() { train(false); }
    bool training() const { return dropout_->training; }

    /// Attention by the fused kernel (the default) or by composed_causal_self_attention, nanoGPT's
    /// op-by-op form with every head visible on the tape (slower, and it keeps the (B, nh, T, T)
    /// weights). The same function either way, so it is not part of the model: checkpoints do
    /// not record it.
    void set_fused_attention(bool fused) {
        for (Block<T>& block : blocks_) block.attn.fused = fused;
    }
    bool fused_attention() const { return blocks_.empty() || blocks_.front().attn.fused; }

    const GPTConfig& config() const { return config_; }
    /// The number format of the matrix products from now on (GPTConfig::dtype).
    void set_dtype(Dtype dtype) {
        GPTConfig changed = config_;
        changed.dtype = dtype;
        changed.validate();
        config_ = changed;
    }
    /// The layers, read-only, in nanoGPT's order (model.transformer.wte, .wpe, .h, .ln_f).
    const Embedding<T>& wte() const { return wte_; }
    const Embedding<T>& wpe() const { return wpe_; }
    const std::vector<Block<T>>& blocks() const { return blocks_; }
    const LayerNorm<T>& ln_f() const { return ln_f_; }
    Parameters<T>& parameters() { return params_; }
    const Parameters<T>& parameters() const { return params_; }
    void zero_grad() { params_.zero_grad(); }
    /// The generator behind dropout masks (saved in checkpoints so a resumed run continues it).
    Random& dropout_generator() { return dropout_->rng; }

    /// Calls ready(begin) during backward each time the gradients from parameter offset `begin`
    /// to the end of the buffer are final: after ln_f's backward, then after each block's from
    /// the top (gradient_ready_offsets() lists them; wte and wpe come first in the buffer and are
    /// final only when backward returns, since the head reuses wte). Data-parallel training
    /// starts reducing those gradients while the lower layers compute. Empty: no calls.
    void on_gradients_ready(std::function<void(std::int64_t)> ready) { ready_ = std::move(ready); }
    /// The offsets on_gradients_ready reports, in the order it reports them (decreasing).
    std::vector<std::int64_t> gradient_ready_offsets() const {
        std::vector<std::int64_t> offsets{ln_f_offset()};
        for (std::size_t i = blocks_.size(); i-- > 0;) offsets.push_back(block_offset(i));
        return offsets;
    }

    /// Parameter count; without the position embedding when non_embedding (nanoGPT's convention
    /// for MFU: the token embedding is counted because the head reuses it).
    std::int64_t num_parameters(bool non_embedding = false) const {
        return params_.size() - (non_embedding ? config_.block_size * config_.n_embd : 0);
    }

private:
    GPT(const GPTConfig& config, Parameters<T> params, std::uint64_t seed)
        : config_(config),
          params_(std::move(params)),
          dropout_(
              std::make_shared<DropoutControl>(DropoutControl{true, Random(splitmix64(seed))})),
          wte_(params_, "wte", config.vocab_size, config.n_embd),
          wpe_(params_, "wpe", config.block_size, config.n_embd),
          drop_{config.dropout, dropout_},
          blocks_(make_blocks()),
          ln_f_(params_, "ln_f", config.n_embd, config.bias),
          positions_(Shape{config.block_size}) {
        std::iota(positions_.data(), positions_.data() + config.block_size, 0);
        if (params_.used() != params_.size())
            throw std::logic_error("GPT: parameter count formula is wrong");
    }

    /// Sets training mode for a scope and restores the previous mode when it ends.
    struct ModeGuard {
        GPT& model;
        bool previous;
        ModeGuard(GPT& m, bool training) : model(m), previous(m.training()) { m.train(training); }
        ~ModeGuard() { model.train(previous); }
        ModeGuard(const ModeGuard&) = delete;
        ModeGuard& operator=(const ModeGuard&) = delete;
    };

    std::vector<std::int32_t> generate_tokens(std::vector<std::int32_t> tokens,
                                              std::int64_t max_new_tokens,
                                              const SamplingOptions& options, Random& rng,
                                              const std::function<void(std::int32_t)>& on_token,
                                              KVCache<T>* cache) {
        options.validate();
        if (tokens.empty())
            throw std::invalid_argument("GPT::generate: the prompt needs at least one token");
        if (max_new_tokens < 0)
            throw std::invalid_argument("GPT::generate: max_new_tokens must be >= 0");
        check_token_ids(tokens.data(), static_cast<std::int64_t>(tokens.size()), config_.vocab_size,
                        "GPT::generate");
        NoGradGuard no_grad;
        MatmulDtypeScope dtype(config_.dtype);
        ModeGuard eval_mode(*this, false);  // restores train/eval on every exit, also on throw
        std::vector<T> logits(static_cast<std::size_t>(config_.vocab_size));
        std::vector<std::int32_t> scratch;
        if (cache != nullptr) {
            cache->reset(-1);  // nothing cached yet
            cache->use_weights(params_.version());
        }
        for (std::int64_t i = 0; i < max_new_tokens; ++i) {
            const auto size = static_cast<std::int64_t>(tokens.size());
            const std::int64_t start =
                std::max<std::int64_t>(0, size - config_.block_size);  // crop
            if (cache != nullptr) {
                if (cache->start() != start) cache->reset(start);  // the window slid: rebuild
                const std::int64_t first = start + cache->length();
                last_logits(tokens.data() + first, size - first, logits.data(), cache);
            } else {
                last_logits(tokens.data() + start, size - start, logits.data(), nullptr);
            }
            for (T v : logits) {
                if (!std::isfinite(static_cast<double>(v))) {
                    throw std::runtime_error(
                        "GPT::generate: the model produced a non-finite logit");
                }
            }
            const std::int32_t next =
                sample_token(logits.data(), config_.vocab_size, options, rng, scratch);
            tokens.push_back(next);
            if (on_token) on_token(next);
        }
        return tokens;
    }

    // A cache sized for another architecture would index its keys out of bounds.
    void check_cache(const KVCache<T>& cache, const char* where) const {
        const GPTConfig& c = cache.config();
        if (c.n_layer != config_.n_layer || c.n_head != config_.n_head ||
            c.n_embd != config_.n_embd || c.block_size != config_.block_size) {
            throw std::invalid_argument(std::string(where) +
                                        ": the KV cache was made for another configuration");
        }
    }

    /// One generation step: the forward over `len` tokens, then the head on the last row only.
    /// Without a cache the tokens are the whole context (nanoGPT's way); with one they are the
    /// positions after the cached ones, which the cache then holds too.
    void last_logits(const std::int32_t* tokens, std::int64_t len, T* logits, KVCache<T>* cache) {
        Tensor<std::int32_t> idx(Shape{1, len});
        std::copy(tokens, tokens + len, idx.data());
        Tensor<T> x = hidden_states(idx, cache);  // (1, len, C)
        const T* last = x.data() + (len - 1) * config_.n_embd;
        if (cache != nullptr) {  // the cache's way: from its bfloat16 copy under bfloat16
            cache->linear_row(logits, last, wte_.weight);
            return;
        }
        kernels::linear_forward(logits, last, wte_.weight.data(), static_cast<const T*>(nullptr),
                                1, config_.n_embd, config_.vocab_size);
    }

    // Members are built in declaration order, which is GPT-2's parameter order: wte, wpe, h.0 ...
    // ln_f.
    std::vector<Block<T>> make_blocks() {
        const LayerShape s{config_.n_layer, config_.n_head, config_.n_embd, config_.dropout,
                           config_.bias};
        std::vector<Block<T>> blocks;
        blocks.reserve(static_cast<std::size_t>(config_.n_layer));
        for (std::int64_t i = 0; i < config_.n_layer; ++i)
            blocks.emplace_back(params_, "h." + std::to_string(i), s, dropout_);
        return blocks;
    }

    /// The blocks' output after ln_f for idx [B, T]; with a cache, idx holds the positions after
    /// the cached ones (B = 1).
    Tensor<T> hidden_states(const Tensor<std::int32_t>& idx, KVCache<T>* cache = nullptr) {
        if (idx.dim() != 2) {
            throw std::invalid_argument("GPT::forward: idx must be [B, T], got " +
                                        idx.shape().to_string());
        }
        const std::int64_t t = idx.size(1), pos0 = cache ? cache->length() : 0;
        if (t < 1 || pos0 + t > config_.block_size) {
            throw std::invalid_argument(
                "GPT::forward: sequence length " + std::to_string(pos0 + t) +
                " is outside [1, block_size = " + std::to_string(config_.block_size) + "]");
        }
        // Validate before begin_graph, so a bad call leaves the caller's previous graph intact.
        check_token_ids(idx.data(), idx.numel(), config_.vocab_size, "GPT::forward");
        Tape::current().begin_graph();
        if (Tape::current().grad_enabled()) recorded_.mark(Tape::current().generation());
        const auto pos =
            Tensor<std::int32_t>::view(Shape{t}, positions_.data() + pos0, nullptr);  // (T)
        Tensor<T> x = drop_.forward(add(wte_.forward(idx), wpe_.forward(pos)));     // (B, T, C)
        for (std::size_t l = 0; l < blocks_.size(); ++l) {
            const auto index = static_cast<std::int64_t>(l);
            mark_gradients_ready(block_offset(l));  // backward reaches it once block l is done
            const KVCacheLayer<T> layer = cache ? cache->layer(index) : KVCacheLayer<T>();
            x = blocks_[l].forward(x, layer);  // (B, T, C)
        }
        mark_gradients_ready(ln_f_offset());
        return ln_f_.forward(x);  // (B, T, C)
    }

    // A tape node with no inputs: backward runs it after every node recorded later, i.e. once the
    // gradients of the layers above this point (offsets from `begin` on) are complete.
    void mark_gradients_ready(std::int64_t begin) {
        if (!ready_ || !Tape::current().grad_enabled()) return;
        Tape::current().record("gradients_ready", {}, [ready = ready_, begin] { ready(begin); });
    }
    std::int64_t block_offset(std::size_t i) const {
        return blocks_[i].ln_1.weight.data() - params_.data();
    }
    std::int64_t ln_f_offset() const { return ln_f_.weight.data() - params_.data(); }

    GPTConfig config_;
    Parameters<T> params_;
    std::shared_ptr<DropoutControl> dropout_;
    Embedding<T> wte_;  // (V, C); also the output head
    Embedding<T> wpe_;  // (block_size, C)
    Dropout<T> drop_;
    std::vector<Block<T>> blocks_;
    LayerNorm<T> ln_f_;
    // The graph this model's last forward recorded on the thread's tape. Its nodes write into
    // the model's gradients: destroying the model orphans it if it is still current (after a
    // forward without backward, ops recorded later and a backward() would otherwise run the
    // nodes into freed memory). Moves hand the mark over; declared last, destroyed first.
    class RecordedGraph {
    public:
        RecordedGraph() = default;
        RecordedGraph(RecordedGraph&& other) noexcept
            : generation_(std::exchange(other.generation_, 0)) {}
        RecordedGraph& operator=(RecordedGraph&& other) noexcept {
            if (this != &other) {
                release();
                generation_ = std::exchange(other.generation_, 0);
            }
            return *this;
        }
        ~RecordedGraph() { release(); }
        void mark(std::uint64_t generation) { generation_ = generation; }

    private:
        void release() {
            if (generation_ != 0)
                if (Tape* tape = Tape::current_if_alive()) tape->orphan_graph(generation_);
            generation_ = 0;
        }
        std::uint64_t generation_ = 0;
    };

    Tensor<std::int32_t> positions_;  // 0, 1, ..., block_size - 1
    std::function<void(std::int64_t)> ready_;  // on_gradients_ready
    RecordedGraph recorded_;
};

}  // namespace nanogpt
