// Tests for tokenizer.hpp: vocabulary, round trips, and the error messages users see.
#include <catch2/catch.hpp>

#include <algorithm>  // std::is_sorted, std::adjacent_find
#include <cstdint>    // std::int32_t
#include <string>     // std::string
#include <vector>     // std::vector

#include <nanogpt/tokenizer.hpp>

using nanogpt::CharTokenizer;

TEST_CASE("tokenizer: vocabulary is the sorted set of characters") {
    const auto tok = CharTokenizer::from_text("hello world\nhello!");
    const std::vector<std::string> expected{"\n", " ", "!", "d", "e", "h", "l", "o", "r", "w"};
    REQUIRE(tok.symbols() == expected);
    REQUIRE(tok.vocab_size() == 10);
    REQUIRE(std::is_sorted(tok.symbols().begin(), tok.symbols().end()));
    REQUIRE(std::adjacent_find(tok.symbols().begin(), tok.symbols().end()) == tok.symbols().end());
    REQUIRE(tok.encode("hello") == std::vector<std::int32_t>{5, 4, 6, 6, 7});
}

TEST_CASE("tokenizer: ASCII round trip") {
    const std::string text =
        "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n";
    const auto tok = CharTokenizer::from_text(text);
    const auto ids = tok.encode(text);
    REQUIRE(ids.size() == text.size());
    for (std::int32_t id : ids) {
        REQUIRE(id >= 0);
        REQUIRE(id < tok.vocab_size());
    }
    REQUIRE(tok.decode(ids) == text);
    std::string streamed;
    for (std::int32_t id : ids) streamed += tok.decode_one(id);
    REQUIRE(streamed == text);
}

TEST_CASE("tokenizer: multilingual round trip sorts by code point") {
    // 1-, 2-, 3- and 4-byte UTF-8: ASCII, Latin-1, Greek, CJK, emoji.
    const std::string text =
        "caf\u00e9 \u03b1\u03b2\u03b3 \u65e5\u672c\u8a9e \U0001F600 na\u00efve";
    const auto tok = CharTokenizer::from_text(text);
    REQUIRE(tok.decode(tok.encode(text)) == text);
    REQUIRE(tok.encode(text).size() == 20);  // characters, not bytes
    // Python: sorted(set(text)) orders by code point, so U+1F600 is last and ' ' first.
    REQUIRE(tok.symbols().front() == " ");
    REQUIRE(tok.symbols().back() == "\U0001F600");
    REQUIRE(tok.vocab_size() == 16);
    REQUIRE(tok.decode_one(tok.vocab_size() - 1) == "\U0001F600");
    REQUIRE(tok.encode("\u00e9") == std::vector<std::int32_t>{7});  // after ' ' a c e f n v
}

TEST_CASE("tokenizer: unknown characters are named with code point and byte offset") {
    const auto tok = CharTokenizer::from_text("abc \n");
    SECTION("non-ASCII") {
        REQUIRE_THROWS_AS(tok.encode("abc\u00e9"), std::invalid_argument);
        REQUIRE_THROWS_WITH(tok.encode("abc\u00e9"),
                            "CharTokenizer: unknown character '\u00e9' (U+00E9) at byte 3");
    }
    SECTION("ASCII") {
        REQUIRE_THROWS_WITH(tok.encode("ab z"),
                            "CharTokenizer: unknown character 'z' (U+007A) at byte 3");
    }
    SECTION("control characters are escaped") {
        REQUIRE_THROWS_WITH(tok.encode("a\tb"),
                            "CharTokenizer: unknown character '\\t' (U+0009) at byte 1");
        REQUIRE_THROWS_WITH(tok.encode("a\x1b"), Catch::Contains("'\\x1B' (U+001B)"));
    }
    SECTION("beyond the basic plane") {
        REQUIRE_THROWS_WITH(tok.encode("\U0001F600"),
                            Catch::Contains("U+1F600") && Catch::Contains("at byte 0"));
    }
}

