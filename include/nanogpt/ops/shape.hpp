// ops/shape.hpp — moving elements without arithmetic: transpose of two dimensions (to split
// [B, T, nh, hs] into heads [B, nh, T, hs] and merge them back) and slicing the last dimension
// (to cut q, k, v out of the fused qkv projection). Tensor::reshape is free (a view); these copy,
// and their backward copies the gradient back. Read next: ops/norm.hpp.
#pragma once

#include <array>    // std::array
#include <cstdint>  // std::int64_t
#include <string>   // std::to_string
#include <utility>  // std::swap

#include <nanogpt/detail/op_support.hpp>
#include <nanogpt/detail/parallel.hpp>
#include <nanogpt/tensor.hpp>

namespace nanogpt {

// ---- transpose ----
// out = x with dimensions d0 and d1 swapped, stored contiguously. Shapes are padded to 4-D on
// the left so one loop nest serves every rank.

namespace kernels {

struct TransposeDims {
    std::array<std::int64_t, 4> in_shape;  // padded to 4-D
    int d0, d1;                            // swapped dimensions, in padded numbering
};

/// Visits every element: body(in_index, out_index).
template <class Body>
void for_each_transposed(const TransposeDims& t, const Body& body) {
    const auto& s = t.in_shape;
    std::array<std::int64_t, 4> in_stride{s[1] * s[2] * s[3], s[2] * s[3], s[3], 1};
    std::array<std::int64_t, 4> out_shape = s;
    std::swap(out_shape[t.d0], out_shape[t.d1]);
    std::array<std::int64_t, 4> out_stride{out_shape[1] * out_shape[2] * out_shape[3],
                                           out_shape[2] * out_shape[3], out_shape[3], 1};
    std::swap(out_stride[t.d0], out_stride[t.d1]);  // out stride seen from input coordinates
    detail::parallel_for(s[0] * s[1], [&](std::int64_t i01) {
        const std::int64_t i0 = i01 / s[1], i1 = i01 % s[1];
        for (std::int64_t i2 = 0; i2 < s[2]; ++i2)
            for (std::int64_t i3 = 0; i3 < s[3]; ++i3)
                body(i0 * in_stride[0] + i1 * in_stride[1] + i2 * in_stride[2] + i3,
                     i0 * out_stride[0] + i1 * out_stride[1] + i2 * out_stride[2] +
                         i3 * out_stride[3]);
    });
}

template <class T>
void transpose_forward(T* out, const T* x, const TransposeDims& t) {
    for_each_transposed(t, [&](std::int64_t in, std::int64_t o) { out[o] = x[in]; });
}
template <class T>
void transpose_backward(T* dx, const T* dout, const TransposeDims& t) {
    for_each_transposed(t, [&](std::int64_t in, std::int64_t o) { dx[in] += dout[o]; });
}

}  // namespace kernels

/// x with dimensions d0 and d1 swapped (negative indices count from the end), as a new tensor.
template <class T>
Tensor<T> transpose(const Tensor<T>& x, int d0, int d1) {
    detail::require_defined(x, "transpose", "x");
    const int n = x.dim();
    const int a = d0 < 0 ? n + d0 : d0, b = d1 < 0 ? n + d1 : d1;
    detail::require(a >= 0 && a < n && b >= 0 && b < n, "transpose", [&] {
        return std::string("dimensions " + std::to_string(d0) + ", " + std::to_string(d1) +
                           " out of range for " + x.shape().to_string());
    });
    kernels::TransposeDims t{{1, 1, 1, 1}, a + 4 - n, b + 4 - n};
    for (int i = 0; i < n; ++i) t.in_shape[static_cast<std::size_t>(i + 4 - n)] = x.size(i);
    Shape out_shape = x.shape().with_dim(a, x.size(b)).with_dim(b, x.size(a));
    Tensor<T> out = Tensor<T>::graph_output(out_shape, detail::any_requires_grad(x));
    kernels::transpose_forward(out.data(), x.data(), t);
    if (out.requires_grad()) {
        Tape::current().record("transpose", {x}, [out, x, t] {
            kernels::transpose_backward(x.grad(), out.grad(), t);
        });
    }
    return out;
}

// ---- slice_last ----
// out[..., j] = x[..., start + j] for j < length.

/// The slice [start, start + length) of x's last dimension, as a new tensor.
template <class T>
Tensor<T> slice_last(const Tensor<T>& x, std::int64_t start, std::int64_t length) {
    detail::require_defined(x, "slice_last", "x");
    const std::int64_t C = x.size(-1);
    detail::require(start >= 0 && length >= 0 && start + length <= C, "slice_last", [&] {
        return std::string("range [" + std::to_string(start) + ", " +
                           std::to_string(start + length) + ") outside " + x.shape().to_string());
    });
    const std::int64_t rows = x.shape().rows();
    Tensor<T> out =
        Tensor<T>::graph_output(x.shape().with_last(length), detail::any_requires_grad(x));
    const T* in = x.data();
    T* o = out.data();
    detail::parallel_for(rows, [&](std::int64_t r) {
        for (std::int64_t j = 0; j < length; ++j) o[r * length + j] = in[r * C + start + j];
    });
    if (out.requires_grad()) {
        Tape::current().record("slice_last", {x}, [out, x, start, length, rows, C] {
            T* dx = x.grad();
            const T* dout = out.grad();
            detail::parallel_for(rows, [&](std::int64_t r) {
                for (std::int64_t j = 0; j < length; ++j)
                    dx[r * C + start + j] += dout[r * length + j];
            });
        });
    }
    return out;
}

}  // namespace nanogpt
