// Tests for bpe_tokenizer.hpp: pre-tokenisation and character classes (no data needed), parity
// with tiktoken's "gpt2" encoding through tests/data/gpt2_tokenizer_vectors.txt (written by
// scripts/make_tokenizer_vectors.js, which documents the format), round trips over arbitrary
// bytes, the special token, and the error messages users see. Tests that need GPT-2's files read
// them from NANOGPT_DATA_DIR and skip with a warning without it.
#include <catch2/catch.hpp>

#include <cstdint>     // std::int32_t, std::uint64_t
#include <cstdlib>     // std::getenv
#include <filesystem>  // std::filesystem::path, temp_directory_path
#include <fstream>     // std::ifstream, std::ofstream
#include <optional>    // std::optional
#include <random>      // std::mt19937, std::uniform_int_distribution
#include <sstream>     // std::istringstream
#include <stdexcept>   // std::runtime_error, std::out_of_range
#include <string>      // std::string, std::getline, std::stoul
#include <vector>      // std::vector

#include <nanogpt/bpe_tokenizer.hpp>
#include <nanogpt/data.hpp>
#include <nanogpt/detail/hash.hpp>
#include <nanogpt/random.hpp>

#include "synthetic_bpe.hpp"

using nanogpt::GPT2Tokenizer;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> pretokens(std::string_view text) {
    std::vector<std::string> words;
    for (std::size_t pos = 0; pos < text.size();) {
        const std::size_t end = nanogpt::detail::pretoken_end(text, pos);
        words.emplace_back(text.substr(pos, end - pos));
        pos = end;
    }
    return words;
}

std::optional<fs::path> data_dir() {
    const char* dir = std::getenv("NANOGPT_DATA_DIR");
    if (dir == nullptr || !fs::exists(fs::path(dir) / "encoder.json")) return std::nullopt;
    return fs::path(dir);
}

// Loaded once per process: every TEST_CASE runs as its own process under CTest anyway. Null, with
// a warning, when the data directory is missing: the calling test then returns early.
const GPT2Tokenizer* gpt2() {
    static const std::optional<GPT2Tokenizer> tok = []() -> std::optional<GPT2Tokenizer> {
        const auto dir = data_dir();
        if (!dir) return std::nullopt;
        return GPT2Tokenizer::load((*dir / "encoder.json").string(), (*dir / "vocab.bpe").string());
    }();
    if (!tok)
        WARN("NANOGPT_DATA_DIR unset or without encoder.json + vocab.bpe: skipping this test");
    return tok ? &*tok : nullptr;
}

/// The vectors file's hash of an id sequence: FNV-1a over the ids' little-endian bytes.
std::uint64_t fnv1a64(const std::vector<std::int32_t>& ids) {
    return nanogpt::detail::fnv1a(ids.data(), ids.size() * sizeof(std::int32_t));
}

// Undoes make_tokenizer_vectors.js's escapes: \\ \t \n \r \xHH \u{HEX}.
std::string unescape(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '\\') {
            out.push_back(s[i]);
            continue;
        }
        const char e = s.at(++i);
        if (e == 't' || e == 'n' || e == 'r') {
            out.push_back(e == 't' ? '\t' : e == 'n' ? '\n' : '\r');
        } else if (e == 'x') {
            out.push_back(static_cast<char>(std::stoul(s.substr(i + 1, 2), nullptr, 16)));
            i += 2;
        } else if (e == 'u') {
            const std::size_t close = s.find('}', i);
            nanogpt::detail::encode_utf8(std::stoul(s.substr(i + 2, close - i - 2), nullptr, 16),
                                         out);
            i = close;
        } else {
            out.push_back(e);  // '\\'
        }
    }
    return out;
}

std::vector<std::int32_t> parse_ids(const std::string& s) {
    std::vector<std::int32_t> ids;
    std::istringstream in(s);
    for (std::int32_t id = 0; in >> id;) ids.push_back(id);
    return ids;
}

struct VectorRecord {
    char kind;                        // 'A', 'O', 'H' or 'F'
    std::vector<std::string> fields;  // the TAB-separated fields after the kind
};

