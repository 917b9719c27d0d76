// ops/attention.hpp — softmax (optionally causal) and fused causal self-attention.
//
// causal_self_attention takes the fused projection qkv [B, T, 3C] (q, k, v side by side, heads
// of hs = C / NH channels inside each) and returns y [B, T, C] with the heads already merged, so
// no split or merge copies are made. It equals the composed nanoGPT form
//   att = softmax(causal_mask(q @ k^T / sqrt(hs))); y = att @ v
// built from matmul, scale, softmax and transpose, which tests use as its reference twin.
// Read next: ops/embedding.hpp.
#pragma once

#include <algorithm>  // std::max
#include <cmath>      // std::sqrt
#include <cstdint>    // std::int64_t, std::uint64_t
#include <limits>     // std::numeric_limits

#include <nanogpt/detail/fast_math.hpp>
#include <nanogpt/detail/gemm.hpp>
#include <nanogpt/detail/op_support.hpp>
#include <nanogpt/detail/parallel.hpp>
#include <nanogpt/detail/reduce.hpp>
#include <nanogpt/ops/elementwise.hpp>
#include <nanogpt/tensor.hpp>

namespace nanogpt {

// ---- softmax ----
// y[r, j] = exp(x[r, j] - max_r) / sum_j' exp(x[r, j'] - max_r) over the last dimension.
// Causal: x is [..., T, T] and row t only sees columns j <= t (the rest of y is 0).
// Backward: dx = y * (dy - sum_j y dy).

namespace kernels {
template <class T>
void softmax_forward(T* out, const T* inp, std::int64_t rows, std::int64_t C, bool causal) {
    detail::parallel_for(rows, [&](std::int64_t r) {
        const std::int64_t visible = causal ? (r % C) + 1 : C;  // causal rows: t = r mod T
        const T* x = inp + r * C;
        T* y = out + r * C;
        T maxv = -std::numeric_limits<T>::infinity();
        for (std::int64_t j = 0; j < visible; ++j) maxv = std::max(maxv, x[j]);
        T total = 0;
        for (std::int64_t j = 0; j < visible; ++j) {
            y[j] = detail::exp_fast(x[j] - maxv);  // subtracting the max keeps exp from overflowing
            total += y[j];
        }
        for (std::int64_t j = 0; j < visible; ++j) y[j] /= total;
        for (std::int64_t j = visible; j < C; ++j) y[j] = 0;
    });
}
template <class T>
void softmax_backward(T* dinp, const T* out, const T* dout, std::int64_t rows, std::int64_t C) {
    detail::parallel_for(rows, [&](std::int64_t r) {
        const T* y = out + r * C;
        const T* dy = dout + r * C;
        const T dot = detail::sum_of<T>(C, [&](std::int64_t j) { return y[j] * dy[j]; });
        for (std::int64_t j = 0; j < C; ++j) dinp[r * C + j] += y[j] * (dy[j] - dot);
    });
}
}  // namespace kernels

/// Softmax over the last dimension; with causal = true, x must be [..., T, T] and is masked so
/// row t attends to columns 0..t only.
template <class T>
Tensor<T> softmax(const Tensor<T>& x, bool causal = false) {
    detail::require_defined(x, "softmax", "x");
    detail::require(!causal || (x.dim() >= 2 && x.size(-1) == x.size(-2)), "softmax", [&] {
        return std::string("causal softmax needs [..., T, T], got " + x.shape().to_string());
    });
    const std::int64_t C = x.size(-1), rows = x.shape().rows();
    Tensor<T> out = Tensor<T>::graph_output(x.shape(), detail::any_requires_grad(x));
    kernels::softmax_forward(out.data(), x.data(), rows, C, causal);
    if (out.requires_grad()) {
        Tape::current().record("softmax", [out, x, rows, C] {
            kernels::softmax_backward(x.grad(), out.data(), out.grad(), rows, C);
        });
    }
    return out;
}

// ---- causal_self_attention ----
// For batch b, head h, position t: s[t2] = q_t . k_t2 / sqrt(hs) for t2 <= t, p = softmax(s),
// y_t = sum_t2 p'[t2] v_t2 with p' = p after dropout. p (before dropout) is kept in att
// [B, NH, T, T] for the backward, which per row computes dp' = dy_t . v_t2, dv_t2 += p' dy_t,
// ds = p * (dp - sum(p dp)) and then dq_t += ds k_t2 / sqrt(hs), dk_t2 += ds q_t / sqrt(hs).
// Work is split by (b, h): each task owns its head's columns of dqkv, so threads never collide.

namespace kernels {

struct AttentionDims {
    std::int64_t B, T, C, NH;
    double dropout;      // probability applied to the attention weights (0: none)
    std::uint64_t seed;  // dropout mask seed
};

template <class T>
void attention_forward_reference(T* out, T* att, const T* qkv, const AttentionDims& d) {
    const std::int64_t T_ = d.T, C = d.C, hs = C / d.NH, C3 = 3 * C;
    const T scale = T(1) / std::sqrt(static_cast<T>(hs));
    const T keep_scale = static_cast<T>(1.0 / (1.0 - d.dropout));
    detail::parallel_for(d.B * d.NH, [&](std::int64_t bh) {
        const std::int64_t b = bh / d.NH, h = bh % d.NH;
        const T* base = qkv + b * T_ * C3 + h * hs;
        for (std::int64_t t = 0; t < T_; ++t) {
            const T* q = base + t * C3;
            T* p = att + (bh * T_ + t) * T_;
            T maxv = -std::numeric_limits<T>::infinity();
            for (std::int64_t t2 = 0; t2 <= t; ++t2) {
                const T* k = base + t2 * C3 + C;
                T s = 0;
                for (std::int64_t i = 0; i < hs; ++i) s += q[i] * k[i];
                p[t2] = s * scale;
                maxv = std::max(maxv, p[t2]);
            }
            T total = 0;
            for (std::int64_t t2 = 0; t2 <= t; ++t2) {
                p[t2] = detail::exp_fast(p[t2] - maxv);
                total += p[t2];
            }
            for (std::int64_t t2 = 0; t2 <= t; ++t2) p[t2] /= total;
            for (std::int64_t t2 = t + 1; t2 < T_; ++t2) p[t2] = 0;
            T* y = out + (b * T_ + t) * C + h * hs;
            for (std::int64_t i = 0; i < hs; ++i) y[i] = 0;
            for (std::int64_t t2 = 0; t2 <= t; ++t2) {
                T w = p[t2];
                if (d.dropout > 0.0)
                    w = dropout_keep(d.seed, static_cast<std::uint64_t>((bh * T_ + t) * T_ + t2),
                                     d.dropout)
                            ? w * keep_scale
                            : T(0);
                const T* v = base + t2 * C3 + 2 * C;
                for (std::int64_t i = 0; i < hs; ++i) y[i] += w * v[i];
            }
        }
    });
}

/// scratch: B * NH * T elements of workspace.
template <class T>
void attention_backward_reference(T* dqkv, T* scratch, const T* dout, const T* qkv, const T* att,
                                  const AttentionDims& d) {
    const std::int64_t T_ = d.T, C = d.C, hs = C / d.NH, C3 = 3 * C;
    const T scale = T(1) / std::sqrt(static_cast<T>(hs));
    const T keep_scale = static_cast<T>(1.0 / (1.0 - d.dropout));
    detail::parallel_for(d.B * d.NH, [&](std::int64_t bh) {
        const std::int64_t b = bh / d.NH, h = bh % d.NH;
        const T* base = qkv + b * T_ * C3 + h * hs;
        T* dbase = dqkv + b * T_ * C3 + h * hs;
        T* dp = scratch + bh * T_;
        for (std::int64_t t = 0; t < T_; ++t) {
            const T* p = att + (bh * T_ + t) * T_;
            const T* dy = dout + (b * T_ + t) * C + h * hs;
            T dot = 0;  // sum_t2 p[t2] dp[t2]
            for (std::int64_t t2 = 0; t2 <= t; ++t2) {
                T drop = 1;
                if (d.dropout > 0.0)
                    drop = dropout_keep(d.seed, static_cast<std::uint64_t>((bh * T_ + t) * T_ + t2),
                                        d.dropout)
                               ? keep_scale
                               : T(0);
                const T* v = base + t2 * C3 + 2 * C;
                T* dv = dbase + t2 * C3 + 2 * C;
                T s = 0;
                for (std::int64_t i = 0; i < hs; ++i) {
                    s += dy[i] * v[i];
                    dv[i] += p[t2] * drop * dy[i];
                }
                dp[t2] = s * drop;
                dot += p[t2] * dp[t2];
            }
            const T* q = base + t * C3;
            T* dq = dbase + t * C3;
            for (std::int64_t t2 = 0; t2 <= t; ++t2) {
                const T ds = p[t2] * (dp[t2] - dot) * scale;
                const T* k = base + t2 * C3 + C;
                T* dk = dbase + t2 * C3 + C;
                for (std::int64_t i = 0; i < hs; ++i) {
                    dq[i] += ds * k[i];
                    dk[i] += ds * q[i];
                }
            }
        }
    });
}

// The fast twins: the same arithmetic, with the three products of each head done by gemm on
// strided views of qkv (leading dimension 3C), so nothing is copied. For each (b, h):
//   S = Q K^T (T x T), P = causal softmax(S / sqrt(hs)), Y = P' V;
//   backward: dP' = dY V^T, dV += P'^T dY, dS = P * (dP - rowsum(P dP)) / sqrt(hs),
//             dQ += dS K, dK += dS^T Q.
// Causality is used to skip work: rows are taken in blocks of kAttentionRows, and a block of
// rows r0 .. r0+rows-1 only multiplies against keys 0 .. r0+rows-1, which leaves out most of the
// masked upper triangle (about half the attention flops for long contexts).

inline constexpr std::int64_t kAttentionRows = 64;

/// The attention weights after dropout, P' = P * keep / (1 - p), for head bh into dst (T x T).
template <class T>
void attention_dropped_weights(T* dst, const T* p, std::int64_t bh, const AttentionDims& d) {
    const T keep_scale = static_cast<T>(1.0 / (1.0 - d.dropout));
    for (std::int64_t i = 0; i < d.T * d.T; ++i) {
        const auto index = static_cast<std::uint64_t>(bh * d.T * d.T + i);
        dst[i] = dropout_keep(d.seed, index, d.dropout) ? p[i] * keep_scale : T(0);
    }
}

/// dropped: B * NH * T * T elements of workspace, used only when d.dropout > 0.
template <class T>
void attention_forward(T* out, T* att, T* dropped, const T* qkv, const AttentionDims& d) {
    const std::int64_t T_ = d.T, C = d.C, hs = C / d.NH, C3 = 3 * C;
    const T scale = T(1) / std::sqrt(static_cast<T>(hs));
    detail::parallel_for(d.B * d.NH, [&](std::int64_t bh) {
        const std::int64_t b = bh / d.NH, h = bh % d.NH;
        const T* q = qkv + b * T_ * C3 + h * hs;
        T* p = att + bh * T_ * T_;
        for (std::int64_t r0 = 0; r0 < T_; r0 += kAttentionRows) {  // S = Q K^T, lower part
            const std::int64_t rows = std::min(kAttentionRows, T_ - r0), keys = r0 + rows;
            gemm(false, true, rows, keys, hs, q + r0 * C3, C3, q + C, C3, p + r0 * T_, T_, false);
        }
        for (std::int64_t t = 0; t < T_; ++t) {
            T* row = p + t * T_;
            T maxv = row[0];
            for (std::int64_t t2 = 1; t2 <= t; ++t2) maxv = std::max(maxv, row[t2]);
            for (std::int64_t t2 = 0; t2 <= t; ++t2)
                row[t2] = detail::exp_fast((row[t2] - maxv) * scale);
            const T inv = T(1) / detail::sum_of<T>(t + 1, [&](std::int64_t t2) { return row[t2]; });
            for (std::int64_t t2 = 0; t2 <= t; ++t2) row[t2] *= inv;
            for (std::int64_t t2 = t + 1; t2 < T_; ++t2) row[t2] = 0;
        }
        const T* weights = p;
        if (d.dropout > 0.0) {
            attention_dropped_weights(dropped + bh * T_ * T_, p, bh, d);
            weights = dropped + bh * T_ * T_;
        }
        for (std::int64_t r0 = 0; r0 < T_; r0 += kAttentionRows) {  // Y = P'V
            const std::int64_t rows = std::min(kAttentionRows, T_ - r0), keys = r0 + rows;
            gemm(false, false, rows, hs, keys, weights + r0 * T_, T_, q + 2 * C, C3,
                 out + (b * T_ + r0) * C + h * hs, C, false);
        }
    });
}

/// scratch: B * NH * T * T elements (twice that when d.dropout > 0).
template <class T>
void attention_backward(T* dqkv, T* scratch, const T* dout, const T* qkv, const T* att,
                        const AttentionDims& d) {
    const std::int64_t T_ = d.T, C = d.C, hs = C / d.NH, C3 = 3 * C, TT = T_ * T_;
    const T scale = T(1) / std::sqrt(static_cast<T>(hs));
    const T keep_scale = static_cast<T>(1.0 / (1.0 - d.dropout));
    detail::parallel_for(d.B * d.NH, [&](std::int64_t bh) {
        const std::int64_t b = bh / d.NH, h = bh % d.NH;
        const T* q = qkv + b * T_ * C3 + h * hs;
        T* dq = dqkv + b * T_ * C3 + h * hs;
        const T* dy = dout + b * T_ * C + h * hs;
        const T* p = att + bh * TT;
        T* ds = scratch + bh * TT;
        const T* weights = p;
        if (d.dropout > 0.0) {
            T* dropped = scratch + d.B * d.NH * TT + bh * TT;
            attention_dropped_weights(dropped, p, bh, d);
            weights = dropped;
        }
        for (std::int64_t r0 = 0; r0 < T_; r0 += kAttentionRows) {
            const std::int64_t rows = std::min(kAttentionRows, T_ - r0), keys = r0 + rows;
            gemm(false, true, rows, keys, hs, dy + r0 * C, C, q + 2 * C, C3, ds + r0 * T_, T_,
                 false);  // dP' = dY V^T
            gemm(true, false, keys, hs, rows, weights + r0 * T_, T_, dy + r0 * C, C, dq + 2 * C, C3,
                 true);  // dV += P'^T dY
            for (std::int64_t t = r0; t < r0 + rows; ++t) {
                T* row = ds + t * T_;
                const T* prow = p + t * T_;
                if (d.dropout > 0.0) {
                    for (std::int64_t t2 = 0; t2 <= t; ++t2) {
                        const auto index = static_cast<std::uint64_t>(bh * TT + t * T_ + t2);
                        row[t2] =
                            dropout_keep(d.seed, index, d.dropout) ? row[t2] * keep_scale : T(0);
                    }
                }
                const T dot =
                    detail::sum_of<T>(t + 1, [&](std::int64_t t2) { return prow[t2] * row[t2]; });
                for (std::int64_t t2 = 0; t2 <= t; ++t2)
                    row[t2] = prow[t2] * (row[t2] - dot) * scale;
                for (std::int64_t t2 = t + 1; t2 < keys; ++t2) row[t2] = 0;
            }
            gemm(false, false, rows, hs, keys, ds + r0 * T_, T_, q + C, C3, dq + r0 * C3, C3,
                 true);  // dQ += dS K
            gemm(true, false, keys, hs, rows, ds + r0 * T_, T_, q + r0 * C3, C3, dq + C, C3,
                 true);  // dK += dS^T Q
        }
    });
}

}  // namespace kernels

/// Multi-head causal self-attention on the fused projection qkv [B, T, 3C] -> y [B, T, C].
/// dropout (with its seed) applies to the attention weights; pass 0 outside training.
template <class T>
Tensor<T> causal_self_attention(const Tensor<T>& qkv, std::int64_t n_head, double dropout = 0.0,
                                std::uint64_t seed = 0) {
    detail::require_defined(qkv, "causal_self_attention", "qkv");
    detail::require(qkv.dim() == 3 && qkv.size(2) % 3 == 0, "causal_self_attention", [&] {
        return std::string("qkv must be [B, T, 3C], got " + qkv.shape().to_string());
    });
    const std::int64_t B = qkv.size(0), T_ = qkv.size(1), C = qkv.size(2) / 3;
    detail::require(n_head > 0 && C % n_head == 0, "causal_self_attention", [&] {
        return std::string("C = " + std::to_string(C) +
                           " is not divisible by n_head = " + std::to_string(n_head));
    });
    detail::require(dropout >= 0.0 && dropout < 1.0, "causal_self_attention", [&] {
        return std::string("dropout must be in [0, 1), got " + std::to_string(dropout));
    });
    const kernels::AttentionDims d{B, T_, C, n_head, dropout, seed};
    Tensor<T> out = Tensor<T>::graph_output(Shape{B, T_, C}, detail::any_requires_grad(qkv));
    Tensor<T> att =
        Tensor<T>::graph_output(Shape{B, n_head, T_, T_}, false);  // P, kept for backward
    const std::int64_t copies = dropout > 0.0 ? 1 : 0;
    Tensor<T> dropped = Tensor<T>::graph_output(Shape{copies * B * n_head, T_, T_}, false);
    kernels::attention_forward(out.data(), att.data(), dropped.data(), qkv.data(), d);
    if (out.requires_grad()) {
        Tape::current().record("causal_self_attention", [out, qkv, att, d, copies] {
            const auto n = static_cast<std::size_t>((1 + copies) * d.B * d.NH * d.T * d.T);
            T* scratch = static_cast<T*>(Tape::current().backward_scratch(n * sizeof(T)));
            kernels::attention_backward(qkv.grad(), scratch, out.grad(), qkv.data(), att.data(), d);
        });
    }
    return out;
}

}  // namespace nanogpt
