// ops/matmul.hpp — batched matrix multiply (with the transposed-operand forms attention needs)
// and linear (x @ W^T + b, the op behind every Linear layer). Both lower to kernels::gemm, which
// picks the fast float micro-kernel at run time (detail/gemm.hpp). Read next: ops/shape.hpp.
#pragma once

#include <algorithm>  // std::max
#include <cstdint>    // std::int64_t

#include <nanogpt/detail/cpu_features.hpp>  // NANOGPT_ALWAYS_INLINE
#include <nanogpt/detail/gemm.hpp>
#include <nanogpt/dtype.hpp>  // matmul_dtype: a backward runs in its forward's dtype
#include <nanogpt/detail/op_support.hpp>
#include <nanogpt/detail/parallel.hpp>
#include <nanogpt/ops/elementwise.hpp>
#include <nanogpt/tensor.hpp>

namespace nanogpt {

// ---- matmul ----
// C = op(A) op(B) for each batch index, op(X) = X or X^T on the last two dimensions.
// A: [..., M, K] (or [..., K, M] when trans_a), B: [..., K, N] (or [..., N, K] when trans_b)
// with the same leading dimensions as A, or 2-D and shared by every batch. C: [..., M, N].
// Backward, from dC: d op(A) = dC op(B)^T and d op(B) = op(A)^T dC; the transposes of a stored
// operand fold into the gemm flags, so no transposed copy is ever made.

namespace kernels {

struct MatmulDims {
    std::int64_t batch, M, N, K;
    bool trans_a, trans_b, b_shared;  // b_shared: one B for all batches
};

template <class T>
void matmul_forward(T* C, const T* A, const T* B, const MatmulDims& d) {
    const std::int64_t lda = d.trans_a ? d.M : d.K, ldb = d.trans_b ? d.K : d.N;
    const std::int64_t b_stride = d.b_shared ? 0 : d.K * d.N;
    // Many small products (attention heads) run one per thread; big ones thread inside gemm.
    detail::parallel_for(d.batch, [&](std::int64_t i) {
        gemm(d.trans_a, d.trans_b, d.M, d.N, d.K, A + i * d.M * d.K, lda, B + i * b_stride, ldb,
             C + i * d.M * d.N, d.N, false);
    });
}

template <class T>
void matmul_backward(T* dA, T* dB, const T* A, const T* B, const T* dC, const MatmulDims& d) {
    const std::int64_t M = d.M, N = d.N, K = d.K;
    const std::int64_t lda = d.trans_a ? M : K, ldb = d.trans_b ? K : N;
    const std::int64_t b_stride = d.b_shared ? 0 : K * N;
    if (dA != nullptr) {
        detail::parallel_for(d.batch, [&](std::int64_t i) {
            const T* Bi = B + i * b_stride;
            const T* dCi = dC + i * M * N;
            T* dAi = dA + i * M * K;
            if (!d.trans_a)  // dA[M,K] = dC[M,N] op(B)^T
                gemm(false, !d.trans_b, M, K, N, dCi, N, Bi, ldb, dAi, K, true);
            else  // dA[K,M] = op(B)[K,N] dC^T
                gemm(d.trans_b, true, K, M, N, Bi, ldb, dCi, N, dAi, M, true);
        });
    }
    if (dB != nullptr) {
        auto one = [&](std::int64_t i) {
            const T* Ai = A + i * M * K;
            const T* dCi = dC + i * M * N;
            T* dBi = dB + i * b_stride;
            if (!d.trans_b)  // dB[K,N] = op(A)^T dC
                gemm(!d.trans_a, false, K, N, M, Ai, lda, dCi, N, dBi, N, true);
            else  // dB[N,K] = dC^T op(A)
                gemm(true, d.trans_a, N, K, M, dCi, N, Ai, lda, dBi, K, true);
        };
        if (d.b_shared) {  // every batch adds into the same dB: keep them in order
            for (std::int64_t i = 0; i < d.batch; ++i) one(i);
        } else {
            detail::parallel_for(d.batch, one);
        }
    }
}

}  // namespace kernels

/// Batched matrix product op(a) @ op(b) over the last two dimensions (see above for shapes).
template <class T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b, bool trans_a = false,
                 bool trans_b = false) {
    detail::require_defined(a, "matmul", "a");
    detail::require_defined(b, "matmul", "b");
    detail::require(a.dim() >= 2 && b.dim() >= 2, "matmul", [&] {
        return std::string("needs at least 2 dimensions, got " + a.shape().to_string() + " and " +
                           b.shape().to_string());
    });
    kernels::MatmulDims d{};
    d.trans_a = trans_a;
    d.trans_b = trans_b;
    d.M = trans_a ? a.size(-1) : a.size(-2);
    d.K = trans_a ? a.size(-2) : a.size(-1);
    const std::int64_t kb = trans_b ? b.size(-1) : b.size(-2);
    d.N = trans_b ? b.size(-2) : b.size(-1);
    d.batch = a.numel() / std::max<std::int64_t>(1, a.size(-1) * a.size(-2));
    d.b_shared = b.dim() == 2 && a.dim() > 2;
    bool same_batch = d.b_shared || a.dim() == b.dim();
    for (int i = 0; same_batch && !d.b_shared && i < a.dim() - 2; ++i)
        same_batch = a.size(i) == b.size(i);
    detail::require(kb == d.K && same_batch, "matmul", [&] {
        return std::string("shapes " + a.shape().to_string() + (trans_a ? "^T" : "") + " and " +
                           b.shape().to_string() + (trans_b ? "^T" : "") + " do not multiply");
    });
    const Shape out_shape = a.shape().with_dim(-1, d.N).with_dim(-2, d.M);  // [..., M, N]
    Tensor<T> out = Tensor<T>::graph_output(out_shape, detail::any_requires_grad(a, b));
    kernels::matmul_forward(out.data(), a.data(), b.data(), d);
    if (out.requires_grad()) {
        Tape::current().record("matmul", {a, b}, [out, a, b, d, dtype = matmul_dtype()] {
            MatmulDtypeScope scope(dtype);  // the backward's products in the forward's dtype
            kernels::matmul_backward(a.grad(), b.grad(), a.data(), b.data(), out.grad(), d);
        });
    }
    return out;
}

