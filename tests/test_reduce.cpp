// Tests for detail/reduce.hpp: sum_of and max_of (NEON on AArch64) give bit for bit the results
// of their portable twins, for lengths around the 16-lane blocks, NaN and signed zeros included.
#include <catch2/catch.hpp>

#include <cmath>    // std::sin, std::isnan
#include <cstdint>  // std::int64_t
#include <cstring>  // std::memcmp
#include <limits>   // std::numeric_limits
#include <vector>   // std::vector

#include "nanogpt/detail/fast_math.hpp"
#include "nanogpt/detail/reduce.hpp"

namespace {

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }

std::vector<float> wave(std::int64_t n) {
    std::vector<float> x(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) x[i] = std::sin(0.7f * float(i)) * float(1 + i % 7);
    return x;
}

}  // namespace

TEST_CASE("reduce: sum_of equals its portable twin bit for bit", "[reduce]") {
    using nanogpt::detail::sum_of;
    using nanogpt::detail::sum_of_portable;
    for (std::int64_t n : {0, 1, 15, 16, 17, 31, 32, 33, 100, 1000, 4099}) {
        const auto x = wave(n);
        auto plain = [&](std::int64_t i) { return x[i]; };
        auto exps = [&](std::int64_t i) { return nanogpt::detail::exp_fast(x[i] - 7.0f); };
        INFO("n " << n);
        CHECK(same_bits(sum_of<float>(n, plain), sum_of_portable<float>(n, plain)));
        CHECK(same_bits(sum_of<float>(n, exps), sum_of_portable<float>(n, exps)));
        // The portable twin against a double sum: the lanes only reorder the additions.
        double exact = 0.0;
        for (float v : x) exact += v;
        CHECK(sum_of_portable<float>(n, plain) == Approx(exact).margin(1e-3));
    }
}

TEST_CASE("reduce: max_of equals its portable twin, NaN and signed zeros included",
          "[reduce]") {
    using nanogpt::detail::max_of;
    using nanogpt::detail::max_of_portable;
    for (std::int64_t n : {1, 15, 16, 17, 32, 47, 1000}) {
        auto x = wave(n);
        INFO("n " << n);
        CHECK(same_bits(max_of(n, x.data()), max_of_portable(n, x.data())));
        double best = x[0];
        for (float v : x) best = v > best ? v : best;
        CHECK(max_of(n, x.data()) == float(best));
        // A NaN in a lane: the comparison is false, so the select keeps the other value in both.
        x[static_cast<std::size_t>(n / 2)] = std::numeric_limits<float>::quiet_NaN();
        CHECK(same_bits(max_of(n, x.data()), max_of_portable(n, x.data())));
    }
    std::vector<float> zeros(40, 0.0f);
    for (std::size_t i = 0; i < zeros.size(); i += 3) zeros[i] = -0.0f;
    CHECK(same_bits(max_of(40, zeros.data()), max_of_portable(40, zeros.data())));
    std::vector<float> all_nan(20, std::numeric_limits<float>::quiet_NaN());
    CHECK(std::isnan(max_of(20, all_nan.data())));
}
