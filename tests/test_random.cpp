// Tests for random.hpp: the seedable generator's streams, ranges and saved state.
#include <catch2/catch.hpp>

#include <cmath>    // std::sqrt, std::abs (double)
#include <cstdlib>  // std::abs (int)
#include <cstdint>  // std::uint64_t
#include <vector>   // std::vector

#include <nanogpt/random.hpp>

using nanogpt::Random;

TEST_CASE("random: a seed gives one stream; another seed another", "[random]") {
    Random a(7), b(7), c(8);
    int differ = 0;
    for (int i = 0; i < 100; ++i) {
        const std::uint64_t x = a.next_u64();
        REQUIRE(x == b.next_u64());
        differ += x != c.next_u64();
    }
    CHECK(differ == 100);
    // reseed restarts the stream, including a pending second normal of a Box-Muller pair.
    Random d(7);
    const double first = d.normal();
    d.reseed(7);
    CHECK(d.normal() == first);
}

TEST_CASE("random: a copy and a restored state continue the same stream", "[random]") {
    Random rng(3);
    (void)rng.normal();  // leaves the spare normal pending, which the state must carry
    Random copy = rng;
    const Random::State saved = rng.state();
    std::vector<double> expected;
    for (int i = 0; i < 5; ++i) expected.push_back(rng.normal());
    Random restored(999);
    restored.set_state(saved);
    for (int i = 0; i < 5; ++i) {
        CHECK(copy.normal() == expected[static_cast<std::size_t>(i)]);
        CHECK(restored.normal() == expected[static_cast<std::size_t>(i)]);
    }
}

TEST_CASE("random: uniform, uniform_int and normal stay in range with the right moments",
          "[random]") {
    Random rng(11);
    const int n = 200000;
    std::vector<int> counts(6, 0);
    double sum = 0, sum_sq = 0;
    for (int i = 0; i < n; ++i) {
        const double u = rng.uniform();
        REQUIRE(u >= 0.0);
        REQUIRE(u < 1.0);
        const std::uint64_t k = rng.uniform_int(6);
        REQUIRE(k < 6);
        ++counts[static_cast<std::size_t>(k)];
        const double z = rng.normal();
        sum += z;
        sum_sq += z * z;
    }
    for (int count : counts) CHECK(std::abs(count - n / 6) < 5 * std::sqrt(n / 6.0));
    const double mean = sum / n, variance = sum_sq / n - mean * mean;
    CHECK(std::abs(mean) < 0.01);  // about 4.5 standard errors
    CHECK(std::abs(variance - 1.0) < 0.015);
}

TEST_CASE("random: splitmix64 matches the reference sequence", "[random]") {
    // splitmix64 of 0 is the first output of Vigna's splitmix64 generator seeded with 0.
    CHECK(nanogpt::splitmix64(0) == 0xe220a8397b1dcdafULL);
}
