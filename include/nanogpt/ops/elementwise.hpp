// ops/elementwise.hpp — add (with broadcasting of a trailing block, e.g. a bias), mul, scale,
// GELU, dropout and sum: the pointwise ops of a GPT, each as forward kernel, backward kernel and
// a differentiable wrapper that records one tape node. Builds on tensor.hpp.
// Read next: ops/matmul.hpp.
#pragma once

#include <algorithm>  // std::min
#include <string>     // std::to_string
#include <cstdint>    // std::int64_t, std::uint64_t

#include <nanogpt/detail/cpu_features.hpp>  // NANOGPT_ALWAYS_INLINE
#include <nanogpt/detail/fast_math.hpp>
#include <nanogpt/detail/op_support.hpp>
#include <nanogpt/detail/parallel.hpp>
#include <nanogpt/random.hpp>
#include <nanogpt/tensor.hpp>

namespace nanogpt {

namespace kernels {

/// Elements per parallel task for pointwise loops: big enough to amortise scheduling.
inline constexpr std::int64_t kPointwiseChunk = 16384;

/// Runs body(begin, end) over [0, n) in chunks, in parallel.
template <class Body>
void for_chunks(std::int64_t n, const Body& body) {
    const std::int64_t chunks = (n + kPointwiseChunk - 1) / kPointwiseChunk;
    detail::parallel_for(chunks, [&](std::int64_t c) {
        const std::int64_t begin = c * kPointwiseChunk;
        body(begin, std::min(n, begin + kPointwiseChunk));
    });
}

/// dcol[c] += sum over rows r of d[r, c], for a [rows, C] matrix. Parallel over channel
/// blocks (see kChannelBlock), so the row order of every sum is fixed.
template <class T>
void add_column_sums(T* dcol, const T* d, std::int64_t rows, std::int64_t C) {
    const std::int64_t blocks = (C + detail::kChannelBlock - 1) / detail::kChannelBlock;
    detail::parallel_for(blocks, [&](std::int64_t blk) {
        const std::int64_t c0 = blk * detail::kChannelBlock,
                           c1 = std::min(C, c0 + detail::kChannelBlock);
        for (std::int64_t r = 0; r < rows; ++r)
            for (std::int64_t c = c0; c < c1; ++c) dcol[c] += d[r * C + c];
    });
}

}  // namespace kernels

// ---- add ----
// out[r, i] = a[r, i] + b[i], where b's shape is a trailing part of a's (same shape, or a bias
// [C] over [..., C], or positions [T, C] over [B, T, C]). a is viewed as [rows, n_b].

namespace kernels {
template <class T>
void add_forward(T* out, const T* a, const T* b, std::int64_t rows, std::int64_t n_b) {
    if (rows == 1) {  // same shapes (a residual connection): one flat loop
        for_chunks(n_b, [&](std::int64_t begin, std::int64_t end) {
            for (std::int64_t i = begin; i < end; ++i) out[i] = a[i] + b[i];
        });
        return;
    }
    // Broadcast b over rows; loop per row so the index into b needs no division.
    detail::parallel_for(rows, [&](std::int64_t r) {
        for (std::int64_t j = 0; j < n_b; ++j) out[r * n_b + j] = a[r * n_b + j] + b[j];
    });
}
// d/da = 1 and d/db = 1, so da += dout and db += dout summed over the broadcast rows
// (da = dout when da holds nothing yet: da_overwrite, see Tensor::grad_for_write).
template <class T>
void add_backward(T* da, bool da_overwrite, T* db, const T* dout, std::int64_t rows,
                  std::int64_t n_b) {
    if (da != nullptr) {
        for_chunks(rows * n_b, [&](std::int64_t begin, std::int64_t end) {
            if (da_overwrite)
                std::copy(dout + begin, dout + end, da + begin);
            else
                for (std::int64_t i = begin; i < end; ++i) da[i] += dout[i];
        });
    }
    if (db != nullptr) add_column_sums(db, dout, rows, n_b);
}
}  // namespace kernels

/// a + b, where b has a's shape or the shape of a's trailing dimensions (broadcast over the rest).
template <class T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b) {
    detail::require_defined(a, "add", "a");
    detail::require_defined(b, "add", "b");
    const int lead = a.dim() - b.dim();
    bool suffix = lead >= 0;
    for (int i = 0; suffix && i < b.dim(); ++i) suffix = a.size(lead + i) == b.size(i);
    detail::require(suffix, "add", [&] {
        return std::string("shape " + b.shape().to_string() + " does not broadcast to " +
                           a.shape().to_string());
    });
    const std::int64_t n_b = b.numel(), rows = n_b == 0 ? 0 : a.numel() / n_b;
    Tensor<T> out = Tensor<T>::graph_output(a.shape(), detail::any_requires_grad(a, b));
    kernels::add_forward(out.data(), a.data(), b.data(), rows, n_b);
    if (out.requires_grad()) {
        Tape::current().record("add", {a, b}, [out, a, b, rows, n_b] {
            const auto da = a.grad_for_write();
            kernels::add_backward(da.data, da.overwrite, b.grad(), out.grad(), rows, n_b);
        });
    }
    return out;
}

