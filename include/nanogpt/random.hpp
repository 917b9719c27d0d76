// random.hpp — the one seedable random generator behind everything random in nanogpt.hpp.
//
// Why not <random>'s engines and distributions? std::normal_distribution and friends are
// implementation-defined, so the same seed would give different weights under libstdc++ and
// libc++. We implement xoshiro256** (seeded through splitmix64) and Box-Muller ourselves,
// so a seed means the same run everywhere. Read next: threading.hpp.
#pragma once

#include <cmath>    // std::sqrt, std::log, std::cos
#include <cstdint>  // std::uint64_t

namespace nanogpt {

/// splitmix64: a tiny 64-bit mixer; used to expand seeds and as a counter-based hash (dropout).
inline std::uint64_t splitmix64(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/// Seedable pseudo-random generator (xoshiro256**). Copyable: a copy continues the same stream.
class Random {
public:
    explicit Random(std::uint64_t seed = 1337) { reseed(seed); }

    void reseed(std::uint64_t seed) {
        std::uint64_t x = seed;
        for (auto& word : state_) {
            x = splitmix64(x);
            word = x;
        }
        has_spare_normal_ = false;
    }

    std::uint64_t next_u64() {
        const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
        const std::uint64_t t = state_[1] << 17;
        state_[2] ^= state_[0];
        state_[3] ^= state_[1];
        state_[1] ^= state_[2];
        state_[0] ^= state_[3];
        state_[2] ^= t;
        state_[3] = rotl(state_[3], 45);
        return result;
    }

    /// Uniform double in [0, 1) with 53 random bits.
    double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

    /// Uniform integer in [0, n) for n > 0 (rejection sampling, so no modulo bias).
    std::uint64_t uniform_int(std::uint64_t n) {
        const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;
        std::uint64_t r = next_u64();
        while (r >= limit) r = next_u64();
        return r % n;
    }

    /// Standard normal sample (Box-Muller; the second value of each pair is kept for the next
    /// call).
    double normal() {
        if (has_spare_normal_) {
            has_spare_normal_ = false;
            return spare_normal_;
        }
        double u1 = uniform();
        while (u1 <= 0.0) u1 = uniform();  // log(0) is -inf
        const double u2 = uniform();
        const double radius = std::sqrt(-2.0 * std::log(u1));
        const double angle = 6.283185307179586 * u2;
        spare_normal_ = radius * std::sin(angle);
        has_spare_normal_ = true;
        return radius * std::cos(angle);
    }

    /// The full state, so checkpoints can resume the exact stream.
    struct State {
        std::uint64_t words[4];
        double spare_normal;
        bool has_spare_normal;
    };
    State state() const {
        return {{state_[0], state_[1], state_[2], state_[3]}, spare_normal_, has_spare_normal_};
    }
    void set_state(const State& s) {
        for (int i = 0; i < 4; ++i) state_[i] = s.words[i];
        spare_normal_ = s.spare_normal;
        has_spare_normal_ = s.has_spare_normal;
    }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

    std::uint64_t state_[4] = {};
    double spare_normal_ = 0.0;
    bool has_spare_normal_ = false;
};

}  // namespace nanogpt
