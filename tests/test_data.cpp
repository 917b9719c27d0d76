// Tests for data.hpp: reading text, the train/val split, and batch sampling.
#include <catch2/catch.hpp>

#include <cstdint>     // std::int32_t, std::int64_t, std::uint16_t
#include <cstdlib>     // std::getenv
#include <filesystem>  // std::filesystem::temp_directory_path, exists, remove
#include <fstream>     // std::ofstream
#include <limits>      // std::numeric_limits
#include <numeric>     // std::iota
#include <span>        // std::span
#include <string>      // std::string
#include <vector>      // std::vector

#include <nanogpt/data.hpp>
#include <nanogpt/tokenizer.hpp>

namespace {

/// 0, 1, ..., n-1: a token's value is its position, so a batch row reveals its offset.
std::vector<std::int32_t> iota_tokens(std::int32_t n) {
    std::vector<std::int32_t> tokens(static_cast<std::size_t>(n));
    std::iota(tokens.begin(), tokens.end(), 0);
    return tokens;
}

}  // namespace

TEST_CASE("data: read_text_file reads bytes and names the path on failure") {
    const auto path =
        (std::filesystem::temp_directory_path() / "nanogpt_test_data_read.txt").string();
    const std::string text = "line one\r\nline two\n\xe6\x97\xa5\n";
    {
        std::ofstream out(path, std::ios::binary);
        out << text;
    }
    REQUIRE(nanogpt::read_text_file(path) == text);
    std::filesystem::remove(path);

    SECTION("missing file") {
        REQUIRE_THROWS_AS(nanogpt::read_text_file(path), std::runtime_error);
        REQUIRE_THROWS_WITH(nanogpt::read_text_file(path),
                            Catch::Contains(path) && Catch::Contains("No such file or directory"));
    }
    SECTION("a directory") {
        const auto dir = std::filesystem::temp_directory_path().string();
        REQUIRE_THROWS_WITH(nanogpt::read_text_file(dir), Catch::Contains(dir));
    }
}

TEST_CASE("data: split_train_val keeps the first 90% for training") {
    const auto tokens = iota_tokens(1000);
    const auto split = nanogpt::split_train_val(tokens);
    REQUIRE(split.train.size() == 900);
    REQUIRE(split.val.size() == 100);
    REQUIRE(split.train.front() == 0);
    REQUIRE(split.train.back() == 899);
    REQUIRE(split.val.front() == 900);
    REQUIRE(split.val.back() == 999);

    // n = int(0.9 * 11) = int(9.9) = 9, as in nanoGPT.
    const auto small = nanogpt::split_train_val(iota_tokens(11));
    REQUIRE(small.train.size() == 9);
    REQUIRE(small.val.size() == 2);

    const auto half = nanogpt::split_train_val(iota_tokens(10), 0.5);
    REQUIRE(half.train == std::vector<std::int32_t>{0, 1, 2, 3, 4});
    REQUIRE(half.val == std::vector<std::int32_t>{5, 6, 7, 8, 9});
}

