// json.hpp — the one JSON reader of the library: what a safetensors header and GPT-2's
// encoder.json hold (objects, arrays, strings, non-negative integers), strictly (RFC 8259 syntax;
// floats, negative numbers, true/false/null are rejected as unexpected for these files).
//
// Untrusted input is expected: nesting is bounded (the recursion depth), duplicate object keys are
// found with a hash set (linear time) and reported, and every error is a std::runtime_error
// "<source>: malformed JSON at byte N: <what>". Used by safetensors.hpp and bpe_tokenizer.hpp.
#pragma once

#include <cstddef>        // std::size_t
#include <cstdint>        // std::uint64_t
#include <stdexcept>      // std::runtime_error
#include <string>         // std::string, std::to_string
#include <string_view>    // std::string_view
#include <unordered_set>  // std::unordered_set
#include <utility>        // std::move
#include <vector>         // std::vector

#include <nanogpt/detail/utf8.hpp>

namespace nanogpt::detail {

struct Json {
    enum class Kind { object, array, string, integer };
    Kind kind = Kind::integer;
    std::uint64_t integer = 0;
    std::string string;
    std::vector<std::string> keys;  // object keys, in file order, parallel to items
    std::vector<Json> items;        // array elements or object values
};

class JsonParser {
public:
    /// `source` starts every error message, e.g. "safetensors 'model.safetensors'".
    JsonParser(std::string_view text, std::string source, int max_depth = 8)
        : text_(text), source_(std::move(source)), max_depth_(max_depth) {}

    /// One value and nothing after it but whitespace (safetensors writers pad with spaces).
    Json parse_document() {
        Json value = parse_value(0);
        skip_space();
        if (pos_ != text_.size()) fail("unexpected text after the top-level value");
        return value;
    }

    [[noreturn]] void fail(const std::string& what) const {
        throw std::runtime_error(source_ + ": malformed JSON at byte " + std::to_string(pos_) +
                                 ": " + what);
    }

private:
    void skip_space() {
        while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' ||
                                       text_[pos_] == '\r' || text_[pos_] == '\t'))
            ++pos_;
    }
    char peek() {
        skip_space();
        if (pos_ >= text_.size()) fail("unexpected end of the text");
        return text_[pos_];
    }
    void expect(char c) {
        if (peek() != c) fail(std::string("expected '") + c + "', found '" + text_[pos_] + "'");
        ++pos_;
    }

    Json parse_value(int depth) {
        if (depth > max_depth_) fail("nested too deeply");  // bounds the recursion
        const char c = peek();
        if (c == '{' || c == '[') return parse_container(depth, c == '{');
        Json value;
        if (c == '"') {
            value.kind = Json::Kind::string;
            value.string = parse_string();
        } else if (c >= '0' && c <= '9') {
            value.integer = parse_integer();
        } else {
            fail(std::string("unexpected character '") + c +
                 "' (expected an object, array, string or non-negative integer)");
        }
        return value;
    }

    Json parse_container(int depth, bool object) {
        Json value;
        value.kind = object ? Json::Kind::object : Json::Kind::array;
        std::unordered_set<std::string> seen;
        ++pos_;  // '{' or '['
        const char close = object ? '}' : ']';
        while (true) {
            if (value.items.empty() && peek() == close) break;
            if (object) {
                if (peek() != '"') fail("expected a string key");
                std::string key = parse_string();
                if (!seen.insert(key).second) fail("duplicate key '" + key + "'");
                value.keys.push_back(std::move(key));
                expect(':');
            }
            value.items.push_back(parse_value(depth + 1));
            if (peek() == close) break;
            expect(',');
        }
        ++pos_;  // '}' or ']'
        return value;
    }

    std::uint64_t parse_integer() {
        const std::size_t start = pos_;
        std::uint64_t v = 0;
        while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
            const auto digit = static_cast<std::uint64_t>(text_[pos_] - '0');
            if (v > (UINT64_MAX - digit) / 10) fail("integer too large");
            v = v * 10 + digit;
            ++pos_;
        }
        if (text_[start] == '0' && pos_ - start > 1) fail("leading zero in an integer");
        if (pos_ < text_.size() &&
            (text_[pos_] == '.' || text_[pos_] == 'e' || text_[pos_] == 'E')) {
            fail("only integers are expected here");
        }
        return v;
    }

    std::string parse_string() {
        ++pos_;  // opening quote
        std::string s;
        while (true) {
            if (pos_ >= text_.size()) fail("unterminated string");
            const char c = text_[pos_++];
            if (c == '"') return s;
            if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
            if (c != '\\') {
                s += c;
                continue;
            }
            if (pos_ >= text_.size()) fail("unterminated string");
            const char e = text_[pos_++];
            // A backslash and one of  " \ / b f n r t  stands for one character; 'u' starts 4 hex
            // digits.
            constexpr std::string_view from = "\"\\/bfnrt", to = "\"\\/\b\f\n\r\t";
            if (e == 'u') {
                encode_utf8(static_cast<char32_t>(parse_code_point()), s);
            } else if (const std::size_t k = from.find(e); k != std::string_view::npos) {
                s += to[k];
            } else {
                fail(std::string("invalid escape '\\") + e + "'");
            }
        }
    }

    unsigned parse_hex4() {
        if (text_.size() - pos_ < 4) fail("truncated \\u escape");
        unsigned v = 0;
        for (int i = 0; i < 4; ++i) {
            const char h = text_[pos_++];
            const char lower = h >= 'A' && h <= 'F' ? static_cast<char>(h - 'A' + 'a') : h;
            const std::size_t d = std::string_view("0123456789abcdef").find(lower);
            if (d == std::string_view::npos) fail("invalid hex digit in a \\u escape");
            v = v * 16 + static_cast<unsigned>(d);
        }
        return v;
    }
    // The hex digits of a 'u' escape are a UTF-16 unit: a surrogate pair (two escapes, D800-DBFF
    // then DC00-DFFF) stands for one code point above U+FFFF.
    unsigned parse_code_point() {
        const unsigned hi = parse_hex4();
        if (hi >= 0xDC00 && hi <= 0xDFFF) fail("unpaired low surrogate");
        if (hi < 0xD800 || hi > 0xDBFF) return hi;
        if (text_.substr(pos_, 2) != "\\u") fail("unpaired high surrogate");
        pos_ += 2;
        const unsigned lo = parse_hex4();
        if (lo < 0xDC00 || lo > 0xDFFF) fail("unpaired high surrogate");
        return 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
    }

    std::string_view text_;
    std::string source_;
    int max_depth_;
    std::size_t pos_ = 0;
};

/// A string as a JSON literal, quotes included.
inline std::string json_quote(const std::string& s) {
    std::string out = "\"";
    for (const char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            const char* hex = "0123456789abcdef";
            out += "\\u00";
            out += hex[(c >> 4) & 0xF];
            out += hex[c & 0xF];
        } else {
            out += c;
        }
    }
    return out + "\"";
}

}  // namespace nanogpt::detail
