// bpe_tokenizer.hpp — GPT2Tokenizer: GPT-2's byte-level byte-pair encoding, read from OpenAI's
// encoder.json + vocab.bpe (or Hugging Face's vocab.json + merges.txt, the same content).
//
// Encoding runs in two stages. Pre-tokenisation cuts the text into words with GPT-2's pattern
//     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// implemented by hand (pretoken_end below), so no word ever spans a letter/number/symbol boundary
// and a single space sticks to the word after it. Then each word's bytes start as one token per
// byte and the adjacent pair with the lowest merge rank is merged, again and again, until no pair
// has a rank. Token strings in the files spell bytes with printable characters (GPT-2's
// bytes_to_unicode: a space is 'Ġ'); we convert them back to raw bytes at load time, so everything
// after loading works on bytes and decode() is a table lookup.
//
// Invalid UTF-8: GPT-2 works on bytes, but its pattern is defined on characters. A byte that does
// not start a valid UTF-8 sequence is treated as one character of its own in the "symbol" class
// ([^\s\p{L}\p{N}]), so encode() is total and decode(encode(x)) == x for any byte string. Valid
// UTF-8 tokenises exactly as tiktoken's "gpt2" encoding (tests/data/gpt2_tokenizer_vectors.txt).
//
// Builds on tokenizer.hpp (UTF-8 helpers) and detail/unicode_tables.hpp (character classes);
// read next: data.hpp (datasets and batches).
#pragma once

#include <array>          // std::array
#include <climits>        // INT32_MAX
#include <cstddef>        // std::size_t
#include <cstdint>        // std::int32_t, std::uint64_t
#include <fstream>        // std::ifstream
#include <functional>     // std::equal_to, std::hash
#include <iterator>       // std::istreambuf_iterator
#include <memory>         // std::shared_ptr, std::make_shared
#include <mutex>          // std::mutex, std::lock_guard
#include <stdexcept>      // std::runtime_error, std::out_of_range
#include <string>         // std::string, std::to_string
#include <string_view>    // std::string_view
#include <unordered_map>  // std::unordered_map
#include <utility>        // std::move, std::pair
#include <vector>         // std::vector

#include "detail/unicode_tables.hpp"
#include "tokenizer.hpp"

namespace nanogpt {

namespace detail {

// ---- GPT-2's byte alphabet ----
// Each byte gets a printable code point so that BPE files are plain text: bytes that are already
// printable and not space ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) stand for themselves, the
// other 68 take U+0100, U+0101, ... in byte order.
inline std::array<char32_t, 256> gpt2_byte_alphabet() {
    std::array<char32_t, 256> alphabet{};
    char32_t next_free = 256;
    for (char32_t b = 0; b < 256; ++b) {
        const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        alphabet[b] = printable ? b : next_free++;
    }
    return alphabet;
}

/// Whole file as bytes; std::runtime_error naming the path when it cannot be read.
inline std::string read_file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("GPT2Tokenizer: cannot open '" + path + "'");
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// ---- encoder.json: a flat JSON object {"token": id, ...} ----
// Just enough JSON for this one shape; any other shape is reported with the byte offset.
class VocabJsonReader {
public:
    VocabJsonReader(std::string_view text, const std::string& path) : text_(text), path_(path) {}

    /// Calls on_entry(key, id, offset of the key) for each member, in file order.
    template <class OnEntry>
    void read(OnEntry on_entry) {
        expect('{');
        skip_space();
        bool more = peek() != '}';
        while (more) {
            expect('"');
            const std::size_t key_offset = pos_ - 1;
            std::string key = read_string();
            expect(':');
            skip_space();
            on_entry(key, read_id(), key_offset);
            skip_space();
            more = peek() == ',';
            if (more) ++pos_;
        }
        expect('}');
        skip_space();
        if (pos_ != text_.size()) fail("unexpected data after the object");
    }

