// fuzz_config.cpp — the training program's config file (examples/train_config.hpp over
// key_value.hpp): a file it accepts, written back with to_text() and re-read, gives the same
// configuration; every line's value survives quote_value and split_key_value.
// Seeds: tests/fuzz/corpus/config (TrainConfig::to_text).
#include <cstdint>  // std::uint8_t
#include <sstream>  // std::istringstream
#include <string>   // std::string

#include <nanogpt/key_value.hpp>

#include "../../examples/train_config.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    std::istringstream lines(text);
    std::string line, key, value, error;
    while (std::getline(lines, line)) {
        if (!nanogpt::split_key_value(line, key, value, error) || !error.empty()) continue;
        std::string key2, value2, error2;
        const bool content =
            nanogpt::split_key_value("k = " + nanogpt::quote_value(value), key2, value2, error2);
        fuzz::check(content && error2.empty() && value2 == value, "quote_value round trip");
    }
    const std::string path = fuzz::scratch_file("config.txt", data, size);
    fuzz::expect_clean_errors([&] {
        examples::TrainConfig config;
        config.load_file(path);
        const std::string written = config.to_text();
        const auto* w = reinterpret_cast<const std::uint8_t*>(written.data());
        const std::string again_path = fuzz::scratch_file("config_again.txt", w, written.size());
        examples::TrainConfig again;
        again.load_file(again_path);
        fuzz::check(again.to_text() == written, "config.txt round trip");
    });
    return 0;
}
