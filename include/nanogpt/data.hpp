// data.hpp — from a text file to training batches, as nanoGPT's prepare.py and get_batch() do it:
// read the text, encode it (tokenizer.hpp), keep the first 90% of the tokens for training and the
// rest for validation, then sample random windows: x = data[i : i+T], y = data[i+1 : i+T+1], so
// y[t] is the token that follows x[0..t] — every position of every row is a next-token example.
//
// get_batch() works over any contiguous sequence of integer token ids (std::span<const Int>), so a
// memory-mapped uint16 token file (nanoGPT's train.bin) plugs in like an in-memory vector.
// Builds on tensor.hpp and random.hpp; read next: file_io.hpp.
#pragma once

#include <cerrno>     // errno
#include <concepts>   // std::integral, std::same_as
#include <cstddef>    // std::size_t, std::ptrdiff_t
#include <cstdint>    // std::int32_t, std::int64_t, std::uint64_t
#include <cstdio>     // std::FILE, std::fopen, std::fread, std::fclose, std::ferror
#include <cstring>    // std::strerror
#include <limits>     // std::numeric_limits
#include <memory>     // std::unique_ptr
#include <span>       // std::span
#include <sstream>    // std::ostringstream
#include <stdexcept>  // std::invalid_argument, std::out_of_range, std::runtime_error
#include <string>     // std::string, std::to_string
#include <utility>    // std::in_range (C++20)
#include <vector>     // std::vector

#include <nanogpt/detail/checked_math.hpp>
#include <nanogpt/random.hpp>
#include <nanogpt/tensor.hpp>

namespace nanogpt {

// ---- reading text ----

/// The whole file as bytes (no newline translation); std::runtime_error naming the path on failure.
inline std::string read_text_file(const std::string& path) {
    // <cstdio> rather than <fstream>: fopen/fread report the reason in errno, which iostreams do
    // not promise, and "No such file or directory" is the message a user needs.
    struct Close {
        void operator()(std::FILE* f) const { std::fclose(f); }
    };
    errno = 0;
    std::unique_ptr<std::FILE, Close> file(std::fopen(path.c_str(), "rb"));
    if (!file) {
        throw std::runtime_error("read_text_file: cannot open '" + path +
                                 "': " + std::strerror(errno));
    }
    std::string text;
    char buffer[1 << 16];
    std::size_t got = 0;
    while ((got = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) text.append(buffer, got);
    if (std::ferror(file.get())) {  // e.g. the path is a directory (EISDIR)
        throw std::runtime_error("read_text_file: cannot read '" + path +
                                 "': " + std::strerror(errno));
    }
    return text;
}

// ---- train / validation split ----

struct TrainValSplit {
    std::vector<std::int32_t> train, val;
};

/// The first floor(train_fraction * n) tokens train, the rest validate, as nanoGPT's
/// n = int(0.9*len(data)). Contiguous, not shuffled: validation text is text never trained on.
inline TrainValSplit split_train_val(const std::vector<std::int32_t>& tokens,
                                     double train_fraction = 0.9) {
    if (!(train_fraction > 0.0 && train_fraction < 1.0)) {  // also rejects NaN
        std::ostringstream message;
        message << "split_train_val: train_fraction must be in (0, 1), got " << train_fraction;
        throw std::invalid_argument(message.str());
    }
    const auto n_train =
        static_cast<std::size_t>(train_fraction * static_cast<double>(tokens.size()));
    const auto split = tokens.begin() + static_cast<std::ptrdiff_t>(n_train);
    return {std::vector<std::int32_t>(tokens.begin(), split),
            std::vector<std::int32_t>(split, tokens.end())};
}

// ---- batch sampling ----

/// Token ids stored as a signed or unsigned integer type (int32 in memory, uint16 in nanoGPT's .bin
/// files); bool and the character types are not numbers (and std::in_range rejects them).
template <class Int>
concept TokenInt = std::integral<Int> && !std::same_as<Int, bool> && !std::same_as<Int, char> &&
                   !std::same_as<Int, wchar_t> && !std::same_as<Int, char8_t> &&
                   !std::same_as<Int, char16_t> && !std::same_as<Int, char32_t>;

/// A batch of next-token examples: y[b, t] is the token after x[b, t].
struct Batch {
    Tensor<std::int32_t> x;  // (B, T) inputs
    Tensor<std::int32_t> y;  // (B, T) targets
};

/// batch_size random windows of block_size + 1 tokens. Row b starts at i = uniform_int(len - T),
/// like nanoGPT's torch.randint(len(data) - block_size): x = data[i : i+T], y = data[i+1 : i+T+1].
/// All offsets are drawn first, in row order, so the same seed gives the same batches.
template <TokenInt Int>
Batch get_batch(std::span<const Int> data, std::int64_t batch_size, std::int64_t block_size,
                Random& rng) {
    if (batch_size < 1) {
        throw std::invalid_argument("get_batch: batch_size must be >= 1, got " +
                                    std::to_string(batch_size));
    }
    if (block_size < 1) {
        throw std::invalid_argument("get_batch: block_size must be >= 1, got " +
                                    std::to_string(block_size));
    }
    const auto len = static_cast<std::int64_t>(data.size());
    if (len <= block_size) {  // not len < block_size + 1, which can overflow
        throw std::invalid_argument(
            "get_batch: dataset has " + std::to_string(len) +
            " tokens, needs at least block_size + 1 = " +
            std::to_string(static_cast<std::uint64_t>(block_size) + 1));
    }
    // Two int32 tensors of B x T, bounded like a training step's activations (config.hpp).
    (void)detail::checked_mul(batch_size, block_size, "get_batch: batch_size x block_size",
                              std::int64_t(1) << 36);
    const auto B = static_cast<std::size_t>(batch_size), T = static_cast<std::size_t>(block_size);
    std::vector<std::size_t> offsets(B);
    for (auto& i : offsets) {
        i = static_cast<std::size_t>(rng.uniform_int(static_cast<std::uint64_t>(len - block_size)));
    }

    Batch batch{Tensor<std::int32_t>(Shape{batch_size, block_size}),   // (B, T)
                Tensor<std::int32_t>(Shape{batch_size, block_size})};  // (B, T)
    std::int32_t* x = batch.x.data();
    std::int32_t* y = batch.y.data();
    for (std::size_t b = 0; b < B; ++b) {
        const Int* window = data.data() + offsets[b];  // T + 1 tokens
        for (std::size_t t = 0; t <= T; ++t) {
            // Wide or unsigned 32-bit storage can hold values no token id has (a corrupt file).
            if constexpr (!std::in_range<std::int32_t>(std::numeric_limits<Int>::min()) ||
                          !std::in_range<std::int32_t>(std::numeric_limits<Int>::max())) {
                if (!std::in_range<std::int32_t>(window[t])) {
                    throw std::out_of_range("get_batch: token " + std::to_string(window[t]) +
                                            " at position " + std::to_string(offsets[b] + t) +
                                            " does not fit a 32-bit token id");
                }
            }
            const auto token = static_cast<std::int32_t>(window[t]);
            if (t < T) x[b * T + t] = token;
            if (t > 0) y[b * T + t - 1] = token;
        }
    }
    return batch;
}

/// The same over a vector (spans are not deduced from vectors, so this overload forwards).
template <TokenInt Int>
Batch get_batch(const std::vector<Int>& data, std::int64_t batch_size, std::int64_t block_size,
                Random& rng) {
    return get_batch(std::span<const Int>(data), batch_size, block_size, rng);
}

}  // namespace nanogpt