    [[noreturn]] void fail(const std::string& what) const { fail_at(pos_, what); }
    [[noreturn]] void fail_at(std::size_t offset, const std::string& what) const {
        throw std::runtime_error("GPT2Tokenizer: '" + path_ + "': malformed JSON at byte " +
                                 std::to_string(offset) + ": " + what);
    }

private:
    char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
    void skip_space() {
        while (pos_ < text_.size() &&
               (peek() == ' ' || peek() == '\n' || peek() == '\r' || peek() == '\t'))
            ++pos_;
    }
    void expect(char c) {
        skip_space();
        if (pos_ >= text_.size() || text_[pos_] != c) fail(std::string("expected '") + c + "'");
        ++pos_;
    }
    std::int32_t read_id() {
        std::int64_t value = 0;
        const std::size_t start = pos_;
        while (pos_ < text_.size() && peek() >= '0' && peek() <= '9' && value <= INT32_MAX)
            value = value * 10 + (text_[pos_++] - '0');
        if (pos_ == start) fail("expected a token id (a non-negative integer)");
        if (value > INT32_MAX) fail("token id too large");
        return static_cast<std::int32_t>(value);
    }
    std::uint32_t read_hex4() {
        std::uint32_t value = 0;
        for (int i = 0; i < 4; ++i, ++pos_) {
            const char c = peek();
            const int digit = c >= '0' && c <= '9'   ? c - '0'
                              : c >= 'a' && c <= 'f' ? c - 'a' + 10
                              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                     : -1;
            if (digit < 0) fail("expected 4 hex digits after \\u");
            value = value * 16 + static_cast<std::uint32_t>(digit);
        }
        return value;
    }
    // \uXXXX names a UTF-16 unit: characters above U+FFFF come as a high+low surrogate pair.
    char32_t read_unicode_escape() {
        const std::uint32_t unit = read_hex4();
        if (unit >= 0xDC00 && unit <= 0xDFFF) fail("unpaired low surrogate");
        if (unit < 0xD800 || unit > 0xDBFF) return unit;
        if (text_.substr(pos_, 2) != "\\u") fail("high surrogate without a low surrogate");
        pos_ += 2;
        const std::uint32_t low = read_hex4();
        if (low < 0xDC00 || low > 0xDFFF) fail("high surrogate without a low surrogate");
        return 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
    }
    std::string read_string() {  // after the opening quote
        std::string out;
        for (;;) {
            if (pos_ >= text_.size()) fail("unterminated string");
            const char c = text_[pos_++];
            if (c == '"') return out;
            if (static_cast<unsigned char>(c) < 0x20)
                fail_at(pos_ - 1, "control character in string");
            if (c != '\\') {
                out.push_back(c);
                continue;
            }
            // The two-character escapes: the letter after the backslash, and the byte it means.
            static constexpr std::string_view kLetters = "\"\\/bfnrt", kBytes = "\"\\/\b\f\n\r\t";
            if (pos_ >= text_.size()) fail("unterminated string");
            const char e = text_[pos_++];
            if (e == 'u') {
                encode_utf8(read_unicode_escape(), out);
                continue;
            }
            const std::size_t k = kLetters.find(e);
            if (k == std::string_view::npos) fail_at(pos_ - 1, "unknown escape");
            out.push_back(kBytes[k]);
        }
    }

