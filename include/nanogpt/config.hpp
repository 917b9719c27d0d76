// config.hpp — GPTConfig: the shape of a GPT, its validation and named presets.
//
// Every size derived from a configuration (parameter count, KV cache, activations of one training
// step) is computed with overflow checks and bounded by a documented limit, since configurations
// come from files and flags (docs/formats.md, "Limits"). Read next: sampling.hpp, model.hpp.
#pragma once

#include <algorithm>  // std::max
#include <cstdint>    // std::int64_t
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string, std::to_string

#include <nanogpt/detail/checked_math.hpp>
#include <nanogpt/dtype.hpp>

namespace nanogpt {

/// Most parameters a configuration may have: 2^36 (69 billion, 46x GPT-2 XL). Far above what a
/// CPU trains, and low enough that parameters, gradients and AdamW's two moments stay far from
/// int64 and size_t overflow in bytes.
inline constexpr std::int64_t kMaxParameters = std::int64_t(1) << 36;
/// Most elements the activations of one training step may need (see GPTConfig::step_elements):
/// 2^36, the same order as kMaxParameters.
inline constexpr std::int64_t kMaxStepElements = std::int64_t(1) << 36;
/// A model loaded from a file may make generation allocate a KV cache of at most
/// max(kMinLoadedKVCacheElements, its parameter count) elements per sequence, so a small file
/// cannot ask for gigabytes of cache (GPT-2's own ratio is 0.15; 2^26 elements is 256 MiB in f32).
inline constexpr std::int64_t kMinLoadedKVCacheElements = std::int64_t(1) << 26;

struct GPTConfig {
    std::int64_t block_size = 1024;  // longest context the model can see
    std::int64_t vocab_size = 50257;
    std::int64_t n_layer = 12;
    std::int64_t n_head = 12;
    std::int64_t n_embd = 768;
    double dropout = 0.0;
    bool bias = true;  // biases in Linear and LayerNorm layers, like GPT-2
    // Number format of the matrix products (nanoGPT's `dtype`): bfloat16 rounds their operands
    // and accumulates in float32; parameters, gradients and everything else stay float32.
    // Not part of the architecture: a float32 checkpoint can be resumed in bfloat16.
    Dtype dtype = Dtype::float32;

    // The presets. Each name means one model everywhere: the library, the train and
    // train_shakespeare_char programs and the benchmarks all take it from here. The GPT-2 family
    // keeps GPT-2's biases and 64-dimensional heads; the character-level models follow nanoGPT's
    // train.py default of no biases.

    /// GPT-2 small: 12 layers x 12 heads x 64 dims, 124,439,808 parameters (lm_head tied to wte).
    static GPTConfig gpt2() { return {1024, 50257, 12, 12, 768, 0.0, true}; }
    /// The reference size of this project: GPT-2 small over a 512-token context.
    static GPTConfig reference() { return {512, 50257, 12, 12, 768, 0.0, true}; }
    /// nanoGPT's config/train_shakespeare_char.py model: 6 layers x 6 heads x 64 dims over 256
    /// characters (tiny Shakespeare's 65), dropout 0.2, no biases. A GPU run.
    static GPTConfig shakespeare_char() { return {256, 65, 6, 6, 384, 0.2, false}; }
    /// nanoGPT's CPU recipe for shakespeare_char (its README): 4 layers x 4 heads x 32 dims,
    /// block 64, no dropout, no biases. Trains in minutes on a laptop.
    static GPTConfig cpu_small() { return {64, 65, 4, 4, 128, 0.0, false}; }
    /// A toy model for tests and examples of the API.
    static GPTConfig tiny() { return {16, 32, 2, 2, 16, 0.0, true}; }

    /// Looks a preset up by name ("gpt2", "reference", "shakespeare_char", "cpu_small", "tiny").
    static GPTConfig preset(const std::string& name) {
        if (name == "gpt2") return gpt2();
        if (name == "reference") return reference();
        if (name == "shakespeare_char") return shakespeare_char();
        if (name == "cpu_small") return cpu_small();
        if (name == "tiny") return tiny();
        throw std::invalid_argument(
            "GPTConfig: unknown preset '" + name +
            "' (known: gpt2, reference, shakespeare_char, cpu_small, tiny)");
    }

