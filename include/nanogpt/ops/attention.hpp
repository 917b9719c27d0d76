// ops/attention.hpp — softmax (optionally causal) and causal self-attention, twice.
//
// Both forms take the fused projection qkv [B, T, 3C] (q, k, v side by side, heads of
// hs = C / NH channels inside each) and return y [B, T, C] with the heads merged again.
// composed_causal_self_attention is nanoGPT's form, head by head from public ops:
//   att = softmax(causal_mask(q @ k^T / sqrt(hs))); y = att @ v
// It is the one to read, and the reference the tests hold the fused kernel to.
// causal_self_attention computes the same in one op without split or merge copies, and keeps
// two numbers per row for the backward instead of the [B, NH, T, T] weights.
// Read next: ops/embedding.hpp.
#pragma once

#include <algorithm>  // std::fill, std::max, std::min
#include <cmath>      // std::sqrt
#include <cstdint>    // std::int64_t, std::uint64_t
#include <limits>     // std::numeric_limits

#include <nanogpt/detail/cpu_features.hpp>  // NANOGPT_ALWAYS_INLINE
#include <nanogpt/detail/fast_math.hpp>
#include <nanogpt/detail/gemm.hpp>
#include <nanogpt/dtype.hpp>  // matmul_dtype: a backward runs in its forward's dtype
#include <nanogpt/detail/op_support.hpp>
#include <nanogpt/detail/parallel.hpp>
#include <nanogpt/detail/reduce.hpp>
#include <nanogpt/ops/elementwise.hpp>
#include <nanogpt/ops/matmul.hpp>
#include <nanogpt/ops/shape.hpp>
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
        const T maxv = detail::max_of(visible, x);
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
        Tape::current().record("softmax", {x}, [out, x, rows, C] {
            kernels::softmax_backward(x.grad(), out.data(), out.grad(), rows, C);
        });
    }
    return out;
}

// ---- composed_causal_self_attention ----
// Attention as nanoGPT writes it, every step an op of its own on the tape. For the reference
// GPT (C = 768, NH = 12, hs = 64, T = 512) each head sees all 512 positions through 64 channels,
// so its q k^T is 512 x 512: the scores, their scaled copy and the softmax weights are each
// B x 12 x 512 x 512 floats (12.6 MB per sequence) in every layer, and all three stay on the
// tape for the backward, beside the copies that split and merge the heads. That memory is why
// causal_self_attention below exists.

/// Causal multi-head self-attention from public ops: qkv [B, T, 3C] -> y [B, T, C].
/// Dropout with probability p (and its seed) applies to the attention weights, with the same
/// mask as causal_self_attention's for the same seed.
template <class T>
Tensor<T> composed_causal_self_attention(const Tensor<T>& qkv, std::int64_t n_head, double p = 0.0,
                                         std::uint64_t seed = 0) {
    detail::require_defined(qkv, "composed_causal_self_attention", "qkv");
    detail::require(qkv.dim() == 3 && qkv.size(2) % 3 == 0, "composed_causal_self_attention", [&] {
        return std::string("qkv must be [B, T, 3C], got " + qkv.shape().to_string());
    });
    const std::int64_t B = qkv.size(0), T_ = qkv.size(1), C = qkv.size(2) / 3;
    detail::require(n_head > 0 && C % n_head == 0, "composed_causal_self_attention", [&] {
        return std::string("C = " + std::to_string(C) +
                           " is not divisible by n_head = " + std::to_string(n_head));
    });
    const std::int64_t hs = C / n_head;
    // Split: q, k, v are the thirds of the last dimension; each splits into n_head heads of hs
    // channels, and the transpose puts the head before the position so that every head is one
    // (T, hs) matrix.
    const auto head_view = [&](std::int64_t part) {
        const Tensor<T> third = slice_last(qkv, part * C, C);             // (B, T, C)
        return transpose(third.reshape(Shape{B, T_, n_head, hs}), 1, 2);  // (B, nh, T, hs)
    };
    const Tensor<T> q = head_view(0), k = head_view(1), v = head_view(2);  // (B, nh, T, hs)
    const T inv_sqrt_hs = T(1) / std::sqrt(static_cast<T>(hs));
    const Tensor<T> scores = scale(matmul(q, k, false, true), inv_sqrt_hs);  // (B, nh, T, T)
    Tensor<T> att = softmax(scores, /*causal=*/true);    // (B, nh, T, T), row t sees 0..t
    if (p > 0.0) att = dropout(att, p, seed);            // (B, nh, T, T)
    const Tensor<T> y = matmul(att, v);                  // (B, nh, T, hs)
    return transpose(y, 1, 2).reshape(Shape{B, T_, C});  // (B, T, nh, hs) -> (B, T, C)
}

