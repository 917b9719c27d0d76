// op_support.hpp — small helpers every differentiable op wrapper uses: input validation with
// messages that name the op and the shapes, and "does this output need a tape node?".
#pragma once

#include <cstdint>    // std::int64_t
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string

#include <nanogpt/tensor.hpp>

namespace nanogpt::detail {

/// Throws std::invalid_argument("<op>: " + message()) when `ok` is false. The message is built
/// only on failure: ops validate on every call, and the training step must not allocate.
template <class Message>
void require(bool ok, const char* op, const Message& message) {
    if (!ok) throw std::invalid_argument(std::string(op) + ": " + message());
}

/// Throws when the tensor is an empty handle.
template <class T>
void require_defined(const Tensor<T>& t, const char* op, const char* name) {
    require(t.defined(), op, [&] { return std::string(name) + " is an empty tensor"; });
}

/// True when an op output must record a backward node: grad mode is on and an input needs grad.
template <class... Tensors>
bool any_requires_grad(const Tensors&... inputs) {
    return Tape::current().grad_enabled() && (inputs.requires_grad() || ...);
}

/// Channels per parallel task when a kernel reduces over rows into per-channel gradients
/// (bias, layernorm weight, embedding rows): each task owns a block of channels, so no two
/// threads write the same element and the sum order never depends on the thread count.
inline constexpr std::int64_t kChannelBlock = 64;

}  // namespace nanogpt::detail
