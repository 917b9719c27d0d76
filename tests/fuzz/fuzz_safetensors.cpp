// fuzz_safetensors.cpp — the safetensors reader and GPT-2 weight loading on arbitrary bytes: a
// file whose configuration is accepted must load into a model of that configuration.
// Seeds: tests/fuzz/corpus/safetensors (save_gpt2_safetensors, SafetensorsFile::write).
#include <cstdint>  // std::uint8_t
#include <string>   // std::string

#include <nanogpt/gpt2_weights.hpp>
#include <nanogpt/safetensors.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string path = fuzz::scratch_file("model.safetensors", data, size);
    fuzz::expect_clean_errors([&] {
        const nanogpt::SafetensorsFile file = nanogpt::SafetensorsFile::read(path);
        for (const auto& t : file.tensors()) {
            if (t.dtype == "F32" || t.dtype == "F16" || t.dtype == "BF16") (void)file.to_float(t);
        }
    });
    fuzz::expect_clean_errors([&] {
        const nanogpt::GPTConfig config = nanogpt::gpt2_config_from_safetensors(path);
        nanogpt::GPT<float> model(config);
        nanogpt::load_gpt2_safetensors(model, path);
    });
    return 0;
}
