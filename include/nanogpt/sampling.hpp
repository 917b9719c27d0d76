// sampling.hpp — picking the next token from one row of logits: temperature, then top-k, then
// top-p (nucleus), then a draw from the seeded generator. Read next: model.hpp.
#pragma once

#include <algorithm>  // std::partial_sort, std::max_element
#include <cmath>      // std::exp, std::isfinite
#include <cstdint>    // std::int64_t, std::int32_t
#include <numeric>    // std::iota
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::to_string
#include <vector>     // std::vector

#include <nanogpt/random.hpp>

namespace nanogpt {

struct SamplingOptions {
    double temperature = 1.0;  // > 0; below 1 sharpens, above 1 flattens the distribution
    std::int64_t top_k = 0;    // keep only the k most likely tokens (0 = all); top_k = 1 is greedy
    double top_p = 1.0;        // keep the smallest set whose probability reaches top_p (1 = all)

    void validate() const {
        if (!(temperature > 0.0) || !std::isfinite(temperature)) {
            throw std::invalid_argument("sampling: temperature must be > 0, got " +
                                        std::to_string(temperature));
        }
        if (top_k < 0)
            throw std::invalid_argument("sampling: top_k must be >= 0, got " +
                                        std::to_string(top_k));
        if (!(top_p > 0.0 && top_p <= 1.0)) {
            throw std::invalid_argument("sampling: top_p must be in (0, 1], got " +
                                        std::to_string(top_p));
        }
    }
};

/// Draws a token id from logits[0 .. V) under the options. `scratch` is reused between calls.
template <class T>
std::int32_t sample_token(const T* logits, std::int64_t V, const SamplingOptions& options,
                          Random& rng, std::vector<std::int32_t>& scratch) {
    options.validate();
    std::vector<std::int32_t>& order = scratch;
    order.resize(static_cast<std::size_t>(V));
    std::iota(order.begin(), order.end(), 0);
    const std::int64_t k = options.top_k > 0 && options.top_k < V ? options.top_k : V;
    // Most likely first; ties broken by id so the result is fully determined.
    auto more_likely = [&](std::int32_t a, std::int32_t b) {
        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    };
    std::partial_sort(order.begin(), order.begin() + k, order.end(), more_likely);
    const double inv_temperature = 1.0 / options.temperature;
    const double top = static_cast<double>(logits[order[0]]);
    std::vector<double> probs(static_cast<std::size_t>(k));
    double total = 0.0;
    for (std::int64_t i = 0; i < k; ++i) {
        probs[i] = std::exp((static_cast<double>(logits[order[i]]) - top) * inv_temperature);
        total += probs[i];
    }
    std::int64_t keep = k;  // nucleus: the shortest prefix reaching top_p of the mass
    if (options.top_p < 1.0) {
        double mass = 0.0;
        for (std::int64_t i = 0; i < k; ++i) {
            mass += probs[i] / total;
            if (mass >= options.top_p) {
                keep = i + 1;
                break;
            }
        }
        total = 0.0;
        for (std::int64_t i = 0; i < keep; ++i) total += probs[i];
    }
    double u = rng.uniform() * total;
    for (std::int64_t i = 0; i < keep; ++i) {
        u -= probs[i];
        if (u < 0.0) return order[i];
    }
    return order[keep - 1];  // rounding left a sliver of mass: the last kept token
}

}  // namespace nanogpt
