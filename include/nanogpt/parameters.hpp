// parameters.hpp — every parameter of a model in ONE contiguous buffer, every gradient in another.
//
// Layers ask for their tensors by name at construction (in nanoGPT's order) and receive views into
// the two buffers. One buffer means AdamW, gradient clipping, zeroing, checkpoints, safetensors
// export and an MPI allreduce each see a single array instead of a list of tensors. The capacity
// is fixed up front (GPTConfig knows its parameter count), so views never move. Builds on
// tensor.hpp and random.hpp; read next: kv_cache.hpp.
#pragma once

#include <atomic>     // std::atomic
#include <cmath>      // std::sqrt
#include <cstdint>    // std::int64_t, std::uint64_t
#include <stdexcept>  // std::invalid_argument, std::logic_error
#include <string>         // std::string
#include <unordered_map>  // std::unordered_map
#include <utility>        // std::move
#include <vector>         // std::vector

#include <nanogpt/detail/checked_math.hpp>
#include <nanogpt/detail/parallel.hpp>
#include <nanogpt/random.hpp>
#include <nanogpt/tensor.hpp>

namespace nanogpt {

/// How a parameter starts: GPT-2 draws weights from N(0, std^2), biases 0, layernorm weights 1.
struct Init {
    enum class Kind { normal, zeros, ones };
    Kind kind = Kind::zeros;
    double std = 0.0;

    static Init normal(double std) { return {Kind::normal, std}; }
    static Init zeros() { return {Kind::zeros, 0.0}; }
    static Init ones() { return {Kind::ones, 0.0}; }
};

/// Where one named parameter lives in the buffers.
struct ParameterInfo {
    std::string name;  // GPT-2 / Hugging Face style, e.g. "h.0.attn.c_attn.weight"
    Shape shape;
    std::int64_t offset;  // first element in data() and grad()
    /// AdamW decays only tensors of 2 or more dimensions (matmul weights, embeddings), as nanoGPT.
    bool decay() const { return shape.ndim() >= 2; }
};

/// Names the values of a Parameters buffer, for copies made from them (KVCache's bfloat16
/// weights): `id` is unique to one buffer in the process (a move keeps it; no other buffer ever
/// gets it), and `version` grows with every update reported by Parameters::mark_changed(). A copy
/// stamped with another id or an older version is stale.
struct ParametersVersion {
    std::uint64_t id = 0, version = 0;
    bool operator==(const ParametersVersion&) const = default;
};

template <class T>
class Parameters {
public:
    /// Room for `capacity` elements and their gradients; `seed` drives every initial value, in
    /// declaration order.
    explicit Parameters(std::int64_t capacity, std::uint64_t seed = 1337)
        : data_(checked_capacity(capacity)),
          grad_(static_cast<std::size_t>(capacity)),
          rng_(seed) {}

    /// For inference: `values` (every parameter, in declaration order, e.g. from a checkpoint)
    /// become the buffer, add() keeps them instead of initialising, and there is no gradient
    /// buffer, so the views do not require grad and ops record nothing.
    static Parameters for_inference(std::vector<T> values) {
        Parameters p(0);
        p.data_ = std::move(values);
        p.given_values_ = true;
        return p;
    }

    /// False for an inference buffer (for_inference): grad() is then null.
    bool has_gradients() const { return grad_.size() == data_.size() && !data_.empty(); }

    // Views point into this object's buffers: copying would alias them, so only moving is allowed
    // (a moved std::vector keeps its heap buffer, so existing views stay valid).
    Parameters(const Parameters&) = delete;
    Parameters& operator=(const Parameters&) = delete;
    Parameters(Parameters&&) noexcept = default;
    Parameters& operator=(Parameters&&) noexcept = default;

    /// Declares the next parameter, initialises it, and returns its view (with gradient).
    Tensor<T> add(const std::string& name, const Shape& shape, const Init& init) {
        // Checked, since a shape may come from a file: an overflowed count would wrap negative.
        std::int64_t n = 1;
        for (int d = 0; d < shape.ndim(); ++d)
            n = detail::checked_mul(n, shape[d], "Parameters: element count of '" + name + "'");
        if (n > size() - used_) {
            throw std::logic_error("Parameters: capacity " + std::to_string(size()) +
                                   " exceeded by '" + name + "' " + shape.to_string());
        }
        if (!index_.emplace(name, infos_.size()).second)
            throw std::invalid_argument("Parameters: duplicate name '" + name + "'");
        infos_.push_back(ParameterInfo{name, shape, used_});
        T* p = data_.data() + used_;
        for (std::int64_t i = 0; i < n && !given_values_; ++i) {
            if (init.kind == Init::Kind::normal) p[i] = static_cast<T>(init.std * rng_.normal());
            if (init.kind == Init::Kind::zeros) p[i] = T(0);
            if (init.kind == Init::Kind::ones) p[i] = T(1);
        }
        used_ += n;
        return view(infos_.back());
    }

    /// The view of one declared parameter.
    Tensor<T> view(const ParameterInfo& info) {
        return Tensor<T>::view(info.shape, data_.data() + info.offset,
                               has_gradients() ? grad_.data() + info.offset : nullptr);
    }
    /// Looks a parameter up by name; std::invalid_argument names it when absent.
    Tensor<T> find(const std::string& name) {
        if (const auto it = index_.find(name); it != index_.end()) return view(infos_[it->second]);
        throw std::invalid_argument("Parameters: no parameter named '" + name + "'");
    }

    const std::vector<ParameterInfo>& infos() const { return infos_; }
    std::int64_t size() const { return static_cast<std::int64_t>(data_.size()); }
    /// Elements declared so far (equals size() once the model is built).
    std::int64_t used() const { return used_; }
    T* data() { return data_.data(); }
    const T* data() const { return data_.data(); }
    T* grad() { return has_gradients() ? grad_.data() : nullptr; }
    const T* grad() const { return has_gradients() ? grad_.data() : nullptr; }

    /// Which values the buffer holds now (see ParametersVersion).
    ParametersVersion version() const { return {id_, version_}; }
    /// Reports that the values changed. The library's writers call it (AdamW::step, checkpoint
    /// and GPT-2 loading, ZeRO-1's all-gather); code that writes data() itself must too.
    void mark_changed() { ++version_; }

    /// On every thread: GPT-2's gradient buffer is half a gigabyte, written once per step.
    void zero_grad() {
        detail::parallel_fill(grad_.data(), static_cast<std::int64_t>(grad_.size()), T(0));
    }

private:
    static std::uint64_t next_id() {
        static std::atomic<std::uint64_t> counter{0};
        return ++counter;
    }
    static std::size_t checked_capacity(std::int64_t capacity) {
        if (capacity < 0) {
            throw std::invalid_argument("Parameters: capacity must not be negative, got " +
                                        std::to_string(capacity));
        }
        return static_cast<std::size_t>(capacity);
    }

    std::vector<T> data_;
    std::vector<T> grad_;
    std::vector<ParameterInfo> infos_;
    std::unordered_map<std::string, std::size_t> index_;  // name -> position in infos_
    std::int64_t used_ = 0;
    Random rng_;
    bool given_values_ = false;  // for_inference: add() keeps the values
    std::uint64_t id_ = next_id();
    std::uint64_t version_ = 0;
};

}  // namespace nanogpt