// ---- linear ----
// out[n, o] = sum_c x[n, c] W[o, c] + bias[o]: x [..., C], W [OC, C] (PyTorch's layout, also the
// layout of the tied token embedding used as lm_head), bias [OC] or empty. out [..., OC].
// Backward: dx += dout W, dW += dout^T x, dbias += column sums of dout.

namespace kernels {
// The bias is added by the GEMM's epilogue, tile by tile while C is in cache, not by a second
// pass over out.
template <class T>
void linear_forward(T* out, const T* x, const T* weight, const T* bias, std::int64_t N,
                    std::int64_t C, std::int64_t OC) {
    gemm(false, true, N, OC, C, x, C, weight, C, out, OC, false, GemmEpilogue<T>{bias});
}
// dx_overwrite: dx holds no gradient yet (see Tensor::grad_for_write), so the GEMM stores instead
// of adding, which spares zeroing dx and reading it back.
template <class T>
void linear_backward(T* dx, bool dx_overwrite, T* dweight, T* dbias, const T* x, const T* weight,
                     const T* dout, std::int64_t N, std::int64_t C, std::int64_t OC) {
    if (dx != nullptr) gemm(false, false, N, C, OC, dout, OC, weight, C, dx, C, !dx_overwrite);
    if (dweight != nullptr) gemm(true, false, OC, C, N, dout, OC, x, C, dweight, C, true);
    if (dbias != nullptr) add_column_sums(dbias, dout, N, OC);
}
}  // namespace kernels

namespace detail {
/// Validates linear's (and linear_gelu's) arguments: x [..., C], weight [OC, C], bias [OC] or
/// empty; `op` names the op in the message.
template <class T>
void check_linear_arguments(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias,
                            const char* op) {
    detail::require_defined(x, op, "x");
    detail::require(weight.dim() == 2 && x.dim() >= 1 && x.size(-1) == weight.size(1), op, [&] {
        return std::string("input " + x.shape().to_string() + " does not match weight " +
                           weight.shape().to_string());
    });
    detail::require(!bias.defined() || (bias.dim() == 1 && bias.size(0) == weight.size(0)), op,
                    [&] {
                        return std::string("bias " + bias.shape().to_string() +
                                           " does not match weight " + weight.shape().to_string());
                    });
}
}  // namespace detail

