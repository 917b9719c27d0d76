// optim.hpp — training arithmetic over the single parameter buffer: AdamW with decoupled weight
// decay (only on tensors of 2+ dimensions), global gradient-norm clipping, and nanoGPT's
// learning-rate schedule (linear warmup, cosine decay to min_lr). Builds on parameters.hpp;
// read next: tokenizer.hpp, data.hpp, checkpoint.hpp.
#pragma once

#include <algorithm>    // std::min
#include <cmath>        // std::sqrt, std::cos, std::pow, std::isfinite
#include <cstdint>      // std::int64_t
#include <stdexcept>    // std::invalid_argument
#include <string>       // std::to_string
#include <type_traits>  // std::is_same_v
#include <vector>       // std::vector

#include <nanogpt/detail/adamw_kernels.hpp>  // AdamWScalars, adamw_span_avx512 / _neon
#include <nanogpt/detail/cpu_features.hpp>   // NANOGPT_X86_SIMD, NANOGPT_ALWAYS_INLINE
#include <nanogpt/detail/parallel.hpp>
#include <nanogpt/detail/reduce.hpp>
#include <nanogpt/parameters.hpp>

namespace nanogpt {

// ---- AdamW ----
// For each parameter p with gradient g, at step t (from 1):
//   p -= lr * wd * p                       (decoupled decay, only where ParameterInfo::decay())
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
// which is PyTorch's torch.optim.AdamW, the optimizer nanoGPT uses.

struct AdamWConfig {
    double beta1 = 0.9;
    double beta2 = 0.95;
    double eps = 1e-8;
    double weight_decay = 0.1;

    void validate() const {
        auto in_unit = [](const char* field, double x) {
            if (!(x >= 0.0 && x < 1.0)) {
                throw std::invalid_argument(std::string("AdamW: ") + field +
                                            " must be in [0, 1), got " + std::to_string(x));
            }
        };
        in_unit("beta1", beta1);
        in_unit("beta2", beta2);
        if (!(eps > 0.0))
            throw std::invalid_argument("AdamW: eps must be > 0, got " + std::to_string(eps));
        if (!(weight_decay >= 0.0)) {
            throw std::invalid_argument("AdamW: weight_decay must be >= 0, got " +
                                        std::to_string(weight_decay));
        }
    }
};

namespace kernels {
/// Elements [begin, end) of one AdamW update: the plain loop, any T. For float on an AVX-512
/// CPU, adamw_update runs detail/adamw_kernels.hpp's vector loop instead, checked against this.
/// Returns 0 when every updated weight and second moment is finite, NaN otherwise: x * 0 is NaN
/// exactly for infinite or NaN x, so the check is a multiply-add per value (a non-finite first
/// moment makes its weight non-finite too).
template <class T>
NANOGPT_ALWAYS_INLINE inline T adamw_span(T* param, const T* grad, T* m, T* v, std::int64_t begin,
                                          std::int64_t end, const AdamWScalars<T>& s) {
    T check = 0;
    for (std::int64_t i = begin; i < end; ++i) {
        const T g = grad[i] * s.grad_scale;
        m[i] = s.b1 * m[i] + (T(1) - s.b1) * g;
        v[i] = s.b2 * v[i] + (T(1) - s.b2) * g * g;
        param[i] =
            param[i] * s.decay - s.step_size * m[i] / (std::sqrt(v[i]) * s.inv_sqrt_bias2 + s.eps);
        check += param[i] * T(0) + v[i] * T(0);
    }
    return check;
}

// grad_scale multiplies every gradient as it is read (gradient clipping folded into the update,
// which saves a read and a write of the whole gradient buffer; 1 leaves them as they are).
// finite[b], for each block b of kAdamWChunk elements, says whether its updated weights and
// second moments are all finite (the caller owns the array; null skips it).
inline constexpr std::int64_t kAdamWChunk = 16384;
template <class T>
void adamw_update(T* param, const T* grad, T* m, T* v, std::int64_t n, double lr,
                  double weight_decay, const AdamWConfig& c, std::int64_t step,
                  double grad_scale = 1.0, unsigned char* finite = nullptr) {
    const double bias1 = 1.0 - std::pow(c.beta1, static_cast<double>(step));
    const double bias2 = 1.0 - std::pow(c.beta2, static_cast<double>(step));
    const AdamWScalars<T> s{static_cast<T>(c.beta1),
                            static_cast<T>(c.beta2),
                            static_cast<T>(lr / bias1),
                            static_cast<T>(1.0 / std::sqrt(bias2)),
                            static_cast<T>(1.0 - lr * weight_decay),
                            static_cast<T>(c.eps),
                            static_cast<T>(grad_scale)};  // g * 1 == g exactly: no special case
    const std::int64_t chunk = kAdamWChunk;
    [[maybe_unused]] const bool avx512 = detail::vector_isa() == detail::VectorIsa::avx512;
    detail::parallel_for(
        (n + chunk - 1) / chunk, [&](std::int64_t blk) NANOGPT_ALWAYS_INLINE {
            const std::int64_t begin = blk * chunk, end = std::min(n, begin + chunk);
            T check = 0;
#if defined(NANOGPT_X86_SIMD)
            if constexpr (std::is_same_v<T, float>) {
                if (avx512) {
                    const std::int64_t vectors = begin + (end - begin) / 16 * 16;
                    check = adamw_span_avx512(param, grad, m, v, begin, vectors, s) +
                            adamw_span(param, grad, m, v, vectors, end, s);  // the last few
                } else {
                    check = adamw_span(param, grad, m, v, begin, end, s);
                }
            } else {
                check = adamw_span(param, grad, m, v, begin, end, s);
            }
#elif defined(NANOGPT_ARM_NEON)
            if constexpr (std::is_same_v<T, float>) {
                const std::int64_t vectors = begin + (end - begin) / 4 * 4;
                check = adamw_span_neon(param, grad, m, v, begin, vectors, s) +
                        adamw_span(param, grad, m, v, vectors, end, s);  // the last few
            } else {
                check = adamw_span(param, grad, m, v, begin, end, s);
            }
#else
            check = adamw_span(param, grad, m, v, begin, end, s);
#endif
            if (finite != nullptr) finite[blk] = check == T(0);
        });
}
}  // namespace kernels

namespace detail {
/// Optimizers and clipping read the gradient buffer, which an inference model has none of.
template <class T>
void require_gradients(const Parameters<T>& params, const char* who) {
    if (!params.has_gradients()) {
        throw std::invalid_argument(std::string(who) +
                                    ": the parameters have no gradient buffer (an inference "
                                    "model, GPT::for_inference)");
    }
}
}  // namespace detail

template <class T>
class AdamW {
public:
    AdamW(Parameters<T>& params, const AdamWConfig& config = {})
        : AdamW(params, config, 0, params.size()) {}

