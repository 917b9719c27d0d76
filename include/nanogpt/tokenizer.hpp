// tokenizer.hpp — CharTokenizer: text <-> token ids, one token per character, as in nanoGPT's
// shakespeare_char. The vocabulary is the sorted set of characters in the training text.
//
// A "character" is a Unicode code point decoded from UTF-8, and symbols sort by code point, which
// is exactly Python's sorted(set(text)): tiny Shakespeare gives nanoGPT's 65 symbols. ASCII text
// takes a 128-entry table; other characters a binary search; nothing is allocated per character.
// Builds on the standard library only; read next: bpe_tokenizer.hpp (GPT-2's tokenizer).
#pragma once

#include <algorithm>    // std::lower_bound
#include <array>        // std::array
#include <cstddef>      // std::size_t, std::ptrdiff_t
#include <cstdint>      // std::int32_t, std::uint32_t
#include <stdexcept>    // std::invalid_argument, std::out_of_range
#include <string>       // std::string, std::to_string
#include <string_view>  // std::string_view
#include <utility>      // std::move
#include <vector>       // std::vector

#include <nanogpt/detail/utf8.hpp>

namespace nanogpt {

namespace detail {

/// Uppercase hex with at least `digits` digits: hex(0xE9, 4) == "00E9".
inline std::string hex(std::uint32_t value, int digits) {
    std::string s;
    for (; value != 0 || digits > 0; value >>= 4, --digits) {
        s.insert(s.begin(), "0123456789ABCDEF"[value & 0xF]);
    }
    return s;
}

/// "U+00E9": how Unicode names a code point.
inline std::string code_point_name(char32_t cp) {
    return "U+" + hex(static_cast<std::uint32_t>(cp), 4);
}

/// The character quoted for an error message; control characters are escaped so the message stays
/// on one line and shows something visible ('\t', '\x1B', '\u0085').
inline std::string quote_character(char32_t cp) {
    switch (cp) {
        case '\0':
            return "'\\0'";
        case '\t':
            return "'\\t'";
        case '\n':
            return "'\\n'";
        case '\r':
            return "'\\r'";
        case '\'':
            return "'\\''";
        case '\\':
            return "'\\\\'";
        default:
            break;
    }
    const auto u = static_cast<std::uint32_t>(cp);
    if (u < 0x20 || u == 0x7F) return "'\\x" + hex(u, 2) + "'";
    if (u >= 0x80 && u < 0xA0) return "'\\u" + hex(u, 4) + "'";  // C1 controls
    std::string quoted = "'";
    encode_utf8(cp, quoted);
    return quoted + "'";
}

[[noreturn]] inline void throw_invalid_utf8(std::string_view text, std::size_t pos) {
    throw std::invalid_argument("CharTokenizer: invalid UTF-8 at byte " + std::to_string(pos) +
                                " (0x" + hex(static_cast<unsigned char>(text[pos]), 2) + ")");
}

}  // namespace detail

/// Character-level tokenizer: token id i is the i-th smallest code point of the vocabulary.
class CharTokenizer {
public:
    /// Vocabulary = the sorted set of characters in `text` (non-empty, valid UTF-8).
    static CharTokenizer from_text(std::string_view text) {
        if (text.empty()) {
            throw std::invalid_argument("CharTokenizer: cannot build a vocabulary from empty text");
        }
        // One bit per possible code point (136 KiB): linear in the text, no sort, any text size.
        std::vector<bool> seen(detail::kMaxCodePoint + 1, false);
        for (std::size_t pos = 0; pos < text.size();) {
            char32_t cp = 0;
            const std::size_t len = detail::decode_utf8(text, pos, cp);
            if (len == 0) detail::throw_invalid_utf8(text, pos);
            seen[cp] = true;
            pos += len;
        }
        std::vector<char32_t> code_points;
        for (char32_t cp = 0; cp <= detail::kMaxCodePoint; ++cp)
            if (seen[cp]) code_points.push_back(cp);
        return CharTokenizer(std::move(code_points));
    }

