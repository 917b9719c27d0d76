// Tests for config.hpp and detail/checked_math.hpp: every size derived from a configuration is
// overflow-checked and bounded (issue 11, items 1, 5 and 9), and the errors name the field.
#include <catch2/catch.hpp>

#include <cstdint>    // INT64_MAX
#include <stdexcept>  // std::invalid_argument, std::runtime_error
#include <string>     // std::string

#include <nanogpt/config.hpp>
#include <nanogpt/detail/checked_math.hpp>
#include <nanogpt/parameters.hpp>

using namespace nanogpt;

TEST_CASE("config: checked arithmetic reports overflow by name", "[config]") {
    CHECK(detail::checked_mul(3, 4, "x") == 12);
    CHECK(detail::checked_add(3, 4, "x") == 7);
    CHECK_THROWS_AS(detail::checked_mul(INT64_MAX, 2, "rows"), std::invalid_argument);
    CHECK_THROWS_WITH(detail::checked_mul(INT64_MAX, 2, "rows"), Catch::StartsWith("rows = "));
    CHECK_THROWS_AS(detail::checked_mul<std::runtime_error>(-1, 2, "n"), std::runtime_error);
    CHECK_THROWS_WITH(detail::checked_add(INT64_MAX, 1, "total"), Catch::Contains("total"));
    CHECK_THROWS_WITH(detail::checked_mul(10, 10, "small", 99), Catch::Contains("exceeds 99"));
}

TEST_CASE("config: sizes that overflow int64 or exceed the limits are rejected", "[config]") {
    GPTConfig c = GPTConfig::tiny();
    SECTION("item 1: n_embd whose square overflows") {
        c.n_embd = std::int64_t(1) << 40;
        c.n_head = 1;
        CHECK_THROWS_AS(c.validate(), std::invalid_argument);
        CHECK_THROWS_WITH(c.num_parameters(), Catch::StartsWith("GPTConfig: num_parameters"));
    }
    SECTION("item 5: block_size = INT64_MAX") {
        c.block_size = INT64_MAX;
        CHECK_THROWS_WITH(c.validate(), Catch::Contains("block_size x n_embd"));
    }
    SECTION("item 5: n_embd = 2^32 with one head") {
        c.n_embd = std::int64_t(1) << 32;
        c.n_head = 1;
        CHECK_THROWS_AS(c.validate(), std::invalid_argument);
    }
    SECTION("a parameter count just over kMaxParameters") {
        c.vocab_size = 2000000000;
        c.n_embd = 64;  // 1.28e11 embedding weights > 2^36
        CHECK_THROWS_WITH(c.validate(), Catch::Contains("vocab_size x n_embd"));
    }
    SECTION("item 5: batch_size = 10^12") {
        CHECK_THROWS_AS(c.step_elements(1000000000000), std::invalid_argument);
        CHECK_THROWS_WITH(c.step_elements(1000000000000), Catch::Contains("batch_size = "));
        CHECK_THROWS_WITH(c.step_elements(0), Catch::Contains("batch_size must be positive"));
        CHECK(c.step_elements(12) > 0);
    }
    SECTION("presets are within every limit") {
        for (const char* name : {"gpt2", "reference", "shakespeare_char", "cpu_small", "tiny"}) {
            const GPTConfig p = GPTConfig::preset(name);
            CHECK_NOTHROW(p.validate());
            CHECK_NOTHROW(validate_loaded_config(p, name));
            CHECK_NOTHROW(p.step_elements(12));
        }
    }
}

TEST_CASE("config: a loaded model's KV cache is bounded by its size (item 9)", "[config]") {
    const GPTConfig deep{100000, 10, 1000, 1, 1, 0.0, true};
    CHECK_NOTHROW(deep.validate());  // legal to train, if anyone wants to
    CHECK_THROWS_AS(validate_loaded_config(deep, "file 'x'"), std::runtime_error);
    CHECK_THROWS_WITH(validate_loaded_config(deep, "file 'x'"),
                      Catch::StartsWith("file 'x': ") && Catch::Contains("200000000"));
    GPTConfig bad = GPTConfig::tiny();
    bad.n_head = 3;
    CHECK_THROWS_WITH(validate_loaded_config(bad, "file 'y'"),
                      Catch::StartsWith("file 'y': invalid configuration"));
}

TEST_CASE("config: Parameters::add rejects bad counts and finds names in constant time",
          "[config]") {
    SECTION("item 1: a negative capacity") {
        CHECK_THROWS_WITH(Parameters<float>(-5), Catch::Contains("must not be negative"));
    }
    SECTION("a shape whose element count overflows") {
        Parameters<float> p(16);
        const std::int64_t big = std::int64_t(1) << 32;
        CHECK_THROWS_AS(p.add("w", Shape{big, big, big}, Init::zeros()), std::invalid_argument);
        CHECK(p.used() == 0);
    }
    SECTION("more than the capacity") {
        Parameters<float> p(16);
        CHECK_THROWS_AS(p.add("w", Shape{17}, Init::zeros()), std::logic_error);
    }
    SECTION("item 4: 20,000 names, one duplicate") {
        Parameters<float> p(20001);
        for (int i = 0; i < 20000; ++i) p.add("layer." + std::to_string(i), Shape{1}, Init::ones());
        CHECK(p.find("layer.19999").data() == p.data() + 19999);
        CHECK_THROWS_WITH(p.add("layer.7", Shape{1}, Init::ones()),
                          Catch::Contains("duplicate name 'layer.7'"));
        CHECK_THROWS_WITH(p.find("layer.20000"), Catch::Contains("no parameter named"));
    }
}
