// tensor.hpp — Tensor<T>: a shape plus contiguous row-major storage, with an optional gradient.
//
// Ownership, in one paragraph: a Tensor is a cheap handle (like a shared_ptr), copying it never
// copies elements. Its memory comes from one of three places:
//   * owned: Tensor<T>(shape) or from_vector(), heap memory shared by all copies of the handle;
//   * view: Tensor<T>::view(), memory someone else keeps alive (the model's single parameter
//     buffer and gradient buffer, see parameters.hpp);
//   * graph: made by an op, it lives in the tape's arena until the next Tape::begin_graph()
//     (GPT::forward starts a new graph); touching it after that throws std::logic_error.
// T is float for training and double for finite-difference gradient checks; integer T (token ids)
// works as plain storage without gradients. Builds on tape.hpp; read next: dtype.hpp.
#pragma once

#include <algorithm>         // std::copy, std::fill, std::max
#include <array>             // std::array
#include <cstdint>           // std::int64_t, std::int32_t
#include <initializer_list>  // std::initializer_list
#include <memory>            // std::shared_ptr
#include <stdexcept>         // std::invalid_argument, std::logic_error
#include <string>            // std::string, std::to_string
#include <type_traits>       // std::is_floating_point_v
#include <vector>            // std::vector

#include <nanogpt/tape.hpp>

namespace nanogpt {

/// Up to four dimensions, e.g. (B, nh, T, hs): enough for a GPT, and no heap allocation.
class Shape {
public:
    static constexpr int kMaxDims = 4;

    Shape() = default;
    Shape(std::initializer_list<std::int64_t> dims) {
        if (dims.size() > kMaxDims) {
            throw std::invalid_argument("Shape: at most 4 dimensions, got " +
                                        std::to_string(dims.size()));
        }
        for (std::int64_t d : dims) {
            if (d < 0)
                throw std::invalid_argument("Shape: negative dimension " + std::to_string(d));
            dims_[ndim_++] = d;
        }
    }

    int ndim() const { return ndim_; }
    /// Size of dimension i; negative i counts from the end (-1 is the last dimension).
    std::int64_t operator[](int i) const {
        const int k = i < 0 ? ndim_ + i : i;
        if (k < 0 || k >= ndim_) {
            throw std::invalid_argument("Shape: dimension index " + std::to_string(i) +
                                        " out of range for " + to_string());
        }
        return dims_[k];
    }
    std::int64_t numel() const {
        std::int64_t n = 1;
        for (int i = 0; i < ndim_; ++i) n *= dims_[i];
        return n;
    }
    /// Product of all dimensions but the last: the number of rows of a [rows, last] view.
    std::int64_t rows() const {
        return ndim_ == 0 ? 1 : numel() / std::max<std::int64_t>(dims_[ndim_ - 1], 1);
    }

    /// Copy with the last dimension replaced.
    Shape with_last(std::int64_t last) const { return with_dim(-1, last); }

    /// Copy with dimension i (negative counts from the end) replaced.
    Shape with_dim(int i, std::int64_t size) const {
        (void)(*this)[i];  // validates i
        Shape s = *this;
        s.dims_[i < 0 ? ndim_ + i : i] = size;
        return s;
    }

    bool operator==(const Shape& other) const {
        if (ndim_ != other.ndim_) return false;
        for (int i = 0; i < ndim_; ++i)
            if (dims_[i] != other.dims_[i]) return false;
        return true;
    }
    bool operator!=(const Shape& other) const { return !(*this == other); }

    /// "[4, 512, 768]": used in every shape error message.
    std::string to_string() const {
        std::string s = "[";
        for (int i = 0; i < ndim_; ++i) s += (i ? ", " : "") + std::to_string(dims_[i]);
        return s + "]";
    }

private:
    std::array<std::int64_t, kMaxDims> dims_{};
    int ndim_ = 0;
};

template <class T>
class Tensor {
public:
    /// An empty handle (no shape, no data); defined() is false.
    Tensor() = default;

    /// Owned, zero-filled storage. requires_grad makes it a leaf that accumulates a gradient.
    explicit Tensor(const Shape& shape, bool requires_grad = false)
        : shape_(shape), requires_grad_(requires_grad) {
        if (requires_grad && !std::is_floating_point_v<T>) {
            throw std::invalid_argument(
                "Tensor: requires_grad needs a floating-point element type");
        }
        auto n = static_cast<std::size_t>(shape.numel());
        // At least one element, so a zero-size tensor still has a non-null data pointer.
        auto storage = std::make_shared<std::vector<T>>(
            std::max<std::size_t>(requires_grad ? 2 * n : n, 1), T{});
        data_ = storage->data();
        if (requires_grad) grad_ = data_ + n;
        owner_ = std::move(storage);
    }

    /// Owned copy of `values`, which must hold shape.numel() elements.
    static Tensor from_vector(const Shape& shape, const std::vector<T>& values,
                              bool requires_grad = false) {
        if (static_cast<std::int64_t>(values.size()) != shape.numel()) {
            throw std::invalid_argument("Tensor::from_vector: " + std::to_string(values.size()) +
                                        " values for shape " + shape.to_string());
        }
        Tensor t(shape, requires_grad);
        std::copy(values.begin(), values.end(), t.data_);
        return t;
    }