/// x @ weight^T + bias, with weight [OC, C] and bias [OC] (or an empty tensor for no bias).
template <class T>
Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias = Tensor<T>()) {
    detail::check_linear_arguments(x, weight, bias, "linear");
    const std::int64_t C = weight.size(1), OC = weight.size(0),
                       N = x.numel() / std::max<std::int64_t>(C, 1);
    const bool has_bias = bias.defined();
    Tensor<T> out = Tensor<T>::graph_output(
        x.shape().with_last(OC),
        detail::any_requires_grad(x, weight) || (has_bias && detail::any_requires_grad(bias)));
    kernels::linear_forward(out.data(), x.data(), weight.data(), has_bias ? bias.data() : nullptr,
                            N, C, OC);
    if (out.requires_grad()) {
        Tape::current().record(
            "linear", {x, weight, bias}, [out, x, weight, bias, has_bias, N, C, OC,
                                              dtype = matmul_dtype()] {
                MatmulDtypeScope scope(dtype);
                const auto dx = x.grad_for_write();
                kernels::linear_backward(dx.data, dx.overwrite, weight.grad(),
                                         has_bias ? bias.grad() : nullptr, x.data(), weight.data(),
                                         out.grad(), N, C, OC);
            });
    }
    return out;
}

/// linear's forward with the weight read from its bfloat16 bits: weight_bf16 [OC, C] holds
/// `weight` rounded (kernels::to_bf16), and `weight` gives the shape. Forward only: generation's
/// one-token products (KVCache), where reading the weights is the whole cost and 2 bytes per
/// weight halve it. The numbers of linear() under bfloat16 products, up to the order of the
/// float32 sums.
inline Tensor<float> linear_bf16_weights(const Tensor<float>& x, const Tensor<float>& weight,
                                         const std::uint16_t* weight_bf16,
                                         const Tensor<float>& bias = Tensor<float>()) {
    detail::check_linear_arguments(x, weight, bias, "linear_bf16_weights");
    detail::require(!detail::any_requires_grad(x, weight) &&
                        !(bias.defined() && detail::any_requires_grad(bias)),
                    "linear_bf16_weights", [] {
                        return std::string("has no backward; run it under NoGradGuard");
                    });
    const std::int64_t C = weight.size(1), OC = weight.size(0),
                       N = x.numel() / std::max<std::int64_t>(C, 1);
    Tensor<float> out = Tensor<float>::graph_output(x.shape().with_last(OC), false);
    kernels::linear_forward_bf16_weights(out.data(), x.data(), weight_bf16,
                                         bias.defined() ? bias.data() : nullptr, N, C, OC);
    return out;
}

// ---- linear_gelu ----
// gelu(x @ weight^T + bias): the MLP's first layer and its activation as one op. The GEMM's
// epilogue adds the bias and applies GELU to each tile of the product while it is in cache, so
// the pre-activation h is written once and never re-read in the forward (separately, the bias
// add and GELU would each be another pass over [N, 4C] through memory). h is kept for the
// backward, which computes dh = gelu'(h) * dout and the bias gradient (column sums of dh) in one
// pass, then the two GEMMs of linear's backward with dh. Equals gelu(linear(x, weight, bias)).