    /// Keeps moments for, and updates, only the elements [shard_begin, shard_end) of the buffer:
    /// ZeRO-1, where each of N data-parallel ranks owns one range (distributed.hpp gathers the
    /// updated parameters), so the optimizer state per rank is 1/N of the whole.
    AdamW(Parameters<T>& params, const AdamWConfig& config, std::int64_t shard_begin,
          std::int64_t shard_end)
        : params_((detail::require_gradients(params, "AdamW"), &params)),
          config_((config.validate(), config)),
          shard_begin_(shard_begin),
          shard_end_(shard_end),
          finite_(max_blocks(params)) {
        if (!(0 <= shard_begin && shard_begin <= shard_end && shard_end <= params.size())) {
            throw std::invalid_argument("AdamW: shard [" + std::to_string(shard_begin) + ", " +
                                        std::to_string(shard_end) + ") is not within the " +
                                        std::to_string(params.size()) + " parameters");
        }
        m_.assign(static_cast<std::size_t>(shard_end - shard_begin), T(0));
        v_.assign(static_cast<std::size_t>(shard_end - shard_begin), T(0));
    }

    /// One update of every parameter from the gradient buffer, at learning rate lr. grad_scale
    /// multiplies the gradients as they are read (see clip_scale: clipping without a separate
    /// pass); the buffer itself is not changed. Returns false when a weight or a moment became
    /// infinite or NaN: training must stop at once (the state is lost), not take another step.
    bool step(double lr, double grad_scale = 1.0) {
        if (!(lr >= 0.0) || !std::isfinite(lr)) {
            throw std::invalid_argument("AdamW::step: learning rate must be finite and >= 0, got " +
                                        std::to_string(lr));
        }
        ++step_;
        params_->mark_changed();
        bool finite = true;
        for (const ParameterInfo& info : params_->infos()) {
            // The part of this parameter inside the shard (all of it without sharding).
            const std::int64_t o = std::max(info.offset, shard_begin_);
            const std::int64_t end = std::min(info.offset + info.shape.numel(), shard_end_);
            if (o >= end) continue;
            const std::int64_t s = o - shard_begin_, n = end - o;
            kernels::adamw_update(params_->data() + o, params_->grad() + o, m_.data() + s,
                                  v_.data() + s, n, lr, info.decay() ? config_.weight_decay : 0.0,
                                  config_, step_, grad_scale, finite_.data());
            for (std::int64_t b = 0; b < (n + kernels::kAdamWChunk - 1) / kernels::kAdamWChunk; ++b)
                finite = finite && finite_[static_cast<std::size_t>(b)] != 0;
        }
        return finite;
    }

    const AdamWConfig& config() const { return config_; }
    /// The elements this optimizer updates, [shard_begin(), shard_end()); m()[i] and v()[i]
    /// belong to element shard_begin() + i.
    std::int64_t shard_begin() const { return shard_begin_; }
    std::int64_t shard_end() const { return shard_end_; }
    /// Optimizer state, for checkpoints: steps taken and the two moment buffers.
    std::int64_t steps() const { return step_; }
    void set_steps(std::int64_t steps) { step_ = steps; }
    std::vector<T>& m() { return m_; }
    std::vector<T>& v() { return v_; }
    const std::vector<T>& m() const { return m_; }
    const std::vector<T>& v() const { return v_; }

private:
    static std::size_t max_blocks(const Parameters<T>& params) {
        std::int64_t most = 1;
        for (const ParameterInfo& info : params.infos())
            most = std::max(most, (info.shape.numel() + kernels::kAdamWChunk - 1) / kernels::kAdamWChunk);
        return static_cast<std::size_t>(most);
    }

