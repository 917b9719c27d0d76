// bench_configs.hpp — the training workloads the benchmarks and benchmarks/pytorch_reference.py
// time, by name. Keep the two lists identical: compare_pytorch.sh puts them side by side.
#pragma once

#include <cstdint>    // std::int64_t
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string
#include <vector>     // std::vector

#include <nanogpt/config.hpp>

namespace bench {

struct Workload {
    std::string name;
    nanogpt::GPTConfig config;
    std::int64_t batch_size;
};

/// Dropout is 0 everywhere so both sides do the same arithmetic.
inline std::vector<Workload> workloads() {
    const nanogpt::GPTConfig recipe = nanogpt::GPTConfig::cpu_small();  // nanoGPT's CPU recipe
    nanogpt::GPTConfig shakespeare = nanogpt::GPTConfig::shakespeare_char();
    shakespeare.dropout = 0.0;
    nanogpt::GPTConfig gpt2_512 = nanogpt::GPTConfig::reference();
    nanogpt::GPTConfig gpt2_64 = nanogpt::GPTConfig::gpt2();
    gpt2_64.block_size = 64;
    return {{"recipe", recipe, 12},
            {"shakespeare_b64", shakespeare, 64},
            {"shakespeare_b8", shakespeare, 8},
            {"gpt2_block512_b4", gpt2_512, 4},
            {"gpt2_block64_b4", gpt2_64, 4}};
}

inline Workload find_workload(const std::string& name) {
    for (const auto& w : workloads())
        if (w.name == name) return w;
    throw std::invalid_argument("unknown workload '" + name + "'");
}

/// nanoGPT's estimate_mfu numerator: 6N + 12 L H Q T flops per token, N without wpe.
inline double flops_per_token(const nanogpt::GPTConfig& c) {
    const double n = static_cast<double>(c.num_parameters() - c.block_size * c.n_embd);
    const double q = static_cast<double>(c.n_embd / c.n_head);
    return 6.0 * n +
           12.0 * static_cast<double>(c.n_layer * c.n_head) * q * static_cast<double>(c.block_size);
}

}  // namespace bench
