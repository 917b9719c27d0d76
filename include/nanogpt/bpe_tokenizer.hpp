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
#include <functional>     // std::equal_to, std::hash, std::greater
#include <memory>         // std::shared_ptr, std::make_shared
#include <mutex>          // std::mutex, std::lock_guard
#include <queue>          // std::priority_queue
#include <stdexcept>      // std::runtime_error, std::out_of_range
#include <tuple>          // std::tuple (heap entries)
#include <string>         // std::string, std::to_string
#include <string_view>    // std::string_view
#include <unordered_map>  // std::unordered_map
#include <utility>        // std::move, std::pair
#include <vector>         // std::vector

#include "detail/json.hpp"
#include "detail/unicode_tables.hpp"
#include "file_io.hpp"
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
        std::int32_t rank;         // position in the merges file, 0 first: lower ranks merge first
        std::int32_t id;           // the merged token
        std::int32_t left, right;  // the pair it merges
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

        const std::vector<unsigned char> file = read_file_bytes(path, "GPT2Tokenizer");
        const std::string source = "GPT2Tokenizer: '" + path + "'";
        const detail::Json root =
            detail::JsonParser(std::string_view(reinterpret_cast<const char*>(file.data()),
                                                file.size()),
                               source)
                .parse_document();
        if (root.kind != detail::Json::Kind::object)
            throw std::runtime_error(source + ": expected a JSON object {\"token\": id, ...}");
        std::vector<std::pair<std::string, std::int32_t>> entries;
        for (std::size_t i = 0; i < root.keys.size(); ++i) {
            const std::string& key = root.keys[i];
            const detail::Json& value = root.items[i];
            if (value.kind != detail::Json::Kind::integer || value.integer > INT32_MAX) {
                throw std::runtime_error(source + ": the id of token \"" + key +
                                         "\" is not an integer in [0, 2^31)");
            }
            std::string bytes = alphabet_to_bytes(key);
            if (bytes.empty()) {
                throw std::runtime_error(source + ": token \"" + key +
                                         "\" is not in GPT-2's byte alphabet");
            }
            // alphabet_to_bytes is one-to-one and JSON keys are unique, so this always inserts.
            ids_.emplace(bytes, static_cast<std::int32_t>(value.integer));
            entries.emplace_back(std::move(bytes), static_cast<std::int32_t>(value.integer));
        }
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
        const std::vector<unsigned char> file = read_file_bytes(path, "GPT2Tokenizer");
        const std::string_view text(reinterpret_cast<const char*>(file.data()), file.size());
        std::size_t line_number = 0;
        for (std::size_t pos = 0; pos < text.size();) {
            std::size_t eol = text.find('\n', pos);
            if (eol == std::string_view::npos) eol = text.size();
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
            const auto rank = static_cast<std::int32_t>(by_rank_.size());
            const Merge merge{rank, m->second, l->second, r->second};
            // A repeated pair keeps its first rank (later lines could never be used).
            if (merges_.emplace(pair_key(l->second, r->second), merge).second)
                by_rank_.push_back(merge);
        }
    }

public:
    /// BPE of one pre-tokenised word (no cache, no whole-token shortcut): start from its bytes,
    /// merge the lowest-ranked adjacent pair (every occurrence, left to right) until no adjacent
    /// pair is a merge. O(n log n) in the word length n: the candidate pairs sit in a min-heap
    /// keyed by (rank, position) over a linked list of the word's parts; a merge links its
    /// neighbours and pushes the two pairs it creates, and entries made stale by an earlier merge
    /// are skipped when popped (lazy invalidation). A rank's occurrences are all popped before
    /// any is merged, so lower-ranked pairs created meanwhile wait for the next round, exactly as
    /// in the pass over the word (tests/test_bpe_tokenizer.cpp keeps that plain algorithm as the
    /// reference).
    std::vector<std::int32_t> bpe(std::string_view word) const {
        const std::size_t n = word.size();
        std::vector<std::int32_t> token(n);
        std::vector<std::size_t> next(n), prev(n);  // linked parts; n marks the end
        std::vector<bool> alive(n, true);
        for (std::size_t i = 0; i < n; ++i) {
            token[i] = byte_ids_[static_cast<unsigned char>(word[i])];
            next[i] = i + 1;
            prev[i] = i == 0 ? n : i - 1;
        }
        // (rank, left position, left token, right token): stale once either part has changed.
        using Entry = std::tuple<std::int32_t, std::size_t, std::int32_t, std::int32_t>;
        std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap;
        auto push = [&](std::size_t i) {
            if (i >= n || next[i] >= n) return;
            const auto it = merges_.find(pair_key(token[i], token[next[i]]));
            if (it != merges_.end()) heap.emplace(it->second.rank, i, token[i], token[next[i]]);
        };
        auto valid = [&](const Entry& e) {
            const auto& [rank, i, left, right] = e;
            return alive[i] && token[i] == left && next[i] < n && token[next[i]] == right;
        };
        for (std::size_t i = 0; i + 1 < n; ++i) push(i);
        std::vector<std::size_t> round;  // positions of this rank's pairs, left to right
        while (!heap.empty()) {
            const std::int32_t rank = std::get<0>(heap.top());
            round.clear();
            while (!heap.empty() && std::get<0>(heap.top()) == rank) {
                round.push_back(std::get<1>(heap.top()));
                heap.pop();
            }
            const Merge merge = merge_of_rank(rank);
            for (const std::size_t i : round) {
                // Still the pair it was? (An earlier merge of this round may have taken a part.)
                if (!valid(Entry{rank, i, merge.left, merge.right})) continue;
                const std::size_t j = next[i];
                token[i] = merge.id;
                alive[j] = false;
                next[i] = next[j];
                if (next[j] < n) prev[next[j]] = i;
                if (prev[i] < n) push(prev[i]);
                push(i);
            }
        }
        std::vector<std::int32_t> parts;
        for (std::size_t i = 0; i < n; i = next[i]) parts.push_back(token[i]);
        return parts;
    }

    /// (rank, merged id) of the merge of tokens left and right, or (-1, -1): the merges file as
    /// the reference BPE in the tests reads it.
    std::pair<std::int32_t, std::int32_t> merge(std::int32_t left, std::int32_t right) const {
        const auto it = merges_.find(pair_key(left, right));
        if (it == merges_.end()) return {-1, -1};
        return {it->second.rank, it->second.id};
    }
    /// The id of the one-byte token of byte b.
    std::int32_t byte_token(unsigned char b) const { return byte_ids_[b]; }

private:
    Merge merge_of_rank(std::int32_t rank) const {
        return by_rank_[static_cast<std::size_t>(rank)];
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
    std::vector<Merge> by_rank_;                       // rank -> merge
    std::vector<int> byte_of_char_;                    // code point of the alphabet -> byte, or -1
    std::shared_ptr<WordCache> cache_;
};

}  // namespace nanogpt
