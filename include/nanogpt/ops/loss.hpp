// ops/loss.hpp — cross-entropy over logits with integer targets, fused with the softmax:
// loss = mean over positions with target != -1 of (logsumexp(logits) - logits[target]).
// The forward keeps only each row's logsumexp; the backward rebuilds the probabilities from the
// logits, so no [N, V] probability matrix is stored. Read next: parameters.hpp.
#pragma once

#include <algorithm>  // std::max
#include <cmath>      // std::log
#include <cstdint>    // std::int64_t, std::int32_t
#include <stdexcept>  // std::out_of_range
#include <string>     // std::to_string

#include <nanogpt/detail/cpu_features.hpp>  // NANOGPT_ALWAYS_INLINE
#include <nanogpt/detail/fast_math.hpp>
#include <nanogpt/detail/op_support.hpp>
#include <nanogpt/detail/parallel.hpp>
#include <nanogpt/detail/reduce.hpp>
#include <nanogpt/tensor.hpp>

namespace nanogpt {

// ---- cross_entropy ----
// logits [N, V] (any leading shape), targets [N] in [0, V) or -1 (ignored).
// dlogits[n, v] += (softmax(logits[n])[v] - [v == target]) * dloss / count.

namespace kernels {
/// Writes per-row logsumexp and per-row loss (0 for ignored rows).
template <class T>
void cross_entropy_forward(T* lse, T* row_loss, const T* logits, const std::int32_t* targets,
                           std::int64_t N, std::int64_t V) {
    detail::parallel_for(
        N, [&](std::int64_t n) NANOGPT_ALWAYS_INLINE {
            const T* x = logits + n * V;
            const T maxv = detail::max_of(V, x);
            const T total =
                detail::sum_of<T>(V, [&](std::int64_t v) { return detail::exp_fast(x[v] - maxv); });
            lse[n] = maxv + std::log(total);
            row_loss[n] = targets[n] < 0 ? T(0) : lse[n] - x[targets[n]];
        });
}
template <class T>
void cross_entropy_backward(T* dlogits, const T* logits, const T* lse, const std::int32_t* targets,
                            T dloss_per_row, std::int64_t N, std::int64_t V) {
    detail::parallel_for(
        N, [&](std::int64_t n) NANOGPT_ALWAYS_INLINE {
            if (targets[n] < 0) return;  // ignored position: no gradient
            const T* x = logits + n * V;
            T* dx = dlogits + n * V;
            for (std::int64_t v = 0; v < V; ++v)
                dx[v] += detail::exp_fast(x[v] - lse[n]) * dloss_per_row;
            dx[targets[n]] -= dloss_per_row;
        });
}
}  // namespace kernels

/// Mean cross-entropy of logits [..., V] against targets [...] (-1 = ignore), as a [1] tensor.
template <class T>
Tensor<T> cross_entropy(const Tensor<T>& logits, const Tensor<std::int32_t>& targets) {
    detail::require_defined(logits, "cross_entropy", "logits");
    detail::require(
        targets.defined() && targets.numel() == logits.shape().rows() && logits.dim() >= 1,
        "cross_entropy", [&] {
            return std::string("targets " + targets.shape().to_string() + " do not match logits " +
                               logits.shape().to_string());
        });
    const std::int64_t V = logits.size(-1), N = logits.shape().rows();
    const std::int32_t* tgt = targets.data();
    std::int64_t count = 0;
    for (std::int64_t n = 0; n < N; ++n) {
        if (tgt[n] == -1) continue;
        if (tgt[n] < 0 || tgt[n] >= V) {
            throw std::out_of_range("cross_entropy: target " + std::to_string(tgt[n]) +
                                    " at position " + std::to_string(n) + " is outside [0, " +
                                    std::to_string(V) + ") and not -1");
        }
        ++count;
    }
    detail::require(count > 0, "cross_entropy", [&] {
        return std::string("every target is -1 (ignored); the mean is undefined");
    });
    Tensor<T> out = Tensor<T>::graph_output(Shape{1}, detail::any_requires_grad(logits));
    Tensor<T> stats = Tensor<T>::graph_output(Shape{2, N}, false);  // row logsumexp, then row loss
    T* lse = stats.data();
    T* row_loss = lse + N;
    kernels::cross_entropy_forward(lse, row_loss, logits.data(), tgt, N, V);
    double total = 0.0;  // serial, in double: the same sum for any thread count
    for (std::int64_t n = 0; n < N; ++n) total += static_cast<double>(row_loss[n]);
    out.data()[0] = static_cast<T>(total / static_cast<double>(count));
    if (out.requires_grad()) {
        Tape::current().record(
            "cross_entropy", {logits, targets}, [out, logits, targets, lse, N, V, count] {
                const T dloss_per_row = out.grad()[0] / static_cast<T>(count);
                kernels::cross_entropy_backward(logits.grad(), logits.data(), lse, targets.data(),
                                                dloss_per_row, N, V);
            });
    }
    return out;
}

}  // namespace nanogpt
