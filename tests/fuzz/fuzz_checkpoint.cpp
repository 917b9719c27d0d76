// fuzz_checkpoint.cpp — the checkpoint readers on arbitrary bytes; a file they accept must build
// a model and restore into it. Most inputs first get a correct size field and FNV-1a hash, as an
// attacker would write them (otherwise nearly every mutation stops at the checksum); inputs whose
// last byte is odd are parsed as they are, so those checks are fuzzed too.
// Every input is also written to a file and read by the file readers (load_checkpoint,
// load_checkpoint_header + load_checkpoint_into), which must agree with the in-memory parser.
// Seeds: tests/fuzz/corpus/checkpoint (save_checkpoint).
#include <cstdint>    // std::uint8_t
#include <cstring>    // std::memcpy, std::memcmp
#include <optional>   // std::optional
#include <string>     // std::string
#include <vector>     // std::vector

#include <nanogpt/checkpoint.hpp>

#include "fuzz_common.hpp"

// Bit for bit (a mutated weight may be a NaN, which == never matches).
static bool same_bits(const float* weights, std::size_t n,
                      const nanogpt::Checkpoint<float>& parsed) {
    return n == parsed.weights.size() &&
           std::memcmp(weights, parsed.weights.data(), n * sizeof(float)) == 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<unsigned char> bytes(data, data + size);
    if (size >= 32 && data[size - 1] % 2 == 0) {
        const std::uint64_t total = size;
        std::memcpy(bytes.data() + 16, &total, 8);
        const std::uint64_t hash = nanogpt::detail::fnv1a(bytes.data(), size - 8);
        std::memcpy(bytes.data() + size - 8, &hash, 8);
    }
    std::optional<nanogpt::Checkpoint<float>> parsed;  // what the reader of bytes in memory says
    fuzz::expect_clean_errors([&] {
        parsed = nanogpt::parse_checkpoint<float>(bytes, "fuzz");
        nanogpt::GPT<float> model = parsed->make_model();
        nanogpt::AdamW<float> optimizer(model.parameters(), nanogpt::AdamWConfig{});
        parsed->restore(model, &optimizer);
    });
    // The same bytes as a file, through the streaming readers that programs use (they seek and
    // read piece by piece instead of holding the file): they must accept exactly what the
    // in-memory parser accepts, and read the same weights.
    const std::string path = fuzz::scratch_file("checkpoint", bytes.data(), bytes.size());
    bool loaded = false;
    fuzz::expect_clean_errors([&] {
        const auto ck = nanogpt::load_checkpoint<float>(path, nanogpt::OptimizerState::skip);
        loaded = true;
        fuzz::check(parsed && same_bits(ck.weights.data(), ck.weights.size(), *parsed),
                    "load_checkpoint read other weights than parse_checkpoint");
    });
    fuzz::check(loaded == parsed.has_value(),
                "load_checkpoint and parse_checkpoint disagree on whether the file is valid");
    bool filled = false;
    fuzz::expect_clean_errors([&] {
        const auto header = nanogpt::load_checkpoint_header<float>(path);
        nanogpt::GPT<float> model(header.config);
        nanogpt::AdamW<float> optimizer(model.parameters(), nanogpt::AdamWConfig{});
        nanogpt::load_checkpoint_into(path, model, &optimizer);
        filled = true;
        fuzz::check(parsed && same_bits(model.parameters().data(),
                                        static_cast<std::size_t>(model.parameters().size()),
                                        *parsed),
                    "load_checkpoint_into read other weights than parse_checkpoint");
    });
    fuzz::check(filled == parsed.has_value(),
                "load_checkpoint_into and parse_checkpoint disagree on whether the file is valid");
    return 0;
}