    std::string_view text_;
    const std::string& path_;
    std::size_t pos_ = 0;
};

// ---- pre-tokenisation ----

/// ASCII classes precomputed: most text is ASCII, and this skips both decoding and the search.
inline constexpr std::array<CharClass, 128> kAsciiClasses = [] {
    std::array<CharClass, 128> classes{};
    for (char32_t c = 0; c < 128; ++c) classes[c] = char_class(c);
    return classes;
}();

struct CharAt {
    CharClass cls;
    std::size_t len;  // bytes
};

/// The character at text[pos] (pos < size); an invalid UTF-8 byte is a one-byte symbol.
inline CharAt char_at(std::string_view text, std::size_t pos) {
    const auto byte = static_cast<unsigned char>(text[pos]);
    if (byte < 0x80) return {kAsciiClasses[byte], 1};
    char32_t cp = 0;
    const std::size_t len = decode_utf8(text, pos, cp);
    if (len == 0) return {CharClass::kOther, 1};
    return {char_class(cp), len};
}

/// Length of the contraction 's 't 're 've 'm 'll 'd at text[pos] == '\'', or 0. Case-sensitive,
/// like GPT-2's pattern: "'S" is a symbol followed by a letter.
inline std::size_t contraction_length(std::string_view text, std::size_t pos) {
    const std::string_view rest = text.substr(pos + 1);
    if (rest.starts_with("re") || rest.starts_with("ve") || rest.starts_with("ll")) return 3;
    if (!rest.empty() && (rest[0] == 's' || rest[0] == 't' || rest[0] == 'm' || rest[0] == 'd'))
        return 2;
    return 0;
}

/// End of the word that GPT-2's pattern matches at text[pos] (pos < size): the alternatives are
/// tried in the pattern's order and the first that matches wins, each as greedy as the regex.
inline std::size_t pretoken_end(std::string_view text, std::size_t pos) {
    if (text[pos] == '\'') {
        if (const std::size_t n = contraction_length(text, pos)) return pos + n;
    }
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space, then a run of one class.
    std::size_t run = pos;
    CharAt c = char_at(text, pos);
    if (text[pos] == ' ' && pos + 1 < text.size()) {
        const CharAt next = char_at(text, pos + 1);
        if (next.cls != CharClass::kSpace) run = pos + 1, c = next;
    }
    if (c.cls != CharClass::kSpace) {
        const CharClass cls = c.cls;
        std::size_t end = run + c.len;
        while (end < text.size() && (c = char_at(text, end)).cls == cls) end += c.len;
        return end;
    }
    // `\s+(?!\S)` backtracks one character off a run that a non-space follows, leaving that
    // character (usually a space) to start the next word; when the run is a single character
    // that fails and `\s+` takes it. A run reaching the end of the text is taken whole.
    std::size_t last = pos, end = pos;
    while (end < text.size() && (c = char_at(text, end)).cls == CharClass::kSpace)
        last = end, end += c.len;
    return (end == text.size() || last == pos) ? end : last;
}

// Hash that accepts std::string and std::string_view alike, so lookups by view never allocate.
struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

template <class Value>
using StringMap = std::unordered_map<std::string, Value, StringHash, std::equal_to<>>;

}  // namespace detail

/// GPT-2's byte-level BPE tokenizer (50257 tokens): tiktoken's "gpt2" encoding.
class GPT2Tokenizer {
public:
    /// The id of "<|endoftext|>", GPT-2's document separator and its only special token.
    static constexpr std::int32_t kEndOfText = 50256;
    static constexpr std::string_view kEndOfTextText = "<|endoftext|>";
    /// Words whose BPE result is remembered; when full, the cache starts over.
    static constexpr std::size_t kMaxCachedWords = std::size_t{1} << 17;

    /// Reads the vocabulary (encoder.json / vocab.json) and the merges (vocab.bpe / merges.txt).
    static GPT2Tokenizer load(const std::string& encoder_json_path,
                              const std::string& merges_path) {
        GPT2Tokenizer tok;
        tok.load_vocab(encoder_json_path);
        tok.load_merges(merges_path);
        return tok;
    }

    /// Number of tokens: 50257 for GPT-2's files.
    std::int32_t vocab_size() const { return static_cast<std::int32_t>(tokens_.size()); }

    /// Token ids of `text`, with every literal "<|endoftext|>" encoded as kEndOfText — tiktoken's
    /// encode(text, allowed_special="all"). We chose this default because GPT-2 training data
    /// separates documents with that string; use encode_ordinary() for untrusted text.
    std::vector<std::int32_t> encode(std::string_view text) const {
        std::vector<std::int32_t> ids;
        ids.reserve(text.size() / 3);
        for (std::size_t pos = 0;;) {
            const std::size_t found = text.find(kEndOfTextText, pos);
            append_ordinary(text.substr(pos, found - pos), ids);
            if (found == std::string_view::npos) return ids;
            ids.push_back(kEndOfText);
            pos = found + kEndOfTextText.size();
        }
    }

    /// Token ids of `text` as plain text: "<|endoftext|>" is encoded like any other characters.
    std::vector<std::int32_t> encode_ordinary(std::string_view text) const {
        std::vector<std::int32_t> ids;
        ids.reserve(text.size() / 3);
        append_ordinary(text, ids);
        return ids;
    }

    /// The bytes of a sequence of ids; std::out_of_range on an id outside the vocabulary.
    std::string decode(const std::vector<std::int32_t>& ids) const {
        std::string text;
        for (std::int32_t id : ids) text += token_bytes(id);
        return text;
    }

    /// The bytes of one token, for streaming output; may be an incomplete UTF-8 character.
    std::string decode_one(std::int32_t id) const { return token_bytes(id); }