// ---- causal_self_attention ----
// For batch b, head h, position t: s[t2] = q_t . k_t2 / sqrt(hs) for t2 <= t, p = softmax(s),
// y_t = sum_t2 p'[t2] v_t2 with p' = p after dropout. The backward per row computes
// dp' = dy_t . v_t2, dv_t2 += p' dy_t, ds = p * (dp - sum(p dp)) and then
// dq_t += ds k_t2 / sqrt(hs), dk_t2 += ds q_t / sqrt(hs).
//
// What is kept for the backward: per row only the softmax statistics, the max m_t of the raw
// scores and 1 / sum_t2 exp(...), in stats [B, NH, T, 2]. The weights p themselves would be
// [B, NH, T, T], the one activation that grows with T^2: 600 MB for GPT-2 124M at batch 4,
// block 512, a fifth of all activations and their gradients. The backward instead recomputes
// s = q k^T and then p from the statistics, with the same operations in the same order as the
// forward, so its p is bitwise the forward's; the dropout mask, a hash of (seed, element
// index), is recomputed too. The price is one more q k^T product and its exps, a sixth more
// attention flops. (FlashAttention's trick without its online softmax: on a CPU a whole row of
// scores fits in cache, so the softmax stays the plain two-pass one.)
// Work is split by (b, h): each head owns its columns of dqkv, so threads never collide.

