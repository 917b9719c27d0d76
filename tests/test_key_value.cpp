// Tests for key_value.hpp, and the training program's config file built on it (issue 11,
// item 6): every value the parser accepts writes and reads back identically.
#include <catch2/catch.hpp>

#include <cstdio>      // std::remove
#include <filesystem>  // std::filesystem::temp_directory_path
#include <fstream>     // std::ofstream
#include <string>      // std::string
#include <vector>      // std::vector

#include <nanogpt/random.hpp>
#include <nanogpt/key_value.hpp>

#include "../examples/train_config.hpp"

using namespace nanogpt;

namespace {
struct Split {
    bool content;
    std::string key, value, error;
};
Split split(const std::string& line) {
    Split s;
    s.content = split_key_value(line, s.key, s.value, s.error);
    return s;
}
}  // namespace

TEST_CASE("key_value: lines, comments and quotes", "[key_value]") {
    CHECK_FALSE(split("").content);
    CHECK_FALSE(split("   # only a comment").content);
    CHECK(split("a = b # note").value == "b");
    CHECK(split("a = b#c").value == "b#c");  // '#' starts a comment only after a space
    CHECK(split("a =#c").value == "#c");
    CHECK(split("out_dir = 'out'").value == "out");  // nanoGPT's Python style
    CHECK(split("out_dir = \"o #1\"  # comment").value == "o #1");
    CHECK(split("x = 'C:\\dir'").value == "C:\\dir");  // single quotes are literal
    CHECK(split("x = \"a\\\"b\\\\c\\n\"").value == "a\"b\\c\n");
    CHECK(split("x = \"  padded  \"").value == "  padded  ");
    CHECK(split("x =").value.empty());
    CHECK(split("x = 'open").error == "unterminated quote '");
    CHECK(split("x = \"a\" b").error.find("unexpected text after") == 0);
    CHECK(split("x = \"\\q\"").error.find("invalid escape") == 0);
    CHECK(split("no equals sign").error == "expected 'key = value', got 'no equals sign'");
    CHECK(split(" = v").error == "missing key before '='");
}

TEST_CASE("key_value: quote_value reads back exactly, for random strings", "[key_value]") {
    const std::string alphabet = "ab #'\"\\\t\n\r=x ";
    Random rng(5);
    for (int trial = 0; trial < 2000; ++trial) {
        std::string value;
        const auto n = rng.next_u64() % 8;
        for (std::uint64_t i = 0; i < n; ++i) value += alphabet[rng.next_u64() % alphabet.size()];
        const Split s = split("key = " + quote_value(value) + "  # comment");
        INFO("value '" << value << "' written as " << quote_value(value));
        REQUIRE(s.error.empty());
        REQUIRE(s.value == value);
    }
    CHECK(quote_value("out") == "out");
    CHECK(quote_value("o #1") == "\"o #1\"");
}

TEST_CASE("key_value: train's config.txt round-trips every accepted value", "[key_value]") {
    const std::string path =
        (std::filesystem::temp_directory_path() / "nanogpt_test_config.txt").string();
    for (const std::string& out_dir :
         {std::string("o #1"), std::string("'quoted'"), std::string(" lead"),
          std::string("a\\b"), std::string("say \"hi\""), std::string(""), std::string("#")}) {
        examples::TrainConfig config;
        config.set("out_dir", out_dir, "--out_dir");
        config.set("batch_size", " 7", "--batch_size");  // accepted by stoll, kept as typed
        config.set("learning_rate", "1e-3", "--learning_rate");
        config.set("bias", "True", "--bias");
        {
            std::ofstream(path) << config.to_text();
        }
        examples::TrainConfig again;
        again.load_file(path);
        INFO("out_dir '" << out_dir << "'");
        CHECK(again.text("out_dir") == out_dir);
        CHECK(again.to_text() == config.to_text());
        CHECK(again.integer("batch_size") == 7);
    }
    std::remove(path.c_str());
}
