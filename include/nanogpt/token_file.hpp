// token_file.hpp — a prepared dataset on disk, in nanoGPT's layout: DIR/train.bin and DIR/val.bin
// hold the token ids as uint16 little-endian (so files are interchangeable with nanoGPT's
// prepare.py), and DIR/meta.txt says which tokenizer made them:
//
//   # nanogpt dataset metadata          '#' starts a comment (at line start or after a space)
//   format = 1
//   tokenizer = char                    char, or gpt2 (GPT-2's BPE, bpe_tokenizer.hpp: its
//   vocab_size = 65                     files are not copied here; vocab_size = 50257)
//   symbol = U+000A  # '\n'             char only: one line per token id, in id order, the
//   symbol = U+0020  # ' '              character as its Unicode code point, so no byte of the
//   ...                                 vocabulary needs escaping
//
// TokenFile maps a .bin file into memory (POSIX mmap where <sys/mman.h> exists, else it reads the
// file) and hands out std::span<const std::uint16_t>, which get_batch (data.hpp) samples from.
// Every file is written atomically: a temporary file, then a rename over the old one.
// Builds on tokenizer.hpp; read next: checkpoint.hpp.
#pragma once

#include <algorithm>    // std::max
#include <bit>          // std::endian
#include <cerrno>       // errno
#include <cstddef>      // std::size_t
#include <cstdint>      // std::uint16_t, std::int32_t, std::int64_t
#include <cstdio>       // std::FILE, std::fopen, std::fread, std::fwrite, std::fclose
#include <cstring>      // std::strerror
#include <fstream>      // std::ifstream
#include <iterator>     // std::istreambuf_iterator
#include <span>         // std::span
#include <stdexcept>    // std::runtime_error, std::out_of_range, std::invalid_argument
#include <string>       // std::string, std::to_string, std::getline
#include <string_view>  // std::string_view
#include <utility>      // std::exchange, std::move
#include <vector>       // std::vector

#include <nanogpt/file_io.hpp>
#include <nanogpt/key_value.hpp>
#include <nanogpt/tokenizer.hpp>

#if __has_include(<sys/mman.h>) && __has_include(<sys/stat.h>) && __has_include(<fcntl.h>) && \
    __has_include(<unistd.h>)
#include <fcntl.h>     // open
#include <sys/mman.h>  // mmap, munmap
#include <sys/stat.h>  // fstat
#include <unistd.h>    // close
#define NANOGPT_HAS_MMAP 1
#else
#define NANOGPT_HAS_MMAP 0
#endif

namespace nanogpt {

// ---- token files (.bin) ----

/// Writes token ids as uint16 little-endian; std::out_of_range names the first id outside [0,
/// 65535].
inline void write_token_file(const std::string& path, std::span<const std::int32_t> ids) {
    std::vector<unsigned char> bytes(2 * ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || ids[i] > 65535) {
            throw std::out_of_range("write_token_file '" + path + "': token id " +
                                    std::to_string(ids[i]) + " at position " + std::to_string(i) +
                                    " does not fit uint16");
        }
        bytes[2 * i] = static_cast<unsigned char>(ids[i] & 0xFF);
        bytes[2 * i + 1] = static_cast<unsigned char>(ids[i] >> 8);
    }
    write_file_atomically(path, {{bytes.data(), bytes.size()}}, "token file");
}

/// A read-only uint16 token file, memory-mapped when the platform can; move-only.
class TokenFile {
public:
    /// Opens path; std::runtime_error naming the file if it cannot be read or its size is odd.
    explicit TokenFile(std::string path) : path_(std::move(path)) {
#if NANOGPT_HAS_MMAP
        // A mapping shows the bytes as they are on disk: little-endian hosts only.
        if constexpr (std::endian::native == std::endian::little) {
            map_file();
            return;
        }
#endif
        read_file();
    }
    TokenFile(TokenFile&& other) noexcept
        : path_(std::move(other.path_)),
          copy_(std::move(other.copy_)),
          mapped_(std::exchange(other.mapped_, nullptr)),
          size_(std::exchange(other.size_, 0)) {}
    TokenFile& operator=(TokenFile&& other) noexcept {
        if (this != &other) {
            unmap();
            path_ = std::move(other.path_);
            copy_ = std::move(other.copy_);
            mapped_ = std::exchange(other.mapped_, nullptr);
            size_ = std::exchange(other.size_, 0);
        }
        return *this;
    }
    TokenFile(const TokenFile&) = delete;
    TokenFile& operator=(const TokenFile&) = delete;
    ~TokenFile() { unmap(); }