    /// Restores a vocabulary (e.g. from a checkpoint): each symbol one UTF-8 character, strictly
    /// increasing by code point, as symbols() returns them.
    static CharTokenizer from_symbols(std::vector<std::string> symbols) {
        if (symbols.empty()) throw std::invalid_argument("CharTokenizer::from_symbols: no symbols");
        std::vector<char32_t> code_points;
        code_points.reserve(symbols.size());
        for (std::size_t i = 0; i < symbols.size(); ++i) {
            const std::string& s = symbols[i];
            const std::string where = "CharTokenizer::from_symbols: symbol " + std::to_string(i);
            char32_t cp = 0;
            const std::size_t len = s.empty() ? 0 : detail::decode_utf8(s, 0, cp);
            if (len == 0) throw std::invalid_argument(where + " is empty or not valid UTF-8");
            if (len != s.size()) {
                throw std::invalid_argument(where + " \"" + s + "\" is not a single character (" +
                                            std::to_string(s.size()) + " bytes)");
            }
            if (!code_points.empty() && cp <= code_points.back()) {
                throw std::invalid_argument(where + " " + detail::quote_character(cp) + " (" +
                                            detail::code_point_name(cp) +
                                            ") is not greater than the previous " +
                                            detail::code_point_name(code_points.back()) +
                                            ": symbols must be unique and sorted");
            }
            code_points.push_back(cp);
        }
        return CharTokenizer(std::move(code_points));
    }

    /// The vocabulary, one UTF-8 string per token id.
    const std::vector<std::string>& symbols() const { return symbols_; }
    std::int32_t vocab_size() const { return static_cast<std::int32_t>(symbols_.size()); }

    /// Token ids of `text`; throws std::invalid_argument on a character outside the vocabulary.
    std::vector<std::int32_t> encode(std::string_view text) const {
        std::vector<std::int32_t> ids;
        ids.reserve(text.size());  // one id per byte at most: the only allocation
        const auto non_ascii = code_points_.begin() + static_cast<std::ptrdiff_t>(first_non_ascii_);
        for (std::size_t pos = 0; pos < text.size();) {
            const auto byte = static_cast<unsigned char>(text[pos]);
            if (byte < 0x80) {
                const std::int32_t id = ascii_ids_[byte];
                if (id < 0) throw_unknown(byte, pos);
                ids.push_back(id);
                ++pos;
                continue;
            }
            char32_t cp = 0;
            const std::size_t len = detail::decode_utf8(text, pos, cp);
            if (len == 0) detail::throw_invalid_utf8(text, pos);
            const auto it = std::lower_bound(non_ascii, code_points_.end(), cp);
            if (it == code_points_.end() || *it != cp) throw_unknown(cp, pos);
            ids.push_back(static_cast<std::int32_t>(it - code_points_.begin()));
            pos += len;
        }
        return ids;
    }

    /// The text of a sequence of token ids; std::out_of_range on an id outside the vocabulary.
    std::string decode(const std::vector<std::int32_t>& ids) const {
        std::string text;
        text.reserve(ids.size());
        for (std::int32_t id : ids) text += symbol(id);
        return text;
    }

    /// The text of one token id (sampling prints tokens as they are generated).
    std::string decode_one(std::int32_t id) const { return symbol(id); }

private:
    // code_points: strictly increasing valid code points, at least one.
    explicit CharTokenizer(std::vector<char32_t> code_points)
        : code_points_(std::move(code_points)) {
        ascii_ids_.fill(-1);
        symbols_.reserve(code_points_.size());
        for (std::size_t i = 0; i < code_points_.size(); ++i) {
            const char32_t cp = code_points_[i];
            if (cp < 0x80) {
                ascii_ids_[cp] = static_cast<std::int32_t>(i);
                first_non_ascii_ = i + 1;
            }
            std::string s;
            detail::encode_utf8(cp, s);
            symbols_.push_back(std::move(s));
        }
    }

    const std::string& symbol(std::int32_t id) const {
        if (id < 0 || id >= vocab_size()) {
            throw std::out_of_range("CharTokenizer: token id " + std::to_string(id) +
                                    " out of range for vocab_size " + std::to_string(vocab_size()));
        }
        return symbols_[static_cast<std::size_t>(id)];
    }

    [[noreturn]] static void throw_unknown(char32_t cp, std::size_t pos) {
        throw std::invalid_argument(
            "CharTokenizer: unknown character " + detail::quote_character(cp) + " (" +
            detail::code_point_name(cp) + ") at byte " + std::to_string(pos));
    }

    std::vector<std::string> symbols_;         // token id -> UTF-8 text
    std::vector<char32_t> code_points_;        // token id -> code point, strictly increasing
    std::array<std::int32_t, 128> ascii_ids_;  // ASCII byte -> token id; -1 = not in the vocabulary
    std::size_t first_non_ascii_ = 0;  // ASCII sorts first: non-ASCII lookups search from here
};

}  // namespace nanogpt