TEST_CASE("data: split_train_val rejects fractions outside the open interval 0..1") {
    const auto tokens = iota_tokens(10);
    for (double bad : {0.0, 1.0, -0.5, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
        REQUIRE_THROWS_AS(nanogpt::split_train_val(tokens, bad), std::invalid_argument);
    }
    REQUIRE_THROWS_WITH(nanogpt::split_train_val(tokens, 1.5),
                        "split_train_val: train_fraction must be in (0, 1), got 1.5");
}

TEST_CASE("data: get_batch returns windows with y shifted by one") {
    const std::int64_t B = 8, T = 16;
    const auto data = iota_tokens(100);
    nanogpt::Random rng(42);
    const auto batch = nanogpt::get_batch(data, B, T, rng);
    REQUIRE(batch.x.shape() == nanogpt::Shape{B, T});
    REQUIRE(batch.y.shape() == nanogpt::Shape{B, T});
    const auto x = batch.x.to_vector(), y = batch.y.to_vector();
    for (std::int64_t b = 0; b < B; ++b) {
        const std::int32_t offset = x[static_cast<std::size_t>(b * T)];
        REQUIRE(offset >= 0);
        REQUIRE(offset <= 100 - T - 1);  // the last window ends at the last token
        for (std::int64_t t = 0; t < T; ++t) {
            const auto i = static_cast<std::size_t>(b * T + t);
            REQUIRE(x[i] == data[static_cast<std::size_t>(offset + t)]);
            REQUIRE(y[i] == data[static_cast<std::size_t>(offset + t + 1)]);
        }
    }
}

TEST_CASE("data: get_batch offsets cover the whole range") {
    // 4 possible offsets; 400 draws should see every one and nothing else.
    const auto data = iota_tokens(7);
    nanogpt::Random rng(1);
    std::vector<int> seen(4, 0);
    for (int step = 0; step < 100; ++step) {
        const auto x = nanogpt::get_batch(data, 4, 3, rng).x.to_vector();
        for (std::size_t b = 0; b < 4; ++b) {
            REQUIRE(x[b * 3] >= 0);
            REQUIRE(x[b * 3] <= 3);
            ++seen[static_cast<std::size_t>(x[b * 3])];
        }
    }
    for (int count : seen) REQUIRE(count > 0);
}

TEST_CASE("data: get_batch is deterministic for a seed") {
    const auto data = iota_tokens(1000);
    nanogpt::Random a(7), b(7), c(8);
    for (int step = 0; step < 3; ++step) {
        const auto batch_a = nanogpt::get_batch(data, 4, 32, a);
        const auto batch_b = nanogpt::get_batch(data, 4, 32, b);
        const auto batch_c = nanogpt::get_batch(data, 4, 32, c);
        REQUIRE(batch_a.x.to_vector() == batch_b.x.to_vector());
        REQUIRE(batch_a.y.to_vector() == batch_b.y.to_vector());
        REQUIRE(batch_a.x.to_vector() != batch_c.x.to_vector());
    }
}

TEST_CASE("data: get_batch over exactly block_size + 1 tokens has one window") {
    const auto data = iota_tokens(65);
    nanogpt::Random rng(3);
    const auto batch = nanogpt::get_batch(data, 3, 64, rng);
    const auto x = batch.x.to_vector(), y = batch.y.to_vector();
    for (std::size_t b = 0; b < 3; ++b) {
        for (std::size_t t = 0; t < 64; ++t) {
            REQUIRE(x[b * 64 + t] == static_cast<std::int32_t>(t));
            REQUIRE(y[b * 64 + t] == static_cast<std::int32_t>(t + 1));
        }
    }
}

TEST_CASE("data: get_batch works over spans of other integer types") {
    std::vector<std::uint16_t> data(50);
    std::iota(data.begin(), data.end(), std::uint16_t{60000});  // above int16, as GPT-2 ids can be
    nanogpt::Random rng(5), same(5);
    const auto batch =
        nanogpt::get_batch(std::span<const std::uint16_t>(data.data(), data.size()), 2, 8, rng);
    const auto from_vector = nanogpt::get_batch(data, 2, 8, same);
    REQUIRE(batch.x.to_vector() == from_vector.x.to_vector());
    const auto x = batch.x.to_vector(), y = batch.y.to_vector();
    for (std::size_t i = 0; i < x.size(); ++i) {
        REQUIRE(x[i] >= 60000);
        REQUIRE(y[i] == x[i] + 1);
    }

    const std::vector<std::int64_t> wide{0, 1, std::int64_t{1} << 40};
    REQUIRE_THROWS_AS(nanogpt::get_batch(wide, 1, 2, rng), std::out_of_range);
    REQUIRE_THROWS_WITH(nanogpt::get_batch(wide, 1, 2, rng), Catch::Contains("at position 2"));
}

TEST_CASE("data: get_batch errors name the argument") {
    const auto data = iota_tokens(50);
    nanogpt::Random rng(0);
    SECTION("dataset too short") {
        REQUIRE_THROWS_AS(nanogpt::get_batch(data, 4, 64, rng), std::invalid_argument);
        REQUIRE_THROWS_WITH(nanogpt::get_batch(data, 4, 64, rng),
                            "get_batch: dataset has 50 tokens, needs at least block_size + 1 = 65");
        REQUIRE_THROWS_WITH(nanogpt::get_batch(data, 4, 50, rng),
                            Catch::Contains("block_size + 1 = 51"));
    }
    SECTION("batch_size") {
        REQUIRE_THROWS_WITH(nanogpt::get_batch(data, 0, 8, rng),
                            "get_batch: batch_size must be >= 1, got 0");
    }
    SECTION("block_size") {
        REQUIRE_THROWS_WITH(nanogpt::get_batch(data, 4, -1, rng),
                            "get_batch: block_size must be >= 1, got -1");
    }
}

TEST_CASE("data: tiny Shakespeare gives the nanoGPT vocabulary and split") {
    const char* dir = std::getenv("NANOGPT_DATA_DIR");
    if (dir == nullptr) {
        WARN("tiny Shakespeare test skipped: NANOGPT_DATA_DIR is not set");
        return;
    }
    const std::string path = std::string(dir) + "/tinyshakespeare.txt";
    if (!std::filesystem::exists(path)) {
        WARN("tiny Shakespeare test skipped: " << path << " does not exist");
        return;
    }
    const std::string text = nanogpt::read_text_file(path);
    REQUIRE(text.size() == 1115394);
    const auto tok = nanogpt::CharTokenizer::from_text(text);
    REQUIRE(tok.vocab_size() == 65);
    std::string vocabulary;
    for (const auto& s : tok.symbols()) vocabulary += s;
    REQUIRE(vocabulary == "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
    const auto tokens = tok.encode(text);
    REQUIRE(tok.decode(tokens) == text);
    const auto split = nanogpt::split_train_val(tokens);
    REQUIRE(split.train.size() == 1003854);
    REQUIRE(split.val.size() == 111540);
}