namespace kernels {
/// h, out: [N, OC]; h receives the pre-activation, out gelu(h).
template <class T>
void linear_gelu_forward(T* out, T* h, const T* x, const T* weight, const T* bias, std::int64_t N,
                         std::int64_t C, std::int64_t OC) {
    gemm(false, true, N, OC, C, x, C, weight, C, h, OC, false, GemmEpilogue<T>{bias, out, OC});
}
/// Rows per chunk of linear_gelu_backward's bias-gradient partial sums.
inline constexpr std::int64_t kLinearGeluChunkRows = 32;

/// Scratch elements linear_gelu_backward needs: dh [N, OC] and one partial bias sum per chunk.
inline std::int64_t linear_gelu_backward_scratch(std::int64_t N, std::int64_t OC) {
    return (N + (N + kLinearGeluChunkRows - 1) / kLinearGeluChunkRows) * OC;
}

/// scratch: linear_gelu_backward_scratch(N, OC) elements; dh (its first N * OC) receives the
/// gradient of the pre-activation.
template <class T>
void linear_gelu_backward(T* dx, bool dx_overwrite, T* dweight, T* dbias, T* scratch, const T* x,
                          const T* weight, const T* h, const T* dout, std::int64_t N,
                          std::int64_t C, std::int64_t OC) {
    // Row chunks, each walked in memory order: walking channel blocks down the rows instead
    // jumps a whole row (6 KiB at OC = 1536) between touches and stalls. Each chunk keeps its own
    // partial bias sums, added in chunk order afterwards, so dbias does not depend on the thread
    // count.
    T* dh = scratch;
    T* partials = scratch + N * OC;
    const std::int64_t chunks = (N + kLinearGeluChunkRows - 1) / kLinearGeluChunkRows;
    detail::parallel_for(
        chunks, [&](std::int64_t chunk) NANOGPT_ALWAYS_INLINE {
            T* db = dbias != nullptr ? partials + chunk * OC : nullptr;
            if (db != nullptr)
                for (std::int64_t c = 0; c < OC; ++c) db[c] = T(0);
            const std::int64_t r1 = std::min(N, (chunk + 1) * kLinearGeluChunkRows);
            for (std::int64_t r = chunk * kLinearGeluChunkRows; r < r1; ++r) {
                T* dh_row = dh + r * OC;
                const T *h_row = h + r * OC, *dout_row = dout + r * OC;
                for (std::int64_t c = 0; c < OC; ++c) dh_row[c] = gelu_grad(h_row[c], dout_row[c]);
                if (db != nullptr)
                    for (std::int64_t c = 0; c < OC; ++c) db[c] += dh_row[c];
            }
        });
    // The partials are a [chunks, OC] matrix: their column sums, in chunk order, are dbias.
    if (dbias != nullptr) add_column_sums(dbias, partials, chunks, OC);
    linear_backward(dx, dx_overwrite, dweight, static_cast<T*>(nullptr), x, weight, dh, N, C, OC);
}
}  // namespace kernels

/// gelu(x @ weight^T + bias), fused (see above); weight [OC, C], bias [OC] or empty.
template <class T>
Tensor<T> linear_gelu(const Tensor<T>& x, const Tensor<T>& weight,
                      const Tensor<T>& bias = Tensor<T>()) {
    detail::check_linear_arguments(x, weight, bias, "linear_gelu");
    const std::int64_t C = weight.size(1), OC = weight.size(0),
                       N = x.numel() / std::max<std::int64_t>(C, 1);
    const bool has_bias = bias.defined();
    const bool needs_grad =
        detail::any_requires_grad(x, weight) || (has_bias && detail::any_requires_grad(bias));
    const Shape shape = x.shape().with_last(OC);
    Tensor<T> out = Tensor<T>::graph_output(shape, needs_grad);
    Tensor<T> h = Tensor<T>::graph_output(shape, false);  // pre-activation, for the backward
    kernels::linear_gelu_forward(out.data(), h.data(), x.data(), weight.data(),
                                 has_bias ? bias.data() : nullptr, N, C, OC);
    if (out.requires_grad()) {
        Tape::current().record(
            "linear_gelu", {x, weight, bias}, [out, h, x, weight, bias, has_bias, N, C, OC,
                                                dtype = matmul_dtype()] {
                MatmulDtypeScope scope(dtype);
                const auto dx = x.grad_for_write();
                const auto scratch_bytes =
                    static_cast<std::size_t>(kernels::linear_gelu_backward_scratch(N, OC)) *
                    sizeof(T);
                T* scratch = static_cast<T*>(Tape::current().backward_scratch(scratch_bytes));
                kernels::linear_gelu_backward(dx.data, dx.overwrite, weight.grad(),
                                              has_bias ? bias.grad() : nullptr, scratch, x.data(),
                                              weight.data(), h.data(), out.grad(), N, C, OC);
            });
    }
    return out;
}

}  // namespace nanogpt