std::vector<VectorRecord> read_vectors() {
    const fs::path path = fs::path(__FILE__).parent_path() / "data" / "gpt2_tokenizer_vectors.txt";
    std::ifstream in(path);
    INFO("vectors file: " << path);
    REQUIRE(in.good());
    std::vector<VectorRecord> records;
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line[0] == '#') continue;
        VectorRecord record{line[0], {}};
        for (std::size_t pos = 2;;) {
            const std::size_t tab = line.find('\t', pos);
            record.fields.push_back(line.substr(pos, tab - pos));
            if (tab == std::string::npos) break;
            pos = tab + 1;
        }
        records.push_back(std::move(record));
    }
    return records;
}

fs::path write_temp(const std::string& name, const std::string& content) {
    const fs::path path = fs::temp_directory_path() / ("nanogpt_test_bpe_" + name);
    std::ofstream(path, std::ios::binary) << content;
    return path;
}

}  // namespace

// ---- no data needed ----

TEST_CASE("bpe tokenizer: pre-tokenisation follows GPT-2's pattern") {
    using V = std::vector<std::string>;
    CHECK(pretokens("Hello world") == V{"Hello", " world"});
    CHECK(pretokens("it's IT'S") == V{"it", "'s", " IT", "'", "S"});
    CHECK(pretokens("we'll've") == V{"we", "'ll", "'ve"});
    CHECK(pretokens("a  b") == V{"a", " ", " b"});
    CHECK(pretokens("a\n\nb") == V{"a", "\n", "\n", "b"});
    CHECK(pretokens("x   ") == V{"x", "   "});
    CHECK(pretokens("   x") == V{"  ", " x"});
    CHECK(pretokens("123abc 42!") == V{"123", "abc", " 42", "!"});
    CHECK(pretokens("!!'s x") == V{"!!'", "s", " x"});
    CHECK(pretokens("a \xC2\xA0"
                    "b") == V{"a", " ", "\xC2\xA0", "b"});  // U+00A0 is \s, not ' '
    CHECK(pretokens("caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD") ==
          V{"caf\xC3\xA9", " \xE4\xBD\xA0\xE5\xA5\xBD"});
}

TEST_CASE("bpe tokenizer: invalid UTF-8 bytes pre-tokenise as symbols") {
    using V = std::vector<std::string>;
    CHECK(pretokens("a\xFF\xFE"
                    "b") == V{"a", "\xFF\xFE", "b"});
    CHECK(pretokens(" \x80x") == V{" \x80", "x"});
    CHECK(pretokens("\xE4\xBD") == V{"\xE4\xBD"});    // a truncated 3-byte character
    CHECK(pretokens("\xC0\xAF!") == V{"\xC0\xAF!"});  // an overlong '/' is two symbols, then '!'
}

TEST_CASE("bpe tokenizer: character classes from Unicode 16.0, as tiktoken 1.0.22") {
    using nanogpt::detail::char_class;
    using C = nanogpt::detail::CharClass;
    CHECK(std::string(nanogpt::detail::kUnicodeVersion) == "16.0.0");
    CHECK(char_class(U'a') == C::kLetter);
    CHECK(char_class(U'7') == C::kNumber);
    CHECK(char_class(U'!') == C::kOther);
    CHECK(char_class(0x85) == C::kSpace);
    CHECK(char_class(0x1C) == C::kOther);  // Python's isspace() says yes, White_Space says no
    CHECK(char_class(0x3000) == C::kSpace);
    CHECK(char_class(0x0301) == C::kOther);  // combining marks are \p{M}, not \p{L}
    CHECK(char_class(0x00BD) == C::kNumber);
    CHECK(char_class(0x4E00) == C::kLetter);
    CHECK(char_class(0x1E030) == C::kLetter);  // new in Unicode 15.0 (Cyrillic modifier letter)
    CHECK(char_class(0x31350) == C::kLetter);  // new in 15.0 (CJK extension H)
    CHECK(char_class(0x2EBF0) == C::kLetter);  // new in 15.1 (CJK extension I)
    CHECK(char_class(0x1C89) == C::kLetter);   // new in 16.0 (Cyrillic capital letter TJE)
    CHECK(char_class(0x16D43) == C::kLetter);  // new in 16.0 (Kirat Rai letter)
    CHECK(char_class(0x16D70) == C::kNumber);  // new in 16.0 (Kirat Rai digit zero)
    CHECK(char_class(0x1F600) == C::kOther);
    CHECK(char_class(0x10FFFF) == C::kOther);
}