// ---- mul ----
// out = a * b elementwise (same shapes).

namespace kernels {
template <class T>
void mul_forward(T* out, const T* a, const T* b, std::int64_t n) {
    for_chunks(n, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) out[i] = a[i] * b[i];
    });
}
template <class T>
void mul_backward(T* da, T* db, const T* a, const T* b, const T* dout, std::int64_t n) {
    for_chunks(n, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) {
            if (da != nullptr) da[i] += dout[i] * b[i];
            if (db != nullptr) db[i] += dout[i] * a[i];
        }
    });
}
}  // namespace kernels

/// Elementwise a * b (same shapes).
template <class T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b) {
    detail::require_defined(a, "mul", "a");
    detail::require_defined(b, "mul", "b");
    detail::require(a.shape() == b.shape(), "mul", [&] {
        return std::string("shapes " + a.shape().to_string() + " and " + b.shape().to_string() +
                           " differ");
    });
    Tensor<T> out = Tensor<T>::graph_output(a.shape(), detail::any_requires_grad(a, b));
    kernels::mul_forward(out.data(), a.data(), b.data(), a.numel());
    if (out.requires_grad()) {
        Tape::current().record("mul", {a, b}, [out, a, b] {
            kernels::mul_backward(a.grad(), b.grad(), a.data(), b.data(), out.grad(), a.numel());
        });
    }
    return out;
}

// ---- scale ----
// out = s * a for a constant s (attention's 1/sqrt(head_size) in the composed reference).

/// s * a for a constant s.
template <class T>
Tensor<T> scale(const Tensor<T>& a, T s) {
    detail::require_defined(a, "scale", "a");
    Tensor<T> out = Tensor<T>::graph_output(a.shape(), detail::any_requires_grad(a));
    const T* x = a.data();
    T* y = out.data();
    kernels::for_chunks(a.numel(), [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) y[i] = s * x[i];
    });
    if (out.requires_grad()) {
        Tape::current().record("scale", {a}, [out, a, s] {
            T* da = a.grad();
            const T* dout = out.grad();
            kernels::for_chunks(a.numel(), [&](std::int64_t begin, std::int64_t end) {
                for (std::int64_t i = begin; i < end; ++i) da[i] += s * dout[i];
            });
        });
    }
    return out;
}

// ---- gelu ----
// GPT-2's tanh approximation: gelu(x) = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3),
// detail::gelu_tanh. (linear_gelu in ops/matmul.hpp fuses it into the GEMM of the MLP.)

namespace kernels {
template <class T>
void gelu_forward(T* out, const T* inp, std::int64_t n) {
    for_chunks(n, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) out[i] = detail::gelu_tanh(inp[i]);
    });
}
// d/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx, with du/dx = sqrt(2/pi)(1 + 3*0.044715
// x^2).
// One element of that: always_inline so both loops below vectorise whatever the inliner's budget.
template <class T>
NANOGPT_ALWAYS_INLINE inline T gelu_grad(T x, T dy) {
    const T k = static_cast<T>(0.7978845608028654);
    const T th = detail::tanh_fast(k * (x + T(0.044715) * x * x * x));
    const T du = k * (T(1) + T(3 * 0.044715) * x * x);
    return dy * (T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * du);
}
// (dinp_overwrite: store instead of add, see Tensor::grad_for_write.)
template <class T>
void gelu_backward(T* dinp, bool dinp_overwrite, const T* inp, const T* dout, std::int64_t n) {
    for_chunks(n, [&](std::int64_t begin, std::int64_t end) {
        if (dinp_overwrite)
            for (std::int64_t i = begin; i < end; ++i) dinp[i] = gelu_grad(inp[i], dout[i]);
        else
            for (std::int64_t i = begin; i < end; ++i) dinp[i] += gelu_grad(inp[i], dout[i]);
    });
}
}  // namespace kernels

