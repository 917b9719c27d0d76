// fuzz_checkpoint.cpp — the checkpoint loader on arbitrary bytes; a file it accepts must build a
// model and survive a save/load round trip. Seeds: tests/fuzz/corpus/checkpoint (save_checkpoint).
#include <cstdint>  // std::uint8_t
#include <vector>   // std::vector

#include <nanogpt/checkpoint.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::vector<unsigned char> bytes(data, data + size);
    fuzz::expect_clean_errors([&] {
        const auto ck = nanogpt::parse_checkpoint<float>(bytes, "fuzz");
        nanogpt::GPT<float> model = ck.make_model();
        nanogpt::AdamW<float> optimizer(model.parameters(), nanogpt::AdamWConfig{});
        ck.restore(model, &optimizer);
    });
    return 0;
}