TEST_CASE("bpe tokenizer: load errors name the file and the problem") {
    SECTION("missing file") {
        CHECK_THROWS_WITH(
            GPT2Tokenizer::load("/nonexistent/encoder.json", "/nonexistent/vocab.bpe"),
            "GPT2Tokenizer '/nonexistent/encoder.json': cannot open file: No such file or "
            "directory");
    }
    const auto json_error = [](const std::string& name, const std::string& json) {
        const fs::path path = write_temp(name, json);
        try {
            GPT2Tokenizer::load(path.string(), "/nonexistent/vocab.bpe");
        } catch (const std::runtime_error& e) {
            fs::remove(path);
            return std::string(e.what());
        }
        fs::remove(path);
        return std::string("no exception");
    };
    const std::string prefix =
        "GPT2Tokenizer: '" + (fs::temp_directory_path() / "nanogpt_test_bpe_").string();
    SECTION("truncated") {
        CHECK(json_error("a.json", "{\"a\": 1") ==
              prefix + "a.json': malformed JSON at byte 7: unexpected end of the text");
    }
    SECTION("missing colon") {
        CHECK(json_error("b.json", "{\"a\" 1}") ==
              prefix + "b.json': malformed JSON at byte 5: expected ':', found '1'");
    }
    SECTION("not an integer") {
        CHECK(
            json_error("c.json", "{\"a\": \"x\"}") ==
            prefix + "c.json': the id of token \"a\" is not an integer in [0, 2^31)");
    }
    SECTION("bad escape") {
        CHECK(json_error("d.json", "{\"\\q\": 1}") ==
              prefix + "d.json': malformed JSON at byte 4: invalid escape '\\q'");
    }
    SECTION("lone surrogate") {
        CHECK(json_error("e.json", "{\"\\ud83d\": 1}") ==
              prefix + "e.json': malformed JSON at byte 8: unpaired high surrogate");
    }
    SECTION("surrogate pair decodes to one character outside the byte alphabet") {
        CHECK(json_error("f.json", "{\"\\ud83d\\ude00\": 1}") ==
              prefix +
                  "f.json': token \"\xF0\x9F\x98\x80\" is not in GPT-2's "
                  "byte alphabet");
    }
    SECTION("trailing data") {
        CHECK(json_error("g.json", "{} x") ==
              prefix + "g.json': malformed JSON at byte 3: unexpected text after the top-level value");
    }
    SECTION("ids with a gap") {
        CHECK(json_error("h.json", "{\"a\": 0, \"\\u0120\": 5}") ==
              prefix + "h.json': token ids must be 0..1 without repeats, got 5");
    }
}

// ---- with GPT-2's files ----

TEST_CASE("bpe tokenizer: edge cases match tiktoken") {
    const GPT2Tokenizer* tok = gpt2();
    if (tok == nullptr) return;
    int exact = 0, hashed = 0;
    for (const VectorRecord& r : read_vectors()) {
        if (r.kind != 'A' && r.kind != 'O' && r.kind != 'H') continue;
        REQUIRE(r.fields.size() == 2);
        const std::string text = unescape(r.fields[0]);
        INFO("text: " << r.fields[0]);
        const auto ids = r.kind == 'O' ? tok->encode_ordinary(text) : tok->encode(text);
        if (r.kind == 'H') {
            std::istringstream expected(r.fields[1]);
            std::size_t count = 0;
            std::string hash;
            expected >> count >> hash;
            CHECK(ids.size() == count);
            CHECK(std::stoull(hash, nullptr, 16) == fnv1a64(ids));
            ++hashed;
        } else {
            CHECK(ids == parse_ids(r.fields[1]));
            ++exact;
        }
    }
    CHECK(exact >= 50);
    CHECK(hashed >= 20);
}

