// config.hpp — GPTConfig: the shape of a GPT, its validation and named presets.
// Read next: sampling.hpp, model.hpp.
#pragma once

#include <cstdint>    // std::int64_t
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string, std::to_string

#include <nanogpt/dtype.hpp>

namespace nanogpt {

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

    /// GPT-2 small: 124,439,808 parameters (lm_head tied to wte).
    static GPTConfig gpt2() { return {1024, 50257, 12, 12, 768, 0.0, true}; }
    /// The reference size of this project: GPT-2 small's 12 x 12 x 64 over a 512-token context.
    static GPTConfig reference() { return {512, 50257, 12, 12, 768, 0.0, true}; }
    /// nanoGPT's config/train_shakespeare_char.py model (character vocabulary of tiny Shakespeare).
    static GPTConfig shakespeare_char() { return {256, 65, 6, 6, 384, 0.2, true}; }
    /// A small model that trains in minutes on a CPU: 4 layers of 2 heads of 64 dims, block 64.
    static GPTConfig cpu_small() { return {64, 65, 4, 2, 128, 0.0, true}; }
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
    }

    /// Parameter count with lm_head tied to wte; the same formula sizes the parameter buffer.
    std::int64_t num_parameters() const {
        const std::int64_t C = n_embd, b = bias ? 1 : 0;
        const std::int64_t ln = C + b * C;
        const std::int64_t block = 2 * ln + (3 * C * C + b * 3 * C) + (C * C + b * C) +
                                   (4 * C * C + b * 4 * C) + (4 * C * C + b * C);
        return vocab_size * C + block_size * C + n_layer * block + ln;
    }

    bool operator==(const GPTConfig&) const = default;
};

}  // namespace nanogpt
