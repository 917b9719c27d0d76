// ops/norm.hpp — layernorm over the last dimension (eps 1e-5, as GPT-2), with learned weight and
// optional bias. The forward caches each row's mean and 1/std for the backward.
// Read next: ops/attention.hpp.
#pragma once

#include <algorithm>  // std::min
#include <cmath>      // std::sqrt
#include <cstdint>    // std::int64_t

#include <nanogpt/detail/cpu_features.hpp>  // NANOGPT_ALWAYS_INLINE
#include <nanogpt/detail/op_support.hpp>
#include <nanogpt/detail/parallel.hpp>
#include <nanogpt/detail/reduce.hpp>
#include <nanogpt/tensor.hpp>

namespace nanogpt {

// ---- layernorm ----
// For each row x of C values: mean = sum(x)/C, rstd = 1/sqrt(sum((x-mean)^2)/C + eps),
// xhat = (x - mean) rstd, out = xhat * weight + bias.

namespace kernels {

inline constexpr double kLayerNormEps = 1e-5;

template <class T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* weight, const T* bias,
                       std::int64_t N, std::int64_t C) {
    detail::parallel_for(
        N, [&](std::int64_t r) NANOGPT_ALWAYS_INLINE {
            const T* x = inp + r * C;
            const T m =
                detail::sum_of<T>(C, [&](std::int64_t c) { return x[c]; }) / static_cast<T>(C);
            // Two passes: the one-pass formula loses precision when |mean| >> std.
            const T var =
                detail::sum_of<T>(C, [&](std::int64_t c) { return (x[c] - m) * (x[c] - m); }) /
                static_cast<T>(C);
            const T s = T(1) / std::sqrt(var + static_cast<T>(kLayerNormEps));
            T* o = out + r * C;
            for (std::int64_t c = 0; c < C; ++c)
                o[c] = (x[c] - m) * s * weight[c] + (bias ? bias[c] : T(0));
            mean[r] = m;
            rstd[r] = s;
        });
}

// With g = dout * weight: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), the usual result of
// differentiating through the mean and the variance. dweight += dout * xhat, dbias += dout, summed
// over rows.
//
// One pass over x and dout: rows go in fixed chunks of kLayerNormChunkRows, and each chunk writes
// its dx rows and its own partial sums of dweight and dbias (into `partials`, 2 x C per chunk);
// a second, tiny pass adds the chunk partials per channel in chunk order. Reading the two big
// inputs once instead of twice matters because they rarely fit in cache, and the chunking (not
// the thread count) fixes the order of every sum, so results do not depend on the thread count.
inline constexpr std::int64_t kLayerNormChunkRows = 32;

/// Elements of `partials` layernorm_backward needs for N rows of C channels.
inline std::int64_t layernorm_backward_partials(std::int64_t N, std::int64_t C) {
    return 2 * C * ((N + kLayerNormChunkRows - 1) / kLayerNormChunkRows);
}

template <class T>
void layernorm_backward(T* dinp, T* dweight, T* dbias, T* partials, const T* dout, const T* inp,
                        const T* weight, const T* mean, const T* rstd, std::int64_t N,
                        std::int64_t C) {
    const std::int64_t chunks = (N + kLayerNormChunkRows - 1) / kLayerNormChunkRows;
    detail::parallel_for(
        chunks, [&](std::int64_t chunk) NANOGPT_ALWAYS_INLINE {
            T* dw = partials + chunk * 2 * C;
            T* db = dw + C;
            for (std::int64_t c = 0; c < 2 * C; ++c) dw[c] = T(0);
            const std::int64_t r1 = std::min(N, (chunk + 1) * kLayerNormChunkRows);
            for (std::int64_t r = chunk * kLayerNormChunkRows; r < r1; ++r) {
                const T* x = inp + r * C;
                const T* dy = dout + r * C;
                const T m = mean[r], s = rstd[r];
                for (std::int64_t c = 0; c < C; ++c) {
                    dw[c] += dy[c] * (x[c] - m) * s;
                    db[c] += dy[c];
                }
                if (dinp == nullptr) continue;
                const T g_mean =
                    detail::sum_of<T>(C, [&](std::int64_t c) { return dy[c] * weight[c]; }) /
                    static_cast<T>(C);
                const T gx_mean =
                    detail::sum_of<T>(
                        C, [&](std::int64_t c) { return dy[c] * weight[c] * (x[c] - m) * s; }) /
                    static_cast<T>(C);
                T* dx = dinp + r * C;
                for (std::int64_t c = 0; c < C; ++c) {
                    const T xhat = (x[c] - m) * s;
                    dx[c] += s * (dy[c] * weight[c] - g_mean - xhat * gx_mean);
                }
            }
        });
    if (dweight == nullptr && dbias == nullptr) return;
    const std::int64_t blocks = (C + detail::kChannelBlock - 1) / detail::kChannelBlock;
    detail::parallel_for(
        blocks, [&](std::int64_t blk) NANOGPT_ALWAYS_INLINE {
            const std::int64_t c0 = blk * detail::kChannelBlock,
                               c1 = std::min(C, c0 + detail::kChannelBlock);
            for (std::int64_t chunk = 0; chunk < chunks; ++chunk) {
                const T* dw = partials + chunk * 2 * C;
                for (std::int64_t c = c0; c < c1; ++c) {
                    if (dweight != nullptr) dweight[c] += dw[c];
                    if (dbias != nullptr) dbias[c] += dw[C + c];
                }
            }
        });
}

}  // namespace kernels

/// Layer normalisation over the last dimension; bias may be an empty tensor (GPTConfig::bias =
/// false).
template <class T>
Tensor<T> layernorm(const Tensor<T>& x, const Tensor<T>& weight,
                    const Tensor<T>& bias = Tensor<T>()) {
    detail::require_defined(x, "layernorm", "x");
    const std::int64_t C = x.size(-1), N = x.shape().rows();
    detail::require(weight.dim() == 1 && weight.size(0) == C, "layernorm", [&] {
        return std::string("weight " + weight.shape().to_string() + " does not match input " +
                           x.shape().to_string());
    });
    detail::require(!bias.defined() || bias.shape() == weight.shape(), "layernorm", [&] {
        return std::string("bias " + bias.shape().to_string() + " does not match weight " +
                           weight.shape().to_string());
    });
    const bool has_bias = bias.defined();
    const bool needs_grad =
        detail::any_requires_grad(x, weight) || (has_bias && detail::any_requires_grad(bias));
    Tensor<T> out = Tensor<T>::graph_output(x.shape(), needs_grad);
    Tensor<T> stats = Tensor<T>::graph_output(Shape{2, N}, false);  // row means, then row 1/std
    T* mean = stats.data();
    T* rstd = mean + N;
    kernels::layernorm_forward(out.data(), mean, rstd, x.data(), weight.data(),
                               has_bias ? bias.data() : nullptr, N, C);
    if (out.requires_grad()) {
        Tape::current().record(
            "layernorm", {x, weight, bias}, [out, x, weight, bias, has_bias, mean, rstd, N, C] {
                const auto partials_bytes =
                    static_cast<std::size_t>(kernels::layernorm_backward_partials(N, C)) *
                    sizeof(T);
                T* partials = static_cast<T*>(Tape::current().backward_scratch(partials_bytes));
                kernels::layernorm_backward(x.grad(), weight.grad(),
                                            has_bias ? bias.grad() : nullptr, partials, out.grad(),
                                            x.data(), weight.data(), mean, rstd, N, C);
            });
    }
    return out;
}

}  // namespace nanogpt
