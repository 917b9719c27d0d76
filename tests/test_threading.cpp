// Tests for threading.hpp: the public thread count.
#include <catch2/catch.hpp>

#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string

#include <nanogpt/threading.hpp>

TEST_CASE("threading: set_num_threads sets what num_threads reports", "[threading]") {
    const int saved = nanogpt::num_threads();
    REQUIRE(saved >= 1);
    nanogpt::set_num_threads(1);
    CHECK(nanogpt::num_threads() == 1);
    nanogpt::set_num_threads(3);  // more threads than cores is allowed, in both backends
    CHECK(nanogpt::num_threads() == 3);
    nanogpt::set_num_threads(saved);
    CHECK(nanogpt::num_threads() == saved);
}

TEST_CASE("threading: set_num_threads rejects counts below one", "[threading]") {
    const int saved = nanogpt::num_threads();
    SECTION("zero") {
        REQUIRE_THROWS_AS(nanogpt::set_num_threads(0), std::invalid_argument);
        REQUIRE_THROWS_WITH(nanogpt::set_num_threads(0), "set_num_threads: n must be >= 1, got 0");
    }
    SECTION("negative") {
        REQUIRE_THROWS_WITH(nanogpt::set_num_threads(-2),
                            "set_num_threads: n must be >= 1, got -2");
    }
    CHECK(nanogpt::num_threads() == saved);  // a rejected call changes nothing
}

TEST_CASE("threading: the backend is named", "[threading]") {
#ifdef _OPENMP
    CHECK(std::string(nanogpt::threading_backend()) == "openmp");
#else
    CHECK(std::string(nanogpt::threading_backend()) == "std::thread");
#endif
}