    /// Non-owning view of memory kept alive elsewhere (grad may be null).
    static Tensor view(const Shape& shape, T* data, T* grad) {
        Tensor t;
        t.shape_ = shape;
        t.data_ = data;
        t.grad_ = grad;
        t.requires_grad_ = grad != nullptr;
        return t;
    }

    /// Output of an op: memory from the current graph; gets a gradient slot when it requires grad.
    static Tensor graph_output(const Shape& shape, bool requires_grad) {
        Tape& tape = Tape::current();
        if (tape.consumed())
            tape.begin_graph();  // the first op after a backward starts a new graph
        Tensor t;
        t.shape_ = shape;
        const auto bytes = static_cast<std::size_t>(shape.numel()) * sizeof(T);
        t.data_ = static_cast<T*>(tape.allocate(bytes));
        t.generation_ = tape.generation();
        t.requires_grad_ = requires_grad && tape.grad_enabled();
        if (t.requires_grad_) {
            std::array<std::int64_t, Shape::kMaxDims> dims{};
            for (int i = 0; i < shape.ndim(); ++i) dims[static_cast<std::size_t>(i)] = shape[i];
            t.grad_slot_ = tape.add_grad_slot(bytes, dims, shape.ndim());
        }
        return t;
    }

    /// How an op names this tensor as one of its inputs when it records its tape node.
    operator NodeInput() const { return NodeInput{grad_slot_, data_}; }

    /// Same elements and gradient, another shape with the same number of elements (no copy).
    Tensor reshape(const Shape& shape) const {
        if (shape.numel() != shape_.numel()) {
            throw std::invalid_argument("reshape: cannot view " + shape_.to_string() + " as " +
                                        shape.to_string());
        }
        Tensor t = *this;
        t.shape_ = shape;
        return t;
    }

    bool defined() const { return data_ != nullptr; }
    const Shape& shape() const { return shape_; }
    int dim() const { return shape_.ndim(); }
    std::int64_t size(int i) const { return shape_[i]; }
    /// Number of elements; 0 for an empty handle.
    std::int64_t numel() const { return defined() ? shape_.numel() : 0; }
    bool requires_grad() const { return requires_grad_; }

    T* data() {
        check_alive();
        return data_;
    }
    const T* data() const {
        check_alive();
        return data_;
    }

    /// The gradient buffer (same shape as data), or nullptr when the tensor does not require grad.
    /// For op outputs it is allocated, zero-filled, on first use.
    T* grad() const {
        check_alive();
        if (grad_ != nullptr) return grad_;
        if (grad_slot_ >= 0) return static_cast<T*>(Tape::current().slot_gradient(grad_slot_));
        return nullptr;
    }

    /// Where a backward kernel writes this tensor's gradient. `overwrite` is true when nothing
    /// has been added yet (an op output whose gradient memory is still untouched): the kernel
    /// must then store every element rather than add, and the buffer is not zeroed first.
    struct GradientTarget {
        T* data;
        bool overwrite;
    };
    GradientTarget grad_for_write() const {
        check_alive();
        if (grad_ != nullptr) return {grad_, false};
        if (grad_slot_ < 0) return {nullptr, false};
        bool overwrite = false;
        void* memory = Tape::current().slot_gradient_for_write(grad_slot_, overwrite);
        return {static_cast<T*>(memory), overwrite};
    }

    /// The single value of a one-element tensor.
    T item() const {
        if (!defined()) throw std::invalid_argument("item(): the tensor is an empty handle");
        if (numel() != 1)
            throw std::invalid_argument("item(): tensor has shape " + shape_.to_string());
        return data()[0];
    }
    std::vector<T> to_vector() const {
        if (!defined()) return {};
        return std::vector<T>(data(), data() + numel());
    }
    std::vector<T> grad_to_vector() const {
        const T* g = grad();
        return g ? std::vector<T>(g, g + numel()) : std::vector<T>{};
    }

    /// Sets this tensor's own gradient to zero (leaves; the model zeroes its buffer in one go).
    void zero_grad() {
        if (T* g = grad()) std::fill(g, g + numel(), T{});
    }

    /// Reverse-mode autodiff from this scalar: adds d(this)/d(leaf) into every leaf's grad,
    /// so gradients accumulate across calls until zeroed.
    void backward() {
        check_alive();
        if (numel() != 1) {
            throw std::invalid_argument("backward(): needs a scalar (one element), got shape " +
                                        shape_.to_string());
        }
        if (!requires_grad_) throw std::logic_error("backward(): tensor does not require grad");
        Tape& tape = Tape::current();
        if (tape.consumed()) {
            throw std::logic_error(
                "backward(): this graph was already consumed by an earlier backward(); "
                "run the forward pass again");
        }
        grad()[0] += T{1};
        tape.backward();
    }

private:
    void check_alive() const {
        if (generation_ != 0 && generation_ != Tape::current().generation()) {
            throw std::logic_error(
                "Tensor: this tensor belongs to a freed graph (a later forward pass started a new "
                "graph); copy values out with to_vector() before running the model again");
        }
    }

    Shape shape_;
    T* data_ = nullptr;
    T* grad_ = nullptr;             // owned/view gradient
    std::shared_ptr<void> owner_;   // keeps owned storage alive
    std::uint64_t generation_ = 0;  // graph that owns the memory; 0 = not graph memory
    std::int32_t grad_slot_ = -1;   // graph tensors: the tape's gradient slot
    bool requires_grad_ = false;
};

}  // namespace nanogpt