    /// Forgets the remembered BPE results (benchmarks time a cold cache with it).
    void clear_cache() const {
        const std::lock_guard<std::mutex> lock(cache_->mutex);
        cache_->words.clear();
    }

private:
    struct Merge {
        std::int32_t rank;  // position in the merges file, 0 first: lower ranks merge first
        std::int32_t id;    // the merged token
    };
    // Shared by copies (the vocabulary is the same) and locked, so encode() is thread-safe.
    struct WordCache {
        std::mutex mutex;
        detail::StringMap<std::vector<std::int32_t>> words;
    };

    GPT2Tokenizer() : cache_(std::make_shared<WordCache>()) {}

    static std::uint64_t pair_key(std::int32_t left, std::int32_t right) {
        return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) |
               static_cast<std::uint32_t>(right);
    }

    const std::string& token_bytes(std::int32_t id) const {
        if (id < 0 || id >= vocab_size()) {
            throw std::out_of_range("GPT2Tokenizer: token id " + std::to_string(id) +
                                    " out of range for vocab_size " + std::to_string(vocab_size()));
        }
        return tokens_[static_cast<std::size_t>(id)];
    }

    // A token string from the files, in GPT-2's byte alphabet, as raw bytes; "" if it has a
    // character outside the alphabet.
    std::string alphabet_to_bytes(std::string_view token) const {
        std::string bytes;
        for (std::size_t pos = 0; pos < token.size();) {
            char32_t cp = 0;
            const std::size_t len = detail::decode_utf8(token, pos, cp);
            if (len == 0 || cp >= byte_of_char_.size() || byte_of_char_[cp] < 0) return "";
            bytes.push_back(static_cast<char>(byte_of_char_[cp]));
            pos += len;
        }
        return bytes;
    }

    void load_vocab(const std::string& path) {
        const auto alphabet = detail::gpt2_byte_alphabet();
        byte_of_char_.assign(256 + 68, -1);
        for (int b = 0; b < 256; ++b) byte_of_char_[alphabet[static_cast<std::size_t>(b)]] = b;

        const std::string text = detail::read_file_bytes(path);
        std::vector<std::pair<std::string, std::int32_t>> entries;
        detail::VocabJsonReader reader(text, path);
        reader.read([&](const std::string& key, std::int32_t id, std::size_t offset) {
            std::string bytes = alphabet_to_bytes(key);
            if (bytes.empty())
                reader.fail_at(offset, "token \"" + key + "\" is not in GPT-2's byte alphabet");
            if (!ids_.emplace(bytes, id).second)
                reader.fail_at(offset, "duplicate token \"" + key + "\"");
            entries.emplace_back(std::move(bytes), id);
        });
        tokens_.assign(entries.size(), std::string());
        std::vector<bool> seen(entries.size(), false);
        for (auto& [bytes, id] : entries) {
            const auto index = static_cast<std::size_t>(id);
            if (index >= entries.size() || seen[index]) {
                throw std::runtime_error("GPT2Tokenizer: '" + path + "': token ids must be 0.." +
                                         std::to_string(entries.size() - 1) +
                                         " without repeats, got " + std::to_string(id));
            }
            seen[index] = true;
            tokens_[index] = std::move(bytes);
        }
        for (int b = 0; b < 256; ++b) {
            const auto it = ids_.find(std::string(1, static_cast<char>(b)));
            if (it == ids_.end()) {
                throw std::runtime_error("GPT2Tokenizer: '" + path + "': no token for byte " +
                                         std::to_string(b));
            }
            byte_ids_[static_cast<std::size_t>(b)] = it->second;
        }
        const auto special = ids_.find(kEndOfTextText);
        if (special == ids_.end() || special->second != kEndOfText) {
            throw std::runtime_error("GPT2Tokenizer: '" + path +
                                     "': \"<|endoftext|>\" must have id " +
                                     std::to_string(kEndOfText));
        }
        ids_.erase(special);  // ordinary text never produces the special token
    }