TEST_CASE("tokenizer: invalid UTF-8 is rejected with its byte offset") {
    SECTION("from_text, stray continuation byte") {
        REQUIRE_THROWS_AS(CharTokenizer::from_text("ab\x80"), std::invalid_argument);
        REQUIRE_THROWS_WITH(CharTokenizer::from_text("ab\x80"),
                            "CharTokenizer: invalid UTF-8 at byte 2 (0x80)");
    }
    SECTION("from_text, truncated sequence") {
        REQUIRE_THROWS_WITH(CharTokenizer::from_text("abc\xe6\x97"), Catch::Contains("at byte 3"));
    }
    SECTION("from_text, overlong encoding and surrogate") {
        REQUIRE_THROWS_WITH(CharTokenizer::from_text("\xc0\xaf"),
                            Catch::Contains("invalid UTF-8 at byte 0"));
        REQUIRE_THROWS_WITH(CharTokenizer::from_text("x\xed\xa0\x80"),
                            Catch::Contains("invalid UTF-8 at byte 1"));
    }
    SECTION("encode") {
        const auto tok = CharTokenizer::from_text("abc");
        REQUIRE_THROWS_WITH(tok.encode("abc\xff"), "CharTokenizer: invalid UTF-8 at byte 3 (0xFF)");
    }
    SECTION("empty text") {
        REQUIRE_THROWS_AS(CharTokenizer::from_text(""), std::invalid_argument);
        REQUIRE_THROWS_WITH(CharTokenizer::from_text(""), Catch::Contains("empty text"));
    }
}

TEST_CASE("tokenizer: from_symbols restores a vocabulary") {
    const std::string text = "to be or not to be, \u00bfqu\u00e9?";
    const auto tok = CharTokenizer::from_text(text);
    const auto restored = CharTokenizer::from_symbols(tok.symbols());
    REQUIRE(restored.symbols() == tok.symbols());
    REQUIRE(restored.encode(text) == tok.encode(text));
    REQUIRE(restored.decode(tok.encode(text)) == text);
}

TEST_CASE("tokenizer: from_symbols validates its input") {
    SECTION("empty list") {
        REQUIRE_THROWS_WITH(CharTokenizer::from_symbols({}), Catch::Contains("no symbols"));
    }
    SECTION("duplicate") {
        REQUIRE_THROWS_AS(CharTokenizer::from_symbols({"a", "b", "b"}), std::invalid_argument);
        REQUIRE_THROWS_WITH(CharTokenizer::from_symbols({"a", "b", "b"}),
                            Catch::Contains("symbol 2") && Catch::Contains("unique and sorted"));
    }
    SECTION("unsorted") {
        REQUIRE_THROWS_WITH(
            CharTokenizer::from_symbols({"b", "a"}),
            Catch::Contains("symbol 1 'a' (U+0061) is not greater than the previous U+0062"));
    }
    SECTION("more than one character") {
        REQUIRE_THROWS_WITH(CharTokenizer::from_symbols({"a", "bc"}),
                            Catch::Contains("symbol 1 \"bc\" is not a single character"));
    }
    SECTION("empty or invalid UTF-8") {
        REQUIRE_THROWS_WITH(CharTokenizer::from_symbols({"a", ""}),
                            Catch::Contains("symbol 1 is empty or not valid"));
        REQUIRE_THROWS_WITH(CharTokenizer::from_symbols({"\xff"}),
                            Catch::Contains("symbol 0 is empty or not valid"));
    }
}

TEST_CASE("tokenizer: decoding an out-of-range id names the id and vocab size") {
    const auto tok = CharTokenizer::from_text("abc");
    REQUIRE_THROWS_AS(tok.decode_one(3), std::out_of_range);
    REQUIRE_THROWS_WITH(tok.decode_one(3),
                        "CharTokenizer: token id 3 out of range for vocab_size 3");
    REQUIRE_THROWS_AS(tok.decode({0, 1, -1}), std::out_of_range);
    REQUIRE_THROWS_WITH(tok.decode({0, 1, -1}), Catch::Contains("token id -1"));
    REQUIRE(tok.decode({}).empty());
}