namespace kernels {

struct AttentionDims {
    std::int64_t B, T, C, NH;
    double dropout;      // probability applied to the attention weights (0: none)
    std::uint64_t seed;  // dropout mask seed
};

// The plain twins, per row and per element. They keep the full weights att [B, NH, T, T]: they
// only serve as the tests' reference, where clarity beats memory.

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

/// att: the weights from attention_forward_reference; scratch: B * NH * T elements.
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

// The fast twins: the same arithmetic, with the products of each head done by gemm on strided
// views of qkv (leading dimension 3C), so nothing is copied. Query rows are taken in blocks of
// attention_rows(T); for a block r0 .. r0+rows-1 (keys = r0 + rows):
//   forward:  S = Q K^T (rows x keys), P = causal softmax(S / sqrt(hs)) -> stats, Y = P' V;
//   backward: S = Q K^T, P from stats, dP' = dY V^T, dV += P'^T dY,
//             dS = P * (dP - rowsum(P dP)) / sqrt(hs), dQ += dS K, dK += dS^T Q.
// A block only multiplies against keys 0 .. keys-1, which leaves out most of the masked upper
// triangle (about half the flops for long contexts), and its scores, rows x T floats, stay in
// cache between the products. The heads are dealt out in contiguous runs to `workers` (one per
// thread); worker w uses slice w of the workspace. Slicing by worker rather than by OpenMP
// thread id keeps it correct however workers map onto threads (nested regions included), and
// each head's result does not depend on which worker ran it.
// The workers' bodies are always_inline so that parallel_for's AVX-512 / AVX2 copy of them
// really contains the softmax loops: left as a call, the lambda is compiled for the baseline
// SSE2 target and its exp, max and sum loops run unvectorised.

/// Query rows per block. Every block re-packs keys 0 .. keys-1 for each product (per head a cost
/// ~ T^2 / rows) and computes the masked half of its diagonal square (~ T x rows), so the best
/// block grows like sqrt(T): doubling it each time T quadruples gives the measured optimum at
/// T = 64 (28 rows), 256 and 512 (56), 1024 (112). Multiples of 14, the AVX-512 micro-kernel's
/// tile height, so the row products carry no padding rows (64 rows cost 70).
inline std::int64_t attention_rows(std::int64_t T) {
    std::int64_t rows = 28;
    for (std::int64_t reach = 256; reach <= T; reach *= 4) rows *= 2;
    return std::min(rows, T);
}

inline std::int64_t attention_workers(const AttentionDims& d) {
    return std::max<std::int64_t>(1, std::min<std::int64_t>(detail::max_threads(), d.B * d.NH));
}

/// Elements of one worker's row-block buffer (rows x T).
inline std::int64_t attention_block_size(const AttentionDims& d) {
    return attention_rows(d.T) * d.T;
}

/// Workspace elements the forward (S / P': one block per worker) or the backward (P and dS, and
/// P' when there is dropout) needs: O(threads x T), never B x NH x T x T.
inline std::int64_t attention_workspace_size(const AttentionDims& d, bool backward) {
    const std::int64_t blocks = !backward ? 1 : d.dropout > 0.0 ? 3 : 2;
    return attention_workers(d) * blocks * attention_block_size(d);
}

/// Index of element (bh, t, 0) in [B, NH, T, T]: the dropout mask of element (bh, t, t2) is
/// dropout_keep(seed, that + t2), a hash, so every pass agrees without storing it.
inline std::uint64_t attention_mask_index(std::int64_t bh, std::int64_t t, const AttentionDims& d) {
    return static_cast<std::uint64_t>((bh * d.T + t) * d.T);
}

/// stats: B * NH * T * 2 elements, (max of the scores, 1 / sum of the exps) per row;
/// workspace: attention_workspace_size(d, false) elements.
template <class T>
void attention_forward(T* out, T* stats, T* workspace, const T* qkv, const AttentionDims& d) {
    const std::int64_t T_ = d.T, C = d.C, hs = C / d.NH, C3 = 3 * C;
    const std::int64_t heads = d.B * d.NH, workers = attention_workers(d),
                       block_rows = attention_rows(T_);
    const T scale = T(1) / std::sqrt(static_cast<T>(hs));
    const T keep_scale = static_cast<T>(1.0 / (1.0 - d.dropout));
    const auto run_worker = [&](std::int64_t w) NANOGPT_ALWAYS_INLINE {
        T* p = workspace + w * attention_block_size(d);  // (rows, T): S, then P, then P'
        for (std::int64_t bh = heads * w / workers; bh < heads * (w + 1) / workers; ++bh) {
            const std::int64_t b = bh / d.NH, h = bh % d.NH;
            const T* q = qkv + b * T_ * C3 + h * hs;  // k = q + C, v = q + 2C
            for (std::int64_t r0 = 0; r0 < T_; r0 += block_rows) {
                const std::int64_t rows = std::min(block_rows, T_ - r0), keys = r0 + rows;
                gemm(false, true, rows, keys, hs, q + r0 * C3, C3, q + C, C3, p, T_,
                     false);  // S = Q K^T
                for (std::int64_t t = r0; t < keys; ++t) {
                    T* row = p + (t - r0) * T_;
                    const T maxv = detail::max_of(t + 1, row);
                    const T total = detail::sum_of<T>(t + 1, [&](std::int64_t t2) {
                        return row[t2] = detail::exp_fast((row[t2] - maxv) * scale);
                    });
                    const T inv = T(1) / total;
                    for (std::int64_t t2 = 0; t2 <= t; ++t2) row[t2] *= inv;
                    stats[2 * (bh * T_ + t)] = maxv;
                    stats[2 * (bh * T_ + t) + 1] = inv;
                    if (d.dropout > 0.0) {
                        const std::uint64_t first = attention_mask_index(bh, t, d);
                        for (std::int64_t t2 = 0; t2 <= t; ++t2)
                            row[t2] = dropout_keep(d.seed, first + t2, d.dropout)
                                          ? row[t2] * keep_scale
                                          : T(0);
                    }
                    std::fill(row + t + 1, row + keys, T(0));  // the masked part of the block
                }
                gemm(false, false, rows, hs, keys, p, T_, q + 2 * C, C3,
                     out + (b * T_ + r0) * C + h * hs, C, false);  // Y = P' V
            }
        }
    };
    detail::parallel_for(workers, run_worker);
}

/// stats: from attention_forward; workspace: attention_workspace_size(d, true) elements.
template <class T>
void attention_backward(T* dqkv, T* workspace, const T* dout, const T* qkv, const T* stats,
                        const AttentionDims& d) {
    const std::int64_t T_ = d.T, C = d.C, hs = C / d.NH, C3 = 3 * C;
    const std::int64_t heads = d.B * d.NH, workers = attention_workers(d),
                       block_rows = attention_rows(T_);
    const std::int64_t block = attention_block_size(d),
                       per_worker = (d.dropout > 0.0 ? 3 : 2) * block;
    const T scale = T(1) / std::sqrt(static_cast<T>(hs));
    const T keep_scale = static_cast<T>(1.0 / (1.0 - d.dropout));
    const auto run_worker = [&](std::int64_t w) NANOGPT_ALWAYS_INLINE {
        T* p = workspace + w * per_worker;              // (rows, T): P
        T* ds = p + block;                              // (rows, T): dP', then dS
        T* dropped = d.dropout > 0.0 ? ds + block : p;  // (rows, T): P'
        for (std::int64_t bh = heads * w / workers; bh < heads * (w + 1) / workers; ++bh) {
            const std::int64_t b = bh / d.NH, h = bh % d.NH;
            const T* q = qkv + b * T_ * C3 + h * hs;  // k = q + C, v = q + 2C
            T* dq = dqkv + b * T_ * C3 + h * hs;      // dk = dq + C, dv = dq + 2C
            const T* dy = dout + b * T_ * C + h * hs;
            for (std::int64_t r0 = 0; r0 < T_; r0 += block_rows) {
                const std::int64_t rows = std::min(block_rows, T_ - r0), keys = r0 + rows;
                gemm(false, true, rows, keys, hs, q + r0 * C3, C3, q + C, C3, p, T_,
                     false);  // S = Q K^T, the forward's very call
                gemm(false, true, rows, keys, hs, dy + r0 * C, C, q + 2 * C, C3, ds, T_,
                     false);  // dP' = dY V^T
                for (std::int64_t t = r0; t < keys; ++t) {
                    T* row = p + (t - r0) * T_;
                    T* drow = ds + (t - r0) * T_;
                    T* prow = dropped + (t - r0) * T_;
                    // P from the statistics: the forward's operations, hence its exact values.
                    const T maxv = stats[2 * (bh * T_ + t)], inv = stats[2 * (bh * T_ + t) + 1];
                    for (std::int64_t t2 = 0; t2 <= t; ++t2)
                        row[t2] = detail::exp_fast((row[t2] - maxv) * scale) * inv;
                    if (d.dropout > 0.0) {
                        const std::uint64_t first = attention_mask_index(bh, t, d);
                        for (std::int64_t t2 = 0; t2 <= t; ++t2) {
                            // One mask lookup gives P' and dP = dP' * mask / (1 - dropout).
                            const bool keep = dropout_keep(d.seed, first + t2, d.dropout);
                            prow[t2] = keep ? row[t2] * keep_scale : T(0);
                            drow[t2] = keep ? drow[t2] * keep_scale : T(0);
                        }
                    }
                    // A pass of its own: fused into the recompute of P above, the stores to P
                    // between loads of dP (which might alias, for all the compiler knows) keep
                    // the loop from vectorising.
                    const T dot = detail::sum_of<T>(
                        t + 1, [&](std::int64_t t2) { return row[t2] * drow[t2]; });  // sum p dp
                    for (std::int64_t t2 = 0; t2 <= t; ++t2)
                        drow[t2] = row[t2] * (drow[t2] - dot) * scale;
                    std::fill(row + t + 1, row + keys, T(0));  // the masked part of the block
                    std::fill(drow + t + 1, drow + keys, T(0));
                    if (d.dropout > 0.0) std::fill(prow + t + 1, prow + keys, T(0));
                }
                gemm(true, false, keys, hs, rows, dropped, T_, dy + r0 * C, C, dq + 2 * C, C3,
                     true);  // dV += P'^T dY
                gemm(false, false, rows, hs, keys, ds, T_, q + C, C3, dq + r0 * C3, C3,
                     true);  // dQ += dS K
                gemm(true, false, keys, hs, rows, ds, T_, q + r0 * C3, C3, dq + C, C3,
                     true);  // dK += dS^T Q
            }
        }
    };
    detail::parallel_for(workers, run_worker);
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
    Tensor<T> stats = Tensor<T>::graph_output(Shape{B, n_head, T_, 2}, false);  // for backward
    Tensor<T> workspace =  // a few row blocks per thread; graph memory, so steady state is free
        Tensor<T>::graph_output(Shape{kernels::attention_workspace_size(d, false)}, false);
    kernels::attention_forward(out.data(), stats.data(), workspace.data(), qkv.data(), d);
    if (out.requires_grad()) {
        Tape::current().record("causal_self_attention", {qkv}, [out, qkv, stats, d,
                                                                  dtype = matmul_dtype()] {
            MatmulDtypeScope scope(dtype);  // q k^T and the weights x v in the forward's dtype
            const auto n = static_cast<std::size_t>(kernels::attention_workspace_size(d, true));
            T* scratch = static_cast<T*>(Tape::current().backward_scratch(n * sizeof(T)));
            kernels::attention_backward(qkv.grad(), scratch, out.grad(), qkv.data(), stats.data(),
                                        d);
        });
    }
    return out;
}

}  // namespace nanogpt