    const std::string& path() const { return path_; }
    bool memory_mapped() const { return mapped_ != nullptr; }
    std::int64_t size() const { return static_cast<std::int64_t>(size_); }
    std::span<const std::uint16_t> tokens() const {
        return {mapped_ != nullptr ? mapped_ : copy_.data(), size_};
    }

    /// std::out_of_range naming the first token id >= vocab_size and its position. Scans in
    /// chunks whose maximum is a branch-free (vectorisable) loop; only a bad chunk is searched.
    void check_vocabulary(std::int64_t vocab_size) const {
        const std::span<const std::uint16_t> t = tokens();
        const std::size_t chunk = 4096;
        for (std::size_t begin = 0; begin < t.size(); begin += chunk) {
            const std::size_t end = std::min(t.size(), begin + chunk);
            std::uint16_t top = 0;
            for (std::size_t i = begin; i < end; ++i) top = std::max(top, t[i]);
            if (top < vocab_size) continue;
            for (std::size_t i = begin; i < end; ++i) {
                if (t[i] >= vocab_size) {
                    throw std::out_of_range("token file '" + path_ + "': token id " +
                                            std::to_string(t[i]) + " at position " +
                                            std::to_string(i) + " is not below vocab_size " +
                                            std::to_string(vocab_size));
                }
            }
        }
    }

    /// std::invalid_argument naming the file when it cannot fill one window of block_size + 1.
    void check_length(std::int64_t block_size) const {
        if (size() <= block_size) {  // not size() < block_size + 1, which can overflow
            throw std::invalid_argument(
                "token file '" + path_ + "' has " + std::to_string(size()) +
                " tokens, needs at least block_size + 1 = " +
                std::to_string(static_cast<std::uint64_t>(block_size) + 1));
        }
    }

private:
    [[noreturn]] void fail_size(std::uint64_t bytes) const {
        throw std::runtime_error(
            "token file '" + path_ + "' has " + std::to_string(bytes) +
            " bytes, not a multiple of 2 (uint16 tokens): truncated or not a token file");
    }
    [[noreturn]] void fail_errno(const char* what) const {
        throw std::runtime_error(std::string("token file '") + path_ + "': cannot " + what + ": " +
                                 std::strerror(errno));
    }

#if NANOGPT_HAS_MMAP
    void map_file() {
        errno = 0;
        const int fd = ::open(path_.c_str(), O_RDONLY);
        if (fd < 0) fail_errno("open");
        struct stat st {};
        if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            const int err = errno;
            ::close(fd);
            errno = err != 0 ? err : EISDIR;
            fail_errno("read it as a regular file");
        }
        const auto bytes = static_cast<std::uint64_t>(st.st_size);
        if (bytes % 2 != 0) {
            ::close(fd);
            fail_size(bytes);
        }
        if (bytes > 0) {
            void* p = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
            if (p == MAP_FAILED) {
                const int err = errno;
                ::close(fd);
                errno = err;
                fail_errno("memory-map");
            }
            mapped_ = static_cast<const std::uint16_t*>(p);
            size_ = bytes / 2;
        }
        ::close(fd);  // the mapping keeps the file open
    }
#endif

    void read_file() {
        std::ifstream in(path_, std::ios::binary);
        if (!in) {
            errno = ENOENT;
            fail_errno("open");
        }
        const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                      std::istreambuf_iterator<char>());
        if (bytes.size() % 2 != 0) fail_size(bytes.size());
        copy_.resize(bytes.size() / 2);
        for (std::size_t i = 0; i < copy_.size(); ++i) {
            copy_[i] =
                static_cast<std::uint16_t>(static_cast<unsigned char>(bytes[2 * i]) |
                                           static_cast<unsigned char>(bytes[2 * i + 1]) << 8);
        }
        size_ = copy_.size();
    }

    void unmap() {
#if NANOGPT_HAS_MMAP
        if (mapped_ != nullptr) ::munmap(const_cast<std::uint16_t*>(mapped_), size_ * 2);
#endif
        mapped_ = nullptr;
    }

    std::string path_;
    std::vector<std::uint16_t> copy_;        // the tokens when not memory-mapped
    const std::uint16_t* mapped_ = nullptr;  // the mapping, when there is one
    std::size_t size_ = 0;                   // tokens
};

// ---- dataset metadata (meta.txt) ----

/// What prepare wrote beside the .bin files: the tokenizer kind and, for "char", its vocabulary.
struct DatasetMeta {
    std::string tokenizer = "char";  // "char" or "gpt2"
    std::int64_t vocab_size = 0;
    std::vector<std::string> vocabulary;  // char: one UTF-8 character per token id

