// utf8.hpp — decoding and encoding one Unicode code point as UTF-8, shared by the character
// tokenizer, GPT-2's byte-level BPE and the JSON readers.
#pragma once

#include <cstddef>      // std::size_t
#include <string>       // std::string
#include <string_view>  // std::string_view

namespace nanogpt::detail {

inline constexpr char32_t kMaxCodePoint = 0x10FFFF;

/// Decodes the code point starting at text[pos] into cp; returns its length in bytes, or 0 when the
/// bytes there are not valid UTF-8 (bad lead byte, truncated, overlong, surrogate, above U+10FFFF).
inline std::size_t decode_utf8(std::string_view text, std::size_t pos, char32_t& cp) {
    const auto lead = static_cast<unsigned char>(text[pos]);
    std::size_t len = 0;
    char32_t min = 0;  // smallest code point that needs `len` bytes: anything below is overlong
    if (lead < 0x80) {
        cp = lead;
        return 1;
    } else if ((lead & 0xE0) == 0xC0) {
        len = 2, min = 0x80, cp = static_cast<char32_t>(lead & 0x1F);
    } else if ((lead & 0xF0) == 0xE0) {
        len = 3, min = 0x800, cp = static_cast<char32_t>(lead & 0x0F);
    } else if ((lead & 0xF8) == 0xF0) {
        len = 4, min = 0x10000, cp = static_cast<char32_t>(lead & 0x07);
    } else {
        return 0;  // a continuation byte or 0xF8..0xFF cannot start a character
    }
    if (text.size() - pos < len) return 0;
    for (std::size_t i = 1; i < len; ++i) {
        const auto byte = static_cast<unsigned char>(text[pos + i]);
        if ((byte & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | static_cast<char32_t>(byte & 0x3F);
    }
    if (cp < min || cp > kMaxCodePoint || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/// Appends the UTF-8 encoding of a valid code point.
inline void encode_utf8(char32_t cp, std::string& out) {
    auto put = [&out](char32_t bits) {
        out.push_back(static_cast<char>(static_cast<unsigned char>(bits)));
    };
    if (cp < 0x80) {
        put(cp);
    } else if (cp < 0x800) {
        put(0xC0 | (cp >> 6)), put(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        put(0xE0 | (cp >> 12)), put(0x80 | ((cp >> 6) & 0x3F)), put(0x80 | (cp & 0x3F));
    } else {
        put(0xF0 | (cp >> 18)), put(0x80 | ((cp >> 12) & 0x3F)), put(0x80 | ((cp >> 6) & 0x3F)),
            put(0x80 | (cp & 0x3F));
    }
}

}  // namespace nanogpt::detail