    // One merge "left right" per line, lowest rank first; a first line "#version..." is skipped.
    void load_merges(const std::string& path) {
        const std::string text = detail::read_file_bytes(path);
        std::size_t line_number = 0;
        for (std::size_t pos = 0; pos < text.size();) {
            std::size_t eol = text.find('\n', pos);
            if (eol == std::string::npos) eol = text.size();
            std::string_view line(text.data() + pos, eol - pos);
            pos = eol + 1;
            ++line_number;
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            if (line.empty() || (line_number == 1 && line.starts_with("#"))) continue;
            const auto fail = [&](const std::string& what) {
                throw std::runtime_error("GPT2Tokenizer: '" + path + "' line " +
                                         std::to_string(line_number) + ": " + what + ": \"" +
                                         std::string(line) + "\"");
            };
            const std::size_t space = line.find(' ');
            if (space == std::string_view::npos || line.find(' ', space + 1) != line.npos)
                fail("expected two tokens separated by one space");
            const std::string left = alphabet_to_bytes(line.substr(0, space));
            const std::string right = alphabet_to_bytes(line.substr(space + 1));
            const auto l = ids_.find(left), r = ids_.find(right), m = ids_.find(left + right);
            if (left.empty() || right.empty() || l == ids_.end() || r == ids_.end() ||
                m == ids_.end())
                fail("a token or the merged token is not in the vocabulary");
            const auto rank = static_cast<std::int32_t>(merges_.size());
            merges_.emplace(pair_key(l->second, r->second), Merge{rank, m->second});
        }
    }

    // BPE of one word: start from its bytes, merge the lowest-ranked adjacent pair (every
    // occurrence, left to right) until no adjacent pair is a merge. Quadratic in the word
    // length, which is fine: pre-tokenisation keeps words short.
    std::vector<std::int32_t> bpe(std::string_view word) const {
        std::vector<std::int32_t> parts;
        parts.reserve(word.size());
        for (char ch : word) parts.push_back(byte_ids_[static_cast<unsigned char>(ch)]);
        while (parts.size() > 1) {
            Merge best{INT32_MAX, -1};
            std::int32_t left = -1, right = -1;
            for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
                const auto it = merges_.find(pair_key(parts[i], parts[i + 1]));
                if (it != merges_.end() && it->second.rank < best.rank)
                    best = it->second, left = parts[i], right = parts[i + 1];
            }
            if (best.id < 0) break;
            std::size_t out = 0;
            for (std::size_t in = 0; in < parts.size(); ++out) {
                const bool hit =
                    in + 1 < parts.size() && parts[in] == left && parts[in + 1] == right;
                parts[out] = hit ? best.id : parts[in];
                in += hit ? 2 : 1;
            }
            parts.resize(out);
        }
        return parts;
    }

    void append_word(std::string_view word, std::vector<std::int32_t>& ids) const {
        if (word.size() == 1) return ids.push_back(byte_ids_[static_cast<unsigned char>(word[0])]);
        // A word that is itself a token is that token (tiktoken takes the same shortcut).
        if (const auto it = ids_.find(word); it != ids_.end()) return ids.push_back(it->second);
        {
            const std::lock_guard<std::mutex> lock(cache_->mutex);
            if (const auto it = cache_->words.find(word); it != cache_->words.end()) {
                ids.insert(ids.end(), it->second.begin(), it->second.end());
                return;
            }
        }
        std::vector<std::int32_t> parts = bpe(word);
        ids.insert(ids.end(), parts.begin(), parts.end());
        const std::lock_guard<std::mutex> lock(cache_->mutex);
        if (cache_->words.size() >= kMaxCachedWords) cache_->words.clear();
        cache_->words.emplace(std::string(word), std::move(parts));
    }

    void append_ordinary(std::string_view text, std::vector<std::int32_t>& ids) const {
        for (std::size_t pos = 0; pos < text.size();) {
            const std::size_t end = detail::pretoken_end(text, pos);
            append_word(text.substr(pos, end - pos), ids);
            pos = end;
        }
    }

    std::vector<std::string> tokens_;                  // id -> bytes
    detail::StringMap<std::int32_t> ids_;              // bytes -> id, without "<|endoftext|>"
    std::array<std::int32_t, 256> byte_ids_{};         // byte -> id of its one-byte token
    std::unordered_map<std::uint64_t, Merge> merges_;  // (left id, right id) -> merge
    std::vector<int> byte_of_char_;                    // code point of the alphabet -> byte, or -1
    std::shared_ptr<WordCache> cache_;
};

}  // namespace nanogpt