    /// The character tokenizer this dataset was encoded with; a clear error for other kinds.
    CharTokenizer char_tokenizer() const {
        if (tokenizer == "gpt2")
            throw std::invalid_argument("tokenizer 'gpt2' is not supported yet");
        if (tokenizer != "char")
            throw std::invalid_argument("unknown tokenizer '" + tokenizer + "' (known: char)");
        return CharTokenizer::from_symbols(vocabulary);
    }
};

/// Writes meta.txt (see the top of this file) atomically.
inline void write_dataset_meta(const std::string& path, const DatasetMeta& meta) {
    std::string text =
        "# nanogpt dataset metadata, written by prepare; train.bin and val.bin beside it\n"
        "# hold the token ids as uint16 little-endian. For the char tokenizer, one\n"
        "# 'symbol = U+XXXX' line per token id, in id order: its Unicode code point.\n";
    text += "format = 1\ntokenizer = " + meta.tokenizer +
            "\nvocab_size = " + std::to_string(meta.vocab_size) + "\n";
    for (const std::string& s : meta.vocabulary) {
        char32_t cp = 0;
        if (s.empty() || detail::decode_utf8(s, 0, cp) != s.size()) {
            throw std::invalid_argument("write_dataset_meta: symbol '" + s +
                                        "' is not one UTF-8 character");
        }
        text +=
            "symbol = " + detail::code_point_name(cp) + "  # " + detail::quote_character(cp) + "\n";
    }
    write_file_atomically(path, {{text.data(), text.size()}}, "meta file");
}

/// Reads meta.txt; std::runtime_error naming file:line for anything malformed or unknown.
inline DatasetMeta read_dataset_meta(const std::string& path) {
    std::ifstream in(path);
    if (!in)
        throw std::runtime_error("cannot open dataset metadata '" + path + "' (run prepare first)");
    DatasetMeta meta;
    bool has_format = false, has_size = false;
    std::string line, key, value, error;
    for (int number = 1; std::getline(in, line); ++number) {
        auto fail = [&](const std::string& what) {
            throw std::runtime_error(path + ":" + std::to_string(number) + ": " + what);
        };
        if (!split_key_value(line, key, value, error)) continue;
        if (!error.empty()) fail(error);
        if (key == "format") {
            if (value != "1")
                fail("format " + value + " is not supported (this build reads format 1)");
            has_format = true;
        } else if (key == "tokenizer") {
            if (value != "char" && value != "gpt2")
                fail("unknown tokenizer '" + value + "' (known: char, gpt2)");
            meta.tokenizer = value;
        } else if (key == "vocab_size") {
            try {
                std::size_t used = 0;
                meta.vocab_size = std::stoll(value, &used);
                if (used != value.size() || meta.vocab_size < 1) throw std::invalid_argument(value);
            } catch (const std::exception&) {
                fail("vocab_size '" + value + "' is not a positive integer");
            }
            if (meta.vocab_size > 65536)  // the .bin files hold uint16 ids
                fail("vocab_size " + value + " exceeds 65536, the most uint16 token ids can name");
            has_size = true;
        } else if (key == "symbol") {
            std::uint32_t cp = 0;
            const bool is_hex =
                value.size() >= 6 && value.size() <= 8 && value.rfind("U+", 0) == 0 &&
                value.find_first_not_of("0123456789ABCDEFabcdef", 2) == std::string::npos;
            if (is_hex) cp = static_cast<std::uint32_t>(std::stoul(value.substr(2), nullptr, 16));
            if (!is_hex || cp > detail::kMaxCodePoint || (cp >= 0xD800 && cp <= 0xDFFF)) {
                fail("symbol '" + value + "' is not a code point U+XXXX");
            }
            std::string s;
            detail::encode_utf8(static_cast<char32_t>(cp), s);
            meta.vocabulary.push_back(std::move(s));
        } else {
            fail("unknown key '" + key + "' (known: format, tokenizer, vocab_size, symbol)");
        }
    }
    if (!has_format || !has_size)
        throw std::runtime_error(path + ": missing 'format' or 'vocab_size'");
    if (meta.tokenizer == "char" &&
        static_cast<std::int64_t>(meta.vocabulary.size()) != meta.vocab_size) {
        throw std::runtime_error(path + ": " + std::to_string(meta.vocabulary.size()) +
                                 " symbols but vocab_size = " + std::to_string(meta.vocab_size));
    }
    return meta;
}

}  // namespace nanogpt