/// GELU with GPT-2's tanh approximation.
template <class T>
Tensor<T> gelu(const Tensor<T>& x) {
    detail::require_defined(x, "gelu", "x");
    Tensor<T> out = Tensor<T>::graph_output(x.shape(), detail::any_requires_grad(x));
    kernels::gelu_forward(out.data(), x.data(), x.numel());
    if (out.requires_grad()) {
        Tape::current().record("gelu", {x}, [out, x] {
            const auto dx = x.grad_for_write();
            kernels::gelu_backward(dx.data, dx.overwrite, x.data(), out.grad(), x.numel());
        });
    }
    return out;
}

// ---- dropout ----
// out = x * keep / (1 - p), keep ~ Bernoulli(1 - p). The mask is a hash of (seed, index), so it is
// never stored: backward recomputes it, and it does not depend on the thread count.

namespace kernels {
/// Whether element i survives dropout with probability p under `seed`.
inline bool dropout_keep(std::uint64_t seed, std::uint64_t i, double p) {
    const std::uint64_t h = splitmix64(seed ^ splitmix64(i));
    return static_cast<double>(h >> 11) * 0x1.0p-53 >= p;
}
template <class T>
void dropout_forward(T* out, const T* inp, std::int64_t n, double p, std::uint64_t seed) {
    const T keep_scale = static_cast<T>(1.0 / (1.0 - p));
    for_chunks(n, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i)
            out[i] =
                dropout_keep(seed, static_cast<std::uint64_t>(i), p) ? inp[i] * keep_scale : T(0);
    });
}
template <class T>
void dropout_backward(T* dinp, const T* dout, std::int64_t n, double p, std::uint64_t seed) {
    const T keep_scale = static_cast<T>(1.0 / (1.0 - p));
    for_chunks(n, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i)
            if (dropout_keep(seed, static_cast<std::uint64_t>(i), p))
                dinp[i] += dout[i] * keep_scale;
    });
}
}  // namespace kernels

/// Inverted dropout with probability p in [0, 1); the caller passes a fresh seed per call
/// (layers draw it from the model's generator) and skips the call outside training.
template <class T>
Tensor<T> dropout(const Tensor<T>& x, double p, std::uint64_t seed) {
    detail::require_defined(x, "dropout", "x");
    detail::require(p >= 0.0 && p < 1.0, "dropout",
                    [&] { return std::string("p must be in [0, 1), got " + std::to_string(p)); });
    if (p == 0.0) return x;
    Tensor<T> out = Tensor<T>::graph_output(x.shape(), detail::any_requires_grad(x));
    kernels::dropout_forward(out.data(), x.data(), x.numel(), p, seed);
    if (out.requires_grad()) {
        Tape::current().record("dropout", {x}, [out, x, p, seed] {
            kernels::dropout_backward(x.grad(), out.grad(), x.numel(), p, seed);
        });
    }
    return out;
}

// ---- sum ----
// out = sum of all elements (a scalar), accumulated serially in double so it is reproducible.

/// Sum of all elements, as a one-element tensor of shape [1].
template <class T>
Tensor<T> sum(const Tensor<T>& x) {
    detail::require_defined(x, "sum", "x");
    Tensor<T> out = Tensor<T>::graph_output(Shape{1}, detail::any_requires_grad(x));
    const T* v = x.data();
    double total = 0.0;
    for (std::int64_t i = 0; i < x.numel(); ++i) total += static_cast<double>(v[i]);
    out.data()[0] = static_cast<T>(total);
    if (out.requires_grad()) {
        Tape::current().record("sum", {x}, [out, x] {
            T* dx = x.grad();
            const T d = out.grad()[0];
            for (std::int64_t i = 0; i < x.numel(); ++i) dx[i] += d;
        });
    }
    return out;
}

}  // namespace nanogpt
