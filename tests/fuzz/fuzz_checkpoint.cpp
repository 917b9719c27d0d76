// fuzz_checkpoint.cpp — the checkpoint loader on arbitrary bytes; a file it accepts must build a
// model and restore into it. Most inputs first get a correct size field and FNV-1a hash, as an
// attacker would write them (otherwise nearly every mutation stops at the checksum); inputs whose
// last byte is odd are parsed as they are, so those checks are fuzzed too.
// Seeds: tests/fuzz/corpus/checkpoint (save_checkpoint).
#include <cstdint>  // std::uint8_t
#include <vector>   // std::vector

#include <cstring>  // std::memcpy

#include <nanogpt/checkpoint.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<unsigned char> bytes(data, data + size);
    if (size >= 32 && data[size - 1] % 2 == 0) {
        const std::uint64_t total = size;
        std::memcpy(bytes.data() + 16, &total, 8);
        const std::uint64_t hash = nanogpt::detail::fnv1a(bytes.data(), size - 8);
        std::memcpy(bytes.data() + size - 8, &hash, 8);
    }
    fuzz::expect_clean_errors([&] {
        const auto ck = nanogpt::parse_checkpoint<float>(bytes, "fuzz");
        nanogpt::GPT<float> model = ck.make_model();
        nanogpt::AdamW<float> optimizer(model.parameters(), nanogpt::AdamWConfig{});
        ck.restore(model, &optimizer);
    });
    return 0;
}
