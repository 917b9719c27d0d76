// dtype.hpp — the number format of matrix products: nanoGPT's `dtype` ('float32', 'bfloat16').
//
// With bfloat16 the two operands of every matrix product are rounded to bfloat16 (8 bits of
// mantissa, round to nearest even) and multiplied with float32 accumulation; everything else
// (parameters, gradients, optimizer state, layernorm, softmax, GELU, the loss, every sum) stays
// float32. That is what nanoGPT's autocast does on a GPU. A product of two bfloat16 numbers is
// exact in float32, so only the rounding of the inputs and the float32 sums remain.
// The setting is process-wide, like PyTorch's torch.set_float32_matmul_precision, because the
// products run on OpenMP worker threads as well; GPT sets it from GPTConfig::dtype around its
// forward, and each op's backward reuses the setting its forward ran with.
// Only float products change: double stays double (the gradient checks). Kernels: detail/gemm.hpp
// and detail/gemm_bf16.hpp. Read next: ops/elementwise.hpp.
#pragma once

#include <atomic>     // std::atomic
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string

namespace nanogpt {

/// Number format of matrix products (nanoGPT's `dtype`).
enum class Dtype { float32 = 0, bfloat16 = 1 };

/// "float32" or "bfloat16", nanoGPT's spelling.
inline const char* dtype_name(Dtype dtype) {
    return dtype == Dtype::bfloat16 ? "bfloat16" : "float32";
}

/// Parses nanoGPT's spelling; `field` names the setting in the message (e.g. "dtype").
inline Dtype parse_dtype(const std::string& text, const std::string& field = "dtype") {
    if (text == "float32") return Dtype::float32;
    if (text == "bfloat16") return Dtype::bfloat16;
    if (text == "float16") {
        throw std::invalid_argument(field +
                                    ": 'float16' is not supported on a CPU (use bfloat16 or "
                                    "float32)");
    }
    throw std::invalid_argument(field + " must be 'float32' or 'bfloat16', got '" + text + "'");
}

namespace detail {
inline std::atomic<int>& matmul_dtype_storage() {
    static std::atomic<int> value{static_cast<int>(Dtype::float32)};
    return value;
}
}  // namespace detail

/// The number format float matrix products use now.
inline Dtype matmul_dtype() {
    return static_cast<Dtype>(detail::matmul_dtype_storage().load(std::memory_order_relaxed));
}

/// Sets the number format of float matrix products for the whole process.
inline void set_matmul_dtype(Dtype dtype) {
    detail::matmul_dtype_storage().store(static_cast<int>(dtype), std::memory_order_relaxed);
}

/// Sets the matmul dtype for a scope and restores the previous one on exit (also on throw).
class MatmulDtypeScope {
public:
    explicit MatmulDtypeScope(Dtype dtype) : previous_(matmul_dtype()) { set_matmul_dtype(dtype); }
    ~MatmulDtypeScope() { set_matmul_dtype(previous_); }
    MatmulDtypeScope(const MatmulDtypeScope&) = delete;
    MatmulDtypeScope& operator=(const MatmulDtypeScope&) = delete;

private:
    Dtype previous_;
};

}  // namespace nanogpt
