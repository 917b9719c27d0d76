// prepare — nanoGPT's data/*/prepare.py as a program: tokenises a text file into DIR/train.bin
// and DIR/val.bin (uint16 little-endian token ids, nanoGPT's layout) and DIR/meta.txt (the
// tokenizer and its vocabulary; format described in include/nanogpt/token_file.hpp).
//
//   ./build/prepare --input=../shared/data/tinyshakespeare.txt --out_dir=data/shakespeare_char
#include <cstdio>      // std::printf
#include <exception>   // std::exception
#include <filesystem>  // std::filesystem::create_directories
#include <iostream>    // std::cout, std::cerr
#include <span>        // std::span
#include <string>      // std::string

#include <nanogpt.hpp>
#include <nanogpt/token_file.hpp>

#include "args.hpp"

namespace {

const char* kHelp = R"(prepare: tokenise a text file for train (nanoGPT's prepare.py).

  --input PATH            the text (UTF-8)
  --out_dir DIR           where train.bin, val.bin and meta.txt go (created if missing)
  --tokenizer char        char: one token per character, vocabulary = the text's characters
                          (gpt2: GPT-2's BPE, not supported yet)
  --train_fraction 0.9    the first 90% of the tokens train, the rest validate
)";

int run(examples::Args& args) {
    const std::string input = args.get("input", "");
    const std::string out_dir = args.get("out_dir", "");
    const std::string kind = args.get("tokenizer", "char");
    const double train_fraction = args.get_double("train_fraction", 0.9);
    args.reject_unknown();
    if (input.empty() || out_dir.empty()) throw std::invalid_argument("--input and --out_dir are required (see --help)");
    if (kind == "gpt2") throw std::invalid_argument("--tokenizer gpt2 is not supported yet (use char)");
    if (kind != "char") throw std::invalid_argument("unknown --tokenizer '" + kind + "' (known: char)");

    const std::string text = nanogpt::read_text_file(input);
    const auto tokenizer = nanogpt::CharTokenizer::from_text(text);
    if (tokenizer.vocab_size() > 65535) {
        throw std::invalid_argument("vocabulary of " + std::to_string(tokenizer.vocab_size()) +
                                    " characters is too large for uint16 token files (at most 65535)");
    }
    const auto split = nanogpt::split_train_val(tokenizer.encode(text), train_fraction);
    std::filesystem::create_directories(out_dir);
    nanogpt::write_token_file(out_dir + "/train.bin", std::span<const std::int32_t>(split.train));
    nanogpt::write_token_file(out_dir + "/val.bin", std::span<const std::int32_t>(split.val));
    // meta.txt last: a directory with meta.txt is complete.
    nanogpt::write_dataset_meta(out_dir + "/meta.txt", {"char", tokenizer.vocab_size(), tokenizer.symbols()});
    std::printf("%s: %zu bytes, vocab_size %d\n", input.c_str(), text.size(), tokenizer.vocab_size());
    std::printf("%s: train.bin %zu tokens, val.bin %zu tokens, meta.txt\n", out_dir.c_str(), split.train.size(),
                split.val.size());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        examples::Args args(argc, argv);
        if (args.help()) {
            std::cout << kHelp;
            return 0;
        }
        return run(args);
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}
