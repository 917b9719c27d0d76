// make_seeds.cpp — writes the fuzzers' seed corpora with the library's own writers, so every
// harness starts from valid files of today's formats: `make_seeds DIR` fills DIR/<harness>/.
// Run by scripts/fuzz.sh seeds; the output is committed under tests/fuzz/corpus/.
#include <cstdint>     // std::uint8_t
#include <filesystem>  // std::filesystem
#include <fstream>     // std::ofstream
#include <iostream>    // std::cerr
#include <string>      // std::string
#include <vector>      // std::vector

#include <nanogpt.hpp>

#include "../../examples/train_config.hpp"

namespace fs = std::filesystem;

namespace {
void write(const fs::path& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
}
std::string read(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: make_seeds DIR\n";
        return 1;
    }
    const fs::path dir = argv[1];
    for (const char* h : {"checkpoint", "safetensors", "bpe", "dataset", "config"})
        fs::create_directories(dir / h);
    const nanogpt::GPTConfig tiny{8, 5, 1, 2, 4, 0.0, true};
    nanogpt::GPT<float> model(tiny);
    nanogpt::AdamW<float> optimizer(model.parameters(), nanogpt::AdamWConfig{});
    nanogpt::save_checkpoint((dir / "checkpoint" / "with_optimizer.bin").string(), model,
                             &optimizer, {"a", "b", "c", "\n", "\xc3\xa9"});
    nanogpt::GPTConfig no_bias = tiny;
    no_bias.bias = false;
    nanogpt::GPT<float> plain(no_bias);
    nanogpt::save_checkpoint((dir / "checkpoint" / "plain.bin").string(), plain, nullptr, {});

    nanogpt::save_gpt2_safetensors(model, (dir / "safetensors" / "gpt2_tiny.safetensors").string());
    nanogpt::save_gpt2_safetensors(plain, (dir / "safetensors" / "gpt2_no_bias.safetensors").string());
    nanogpt::SafetensorsFile generic;
    const std::vector<float> values = {1.5f, -2.0f, 0.25f, 8.0f};
    generic.add("x", {2, 2}, values.data());
    generic.add("scalar", {}, values.data());
    generic.set_metadata("note", "caf\xc3\xa9 \"quoted\"");
    generic.write((dir / "safetensors" / "generic.safetensors").string());

    write(dir / "bpe" / "text.txt", std::string("\x00", 1) + "Hello, world! It's 2026: caf\xc3\xa9 <|endoftext|>  \n\tabcabc aaaa");
    write(dir / "bpe" / "json.txt", "\x01{\"a\\u00e9\": 1, \"b\": [1, 2, {\"c\": \"\\ud83d\\ude00\"}]}");

    const nanogpt::CharTokenizer chars = nanogpt::CharTokenizer::from_text("hello world\n#=\xc3\xa9");
    nanogpt::write_dataset_meta((dir / "dataset" / "meta.tmp").string(),
                                {"char", chars.vocab_size(), chars.symbols()});
    write(dir / "dataset" / "meta.txt", std::string("\x00", 1) + read(dir / "dataset" / "meta.tmp"));
    fs::remove(dir / "dataset" / "meta.tmp");
    nanogpt::write_token_file((dir / "dataset" / "tokens.tmp").string(),
                              chars.encode("hello world\nhello #= world\n"));
    write(dir / "dataset" / "train.bin", std::string("\x01", 1) + read(dir / "dataset" / "tokens.tmp"));
    fs::remove(dir / "dataset" / "tokens.tmp");

    examples::TrainConfig config;
    write(dir / "config" / "defaults.txt", config.to_text());
    config.apply_preset(*examples::find_preset("cpu_small"));
    config.set("out_dir", "o #1 'x' \"y\"", "seed");
    write(dir / "config" / "cpu_small_quoted.txt", config.to_text());
    return 0;
}