    Parameters<T>* params_;
    AdamWConfig config_;
    std::int64_t shard_begin_, shard_end_;
    std::vector<T> m_, v_;
    std::vector<unsigned char> finite_;  // per block of one update: all finite (adamw_update)
    std::int64_t step_ = 0;
};

// ---- gradient clipping ----

/// The sum of squares of g[0, n), in double, in fixed chunks added in order (grad_norm's sum; a
/// ZeRO-1 rank takes it over its shard and the ranks add theirs).
template <class T>
double sum_of_squares(const T* g, std::int64_t n) {
    const std::int64_t chunk = 65536, chunks = (n + chunk - 1) / chunk;
    thread_local std::vector<double> partial_sums;  // kept between calls: no allocation per step
    partial_sums.assign(static_cast<std::size_t>(chunks), 0.0);
    double* partial =
        partial_sums.data();  // the caller's buffer: worker threads have their own thread_locals
    detail::parallel_for(
        chunks, [&](std::int64_t c) NANOGPT_ALWAYS_INLINE {
            // sum_of's independent lanes: a single running sum would wait on every addition (GPT-2
            // has 124M gradients), and the fixed lane order keeps the result thread-independent.
            const std::int64_t begin = c * chunk, end = std::min(n, begin + chunk);
            partial[c] = detail::sum_of<double>(end - begin, [&](std::int64_t i) {
                const auto x = static_cast<double>(g[begin + i]);
                return x * x;
            });
        });
    double total = 0.0;
    for (std::int64_t c = 0; c < chunks; ++c) total += partial[c];
    return total;
}

/// L2 norm of the whole gradient buffer, possibly inf or NaN (which the caller should treat as a
/// failed step). The sum of squares is taken in fixed chunks and added in order, in double, so it
/// does not depend on the thread count.
template <class T>
double grad_norm(const Parameters<T>& params) {
    detail::require_gradients(params, "grad_norm");
    return std::sqrt(sum_of_squares(params.grad(), params.size()));
}

/// The factor that brings a gradient of L2 norm `norm` down to max_norm (PyTorch's
/// max_norm / (norm + 1e-6)), or 1 when it is already within it, max_norm <= 0 (no clipping) or
/// the norm is not finite. Pass it to AdamW::step to clip without touching the buffer.
inline double clip_scale(double norm, double max_norm) {
    if (max_norm > 0.0 && std::isfinite(norm) && norm > max_norm) return max_norm / (norm + 1e-6);
    return 1.0;
}

/// Scales the whole gradient buffer so its L2 norm is at most max_norm (if max_norm > 0) and
/// returns the norm before clipping (see grad_norm). Training loops that go straight on to
/// AdamW::step can instead pass clip_scale(grad_norm(p), max_norm) to it and skip this pass.
template <class T>
double clip_grad_norm(Parameters<T>& params, double max_norm) {
    const double norm = grad_norm(params);
    const double scale = clip_scale(norm, max_norm);
    if (scale != 1.0) {
        const T factor = static_cast<T>(scale);
        const std::int64_t n = params.size(), chunk = 65536;
        T* g = params.grad();
        detail::parallel_for(
            (n + chunk - 1) / chunk, [&](std::int64_t c) NANOGPT_ALWAYS_INLINE {
                const std::int64_t end = std::min(n, (c + 1) * chunk);
                for (std::int64_t i = c * chunk; i < end; ++i) g[i] *= factor;
            });
    }
    return norm;
}

// ---- learning-rate schedule ----

/// nanoGPT's get_lr: linear warmup for warmup_iters, cosine decay to min_lr at lr_decay_iters,
/// min_lr afterwards; a constant learning_rate when decay_lr is false.
struct LRSchedule {
    double learning_rate = 6e-4;
    double min_lr = 6e-5;
    std::int64_t warmup_iters = 2000;
    std::int64_t lr_decay_iters = 600000;
    bool decay_lr = true;

    double at(std::int64_t it) const {
        if (!decay_lr) return learning_rate;
        if (it < warmup_iters) {
            return learning_rate * static_cast<double>(it + 1) /
                   static_cast<double>(warmup_iters + 1);
        }
        if (it > lr_decay_iters) return min_lr;
        const double span = static_cast<double>(lr_decay_iters - warmup_iters);
        const double ratio = span > 0 ? static_cast<double>(it - warmup_iters) / span : 1.0;
        const double coeff = 0.5 * (1.0 + std::cos(3.141592653589793 * ratio));  // 1 -> 0
        return min_lr + coeff * (learning_rate - min_lr);
    }
};

}  // namespace nanogpt