    /// Throws std::invalid_argument naming the first bad field.
    void validate() const {
        auto positive = [](const char* field, std::int64_t value) {
            if (value <= 0) {
                throw std::invalid_argument(std::string("GPTConfig: ") + field +
                                            " must be positive, got " + std::to_string(value));
            }
        };
        positive("block_size", block_size);
        positive("vocab_size", vocab_size);
        positive("n_layer", n_layer);
        positive("n_head", n_head);
        positive("n_embd", n_embd);
        if (n_embd % n_head != 0) {
            throw std::invalid_argument("GPTConfig: n_embd = " + std::to_string(n_embd) +
                                        " is not divisible by n_head = " + std::to_string(n_head));
        }
        if (!(dropout >= 0.0 && dropout < 1.0)) {
            throw std::invalid_argument("GPTConfig: dropout must be in [0, 1), got " +
                                        std::to_string(dropout));
        }
        if (dtype != Dtype::float32 && dtype != Dtype::bfloat16) {
            throw std::invalid_argument("GPTConfig: dtype = " +
                                        std::to_string(static_cast<int>(dtype)) +
                                        " is not float32 (0) or bfloat16 (1)");
        }
        if (vocab_size > 2147483647) {
            throw std::invalid_argument("GPTConfig: vocab_size = " + std::to_string(vocab_size) +
                                        " does not fit 32-bit token ids");
        }
        (void)num_parameters();  // each throws naming the size that is too large
        (void)kv_cache_elements();
    }

    /// Parameter count with lm_head tied to wte; the same formula sizes the parameter buffer.
    /// std::invalid_argument when it exceeds kMaxParameters (or a field is not positive).
    std::int64_t num_parameters() const {
        using detail::checked_add, detail::checked_mul;
        const std::string what = "GPTConfig: num_parameters";
        const std::int64_t C = n_embd, b = bias ? 1 : 0, L = kMaxParameters;
        const std::int64_t ln = checked_mul(C, 1 + b, what, L);
        const std::int64_t CC = checked_mul(C, C, what + " (n_embd^2)", L);
        // attention c_attn + c_proj, MLP c_fc + c_proj: 12 C^2 weights, 9 C biases, 2 layernorms.
        const std::int64_t block = checked_add(checked_mul(12, CC, what, L), 2 * ln + 9 * b * C,
                                               what + " of one block", L);
        std::int64_t n = checked_mul(vocab_size, C, what + " (vocab_size x n_embd)", L);
        n = checked_add(n, checked_mul(block_size, C, what + " (block_size x n_embd)", L), what, L);
        n = checked_add(n, checked_mul(n_layer, block, what + " (n_layer x block)", L), what, L);
        return checked_add(n, ln, what, L);
    }

    /// Elements of a KV cache for one sequence: keys and values of every layer and position.
    std::int64_t kv_cache_elements() const {
        const std::string what = "GPTConfig: KV cache elements (2 x n_layer x block_size x n_embd)";
        return detail::checked_mul(
            2, detail::checked_mul(detail::checked_mul(n_layer, block_size, what), n_embd, what),
            what, kMaxParameters);
    }

    /// An upper estimate of the activation elements one training step over batch_size sequences
    /// needs: logits and their gradient (2 V), per layer about 20 C of residual, attention and MLP
    /// buffers plus the attention matrix (2 n_head T), per position. std::invalid_argument naming
    /// batch_size when it exceeds kMaxStepElements.
    std::int64_t step_elements(std::int64_t batch_size) const {
        using detail::checked_add, detail::checked_mul;
        const std::string what = "batch_size = " + std::to_string(batch_size) +
                                 ": activation elements of one step";
        if (batch_size <= 0) {
            throw std::invalid_argument("batch_size must be positive, got " +
                                        std::to_string(batch_size));
        }
        const std::int64_t L = kMaxStepElements;
        const std::int64_t layer = checked_add(checked_mul(20, n_embd, what, L),
                                               checked_mul(2 * n_head, block_size, what, L), what, L);
        const std::int64_t per_position = checked_add(
            checked_mul(2, vocab_size, what, L), checked_mul(n_layer, layer, what, L), what, L);
        return checked_mul(checked_mul(batch_size, block_size, what, L), per_position, what, L);
    }

    bool operator==(const GPTConfig&) const = default;
};

/// For a configuration read from a file (checkpoint, safetensors): validate(), and the bound on
/// what the file may make generation allocate: a KV cache of at most max(kMinLoadedKVCacheElements,
/// num_parameters()) elements per sequence. std::runtime_error starting with `source`.
inline void validate_loaded_config(const GPTConfig& c, const std::string& source) {
    std::int64_t cache = 0, parameters = 0;
    try {
        c.validate();
        cache = c.kv_cache_elements();
        parameters = c.num_parameters();
    } catch (const std::invalid_argument& e) {
        throw std::runtime_error(source + ": invalid configuration: " + e.what());
    }
    if (cache > std::max(kMinLoadedKVCacheElements, parameters)) {
        throw std::runtime_error(
            source + ": the configuration's KV cache (" + std::to_string(cache) +
            " elements per sequence) exceeds both its parameter count (" +
            std::to_string(parameters) + ") and " + std::to_string(kMinLoadedKVCacheElements) +
            ", the most a loaded model may ask for (docs/formats.md, Limits)");
    }
}

}  // namespace nanogpt