TEST_CASE("bpe tokenizer: tiny Shakespeare matches tiktoken") {
    const GPT2Tokenizer* tok = gpt2();
    if (tok == nullptr) return;
    for (const VectorRecord& r : read_vectors()) {
        if (r.kind != 'F') continue;
        REQUIRE(r.fields.size() == 3);
        const fs::path path = *data_dir() / r.fields[0];
        if (!fs::exists(path)) {
            WARN(path.string() << " not found: skipping");
            continue;
        }
        std::ifstream in(path, std::ios::binary);
        const std::string text((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
        std::istringstream expected(r.fields[1]);
        std::size_t bytes = 0, count = 0;
        std::string hash;
        expected >> bytes >> count >> hash;
        REQUIRE(text.size() == bytes);
        const auto ids = tok->encode(text);
        const auto prefix = parse_ids(r.fields[2]);
        REQUIRE(ids.size() >= prefix.size());
        CHECK(std::vector<std::int32_t>(
                  ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(prefix.size())) == prefix);
        CHECK(ids.size() == count);
        CHECK(std::stoull(hash, nullptr, 16) == fnv1a64(ids));
        CHECK(tok->decode(ids) == text);
    }
}

TEST_CASE("bpe tokenizer: decode inverts encode on any bytes") {
    const GPT2Tokenizer* tok = gpt2();
    if (tok == nullptr) return;
    for (const VectorRecord& r : read_vectors()) {
        if (r.kind == 'F') continue;
        const std::string text = unescape(r.fields[0]);
        CHECK(tok->decode(tok->encode(text)) == text);
        CHECK(tok->decode(tok->encode_ordinary(text)) == text);
    }
    // Random bytes drawn from pieces that stress the edges: ASCII, spaces, valid multi-byte
    // characters, stray continuation bytes, truncated and overlong sequences, the special token.
    const std::vector<std::string> pieces{"a",
                                          "Z",
                                          "7",
                                          " ",
                                          "  ",
                                          "\n",
                                          "\t",
                                          "'",
                                          "'s",
                                          "!",
                                          "\xC3\xA9",
                                          "\xE4\xBD\xA0",
                                          "\xF0\x9F\x98\x80",
                                          "\x80",
                                          "\xBF",
                                          "\xC3",
                                          "\xE4\xBD",
                                          "\xF0\x9F",
                                          "\xC0\xAF",
                                          "\xFF",
                                          "\xED\xA0\x80",
                                          "\xF4\x90\x80\x80",
                                          "<|endoftext|>",
                                          "\xC2\xA0",
                                          "\x00"};
    std::mt19937 rng(1234);
    std::uniform_int_distribution<std::size_t> pick(0, pieces.size() - 1), length(0, 40);
    std::uniform_int_distribution<int> any_byte(0, 255);
    for (int trial = 0; trial < 500; ++trial) {
        std::string text;
        for (std::size_t n = length(rng); n > 0; --n) {
            text += trial % 2 == 0 ? pieces[pick(rng)]
                                   : std::string(1, static_cast<char>(any_byte(rng)));
        }
        const auto ids = tok->encode(text);
        std::string streamed;
        for (std::int32_t id : ids) streamed += tok->decode_one(id);
        INFO("trial " << trial);
        REQUIRE(streamed == text);
        REQUIRE(tok->decode(tok->encode_ordinary(text)) == text);
    }
}

TEST_CASE("bpe tokenizer: the end-of-text token") {
    const GPT2Tokenizer* tok = gpt2();
    if (tok == nullptr) return;
    CHECK(tok->vocab_size() == 50257);
    CHECK(tok->decode_one(GPT2Tokenizer::kEndOfText) == "<|endoftext|>");
    const auto ids = tok->encode("a<|endoftext|>b");
    CHECK(ids == std::vector<std::int32_t>{64, GPT2Tokenizer::kEndOfText, 65});
    const auto plain = tok->encode_ordinary("a<|endoftext|>b");
    CHECK(plain.size() > 3);
    for (std::int32_t id : plain) CHECK(id != GPT2Tokenizer::kEndOfText);
    CHECK(tok->decode(plain) == "a<|endoftext|>b");
    CHECK(tok->encode("<|endoftext|") == tok->encode_ordinary("<|endoftext|"));
}

TEST_CASE("bpe tokenizer: out-of-range ids throw") {
    const GPT2Tokenizer* tok = gpt2();
    if (tok == nullptr) return;
    CHECK_THROWS_AS(tok->decode_one(50257), std::out_of_range);
    CHECK_THROWS_WITH(tok->decode_one(50257),
                      "GPT2Tokenizer: token id 50257 out of range for vocab_size 50257");
    CHECK_THROWS_WITH(tok->decode({1, -1}),
                      "GPT2Tokenizer: token id -1 out of range for vocab_size 50257");
}

TEST_CASE("bpe tokenizer: Hugging Face vocab.json and merges.txt load the same") {
    const GPT2Tokenizer* tok = gpt2();
    if (tok == nullptr) return;
    // vocab.json as Hugging Face writes it: compact, raw UTF-8 rather than \u escapes.
    const auto alphabet = nanogpt::detail::gpt2_byte_alphabet();
    std::string json = "{";
    for (std::int32_t id = 0; id < tok->vocab_size(); ++id) {
        std::string key;
        for (char byte : tok->decode_one(id)) {
            const char32_t c = id == GPT2Tokenizer::kEndOfText
                                   ? static_cast<unsigned char>(byte)
                                   : alphabet[static_cast<unsigned char>(byte)];
            if (c == '"' || c == '\\') key.push_back('\\');
            nanogpt::detail::encode_utf8(c, key);
        }
        json += (id == 0 ? "\"" : ",\"") + key + "\":" + std::to_string(id);
    }
    json += "}";
    // merges.txt with Windows line ends, to check they are accepted too.
    std::ifstream in(*data_dir() / "vocab.bpe", std::ios::binary);
    std::string merges;
    for (std::string line; std::getline(in, line);) merges += line + "\r\n";
    const fs::path vocab_path = write_temp("vocab.json", json);
    const fs::path merges_path = write_temp("merges.txt", merges);
    const auto hf = GPT2Tokenizer::load(vocab_path.string(), merges_path.string());
    fs::remove(vocab_path);
    fs::remove(merges_path);
    const std::string text = "Hugging Face's files: caf\xC3\xA9, \xE4\xBD\xA0\xE5\xA5\xBD!  \n 123";
    CHECK(hf.vocab_size() == tok->vocab_size());
    CHECK(hf.encode(text) == tok->encode(text));
}

TEST_CASE("bpe tokenizer: merges errors name the line") {
    const GPT2Tokenizer* tok = gpt2();
    if (tok == nullptr) return;
    const fs::path merges_path = write_temp("bad_merges.txt", "#version: 0.2\nh e\nnot-a-pair\n");
    const std::string encoder = (*data_dir() / "encoder.json").string();
    CHECK_THROWS_WITH(GPT2Tokenizer::load(encoder, merges_path.string()),
                      "GPT2Tokenizer: '" + merges_path.string() +
                          "' line 3: expected two tokens separated by one space: \"not-a-pair\"");
    fs::remove(merges_path);
}

// ---- the merge loop against its plain reference (issue 11, item 4) ----

namespace {

/// The plain BPE the library used before its heap: find the lowest-ranked adjacent pair, merge
/// every occurrence left to right, repeat. Quadratic in the word length; tiktoken-equal.
std::vector<std::int32_t> reference_bpe(const GPT2Tokenizer& tok, std::string_view word) {
    std::vector<std::int32_t> parts;
    for (const char ch : word) parts.push_back(tok.byte_token(static_cast<unsigned char>(ch)));
    while (parts.size() > 1) {
        std::int32_t best_rank = -1, best_id = -1, left = -1, right = -1;
        for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
            const auto [rank, id] = tok.merge(parts[i], parts[i + 1]);
            if (rank >= 0 && (best_rank < 0 || rank < best_rank))
                best_rank = rank, best_id = id, left = parts[i], right = parts[i + 1];
        }
        if (best_rank < 0) break;
        std::size_t out = 0;
        for (std::size_t in = 0; in < parts.size(); ++out) {
            const bool hit = in + 1 < parts.size() && parts[in] == left && parts[in + 1] == right;
            parts[out] = hit ? best_id : parts[in];
            in += hit ? 2 : 1;
        }
        parts.resize(out);
    }
    return parts;
}

GPT2Tokenizer synthetic_tokenizer(std::uint64_t seed, int n_merges) {
    const auto files = nanogpt_test::make_synthetic_bpe(seed, n_merges);
    const fs::path encoder = write_temp("synthetic_encoder.json", files.encoder_json);
    const fs::path merges = write_temp("synthetic_merges.bpe", files.merges);
    GPT2Tokenizer tok = GPT2Tokenizer::load(encoder.string(), merges.string());
    fs::remove(encoder);
    fs::remove(merges);
    return tok;
}

std::string random_word(nanogpt::Random& rng, std::size_t n, const std::string& letters) {
    std::string w;
    for (std::size_t i = 0; i < n; ++i) w += letters[rng.next_u64() % letters.size()];
    return w;
}

}  // namespace

TEST_CASE("bpe tokenizer: the heap merge equals the plain merge on synthetic merges") {
    for (const std::uint64_t seed : {1u, 2u, 3u}) {
        const GPT2Tokenizer tok = synthetic_tokenizer(seed, 400);
        nanogpt::Random rng(seed);
        for (int trial = 0; trial < 300; ++trial) {
            const std::string word = random_word(rng, 1 + rng.next_u64() % 40, "abcd ");
            INFO("seed " << seed << " word '" << word << "'");
            REQUIRE(tok.bpe(word) == reference_bpe(tok, word));
        }
        // Long words: one run of letters is one pre-token, so this is the merge loop alone.
        for (const std::size_t n : {1000u, 20000u}) {
            const std::string word = random_word(rng, n, "abcd");
            CHECK(tok.bpe(word) == reference_bpe(tok, word));
            CHECK(tok.decode(tok.encode(word)) == word);
        }
        const std::string aaa(5001, 'a');  // overlapping pairs of one letter
        CHECK(tok.bpe(aaa) == reference_bpe(tok, aaa));
    }
}

TEST_CASE("bpe tokenizer: the heap merge equals the plain merge on GPT-2's files") {
    const GPT2Tokenizer* tok = gpt2();
    if (tok == nullptr) return;
    nanogpt::Random rng(11);
    const auto dir = data_dir();
    const std::string text = nanogpt::read_text_file((*dir / "tinyshakespeare.txt").string());
    std::size_t words = 0;
    for (const std::string& w : pretokens(std::string_view(text).substr(0, 200000))) {
        if (w.size() < 2) continue;
        REQUIRE(tok->bpe(w) == reference_bpe(*tok, w));
        ++words;
    }
    CHECK(words > 10000);
    for (int trial = 0; trial < 200; ++trial) {  // random bytes, valid UTF-8 or not
        std::string bytes;
        for (std::uint64_t i = 0, n = 1 + rng.next_u64() % 24; i < n; ++i)
            bytes += static_cast<char>(rng.next_u64() & 0xFF);
        for (const std::string& w : pretokens(bytes)) REQUIRE(tok->bpe(w) == reference_bpe(*tok, w));
        CHECK(tok->decode(tok->encode(bytes)) == bytes);
    }
    const std::string long_word = random_word(rng, 20000, "abcdefghijklmnopqrstuvwxyz");
    CHECK(tok->bpe(long_word) == reference_bpe(*tok, long_word));
}
