// ops/embedding.hpp — embedding lookup: out[..., :] = weight[id, :] for integer ids. The backward
// scatter-adds rows of dout into dweight; it is split by channel blocks (not by token), because two
// tokens with the same id would otherwise make two threads write one row. Read next: ops/loss.hpp.
#pragma once

#include <algorithm>  // std::min
#include <cstdint>    // std::int64_t, std::int32_t
#include <cstring>    // std::memcpy
#include <stdexcept>  // std::out_of_range
#include <string>     // std::to_string

#include <nanogpt/detail/op_support.hpp>
#include <nanogpt/detail/parallel.hpp>
#include <nanogpt/tensor.hpp>

namespace nanogpt {

// ---- embedding ----
// ids [...] with values in [0, V), weight [V, C] -> out [..., C].

namespace kernels {
template <class T>
void embedding_forward(T* out, const std::int32_t* ids, const T* weight, std::int64_t N,
                       std::int64_t C) {
    detail::parallel_for(N, [&](std::int64_t n) {
        std::memcpy(out + n * C, weight + static_cast<std::int64_t>(ids[n]) * C,
                    sizeof(T) * static_cast<std::size_t>(C));
    });
}
template <class T>
void embedding_backward(T* dweight, const std::int32_t* ids, const T* dout, std::int64_t N,
                        std::int64_t C) {
    const std::int64_t blocks = (C + detail::kChannelBlock - 1) / detail::kChannelBlock;
    detail::parallel_for(blocks, [&](std::int64_t blk) {
        const std::int64_t c0 = blk * detail::kChannelBlock,
                           c1 = std::min(C, c0 + detail::kChannelBlock);
        for (std::int64_t n = 0; n < N; ++n) {
            T* row = dweight + static_cast<std::int64_t>(ids[n]) * C;
            for (std::int64_t c = c0; c < c1; ++c) row[c] += dout[n * C + c];
        }
    });
}
}  // namespace kernels

/// Throws std::out_of_range naming the first id outside [0, vocab), e.g. "token id 70 at position
/// 3".
inline void check_token_ids(const std::int32_t* ids, std::int64_t n, std::int64_t vocab,
                            const char* op) {
    for (std::int64_t i = 0; i < n; ++i) {
        if (ids[i] < 0 || ids[i] >= vocab) {
            throw std::out_of_range(std::string(op) + ": token id " + std::to_string(ids[i]) +
                                    " at position " + std::to_string(i) + " is outside [0, " +
                                    std::to_string(vocab) + ")");
        }
    }
}

/// Rows of weight [V, C] selected by ids: out has shape ids.shape() + [C].
template <class T>
Tensor<T> embedding(const Tensor<std::int32_t>& ids, const Tensor<T>& weight) {
    detail::require(
        ids.defined() && ids.dim() >= 1 && ids.dim() < Shape::kMaxDims, "embedding", [&] {
            return std::string("ids must have 1 to 3 dimensions, got " + ids.shape().to_string());
        });
    detail::require(weight.dim() == 2, "embedding", [&] {
        return std::string("weight must be [V, C], got " + weight.shape().to_string());
    });
    const std::int64_t N = ids.numel(), C = weight.size(1);
    check_token_ids(ids.data(), N, weight.size(0), "embedding");
    Shape out_shape;
    if (ids.dim() == 1) out_shape = Shape{ids.size(0), C};
    if (ids.dim() == 2) out_shape = Shape{ids.size(0), ids.size(1), C};
    if (ids.dim() == 3) out_shape = Shape{ids.size(0), ids.size(1), ids.size(2), C};
    Tensor<T> out = Tensor<T>::graph_output(out_shape, detail::any_requires_grad(weight));
    kernels::embedding_forward(out.data(), ids.data(), weight.data(), N, C);
    if (out.requires_grad()) {
        Tape::current().record("embedding", {ids, weight}, [out, ids, weight, N, C] {
            kernels::embedding_backward(weight.grad(), ids.data(), out.grad(), N, C);
        });
    }
    return out;
}

}  // namespace nanogpt
