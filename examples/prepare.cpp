// prepare — nanoGPT's data/*/prepare.py as a program: tokenises a text file into DIR/train.bin
// and DIR/val.bin (uint16 little-endian token ids, nanoGPT's layout) and DIR/meta.txt (the
// tokenizer and its vocabulary; format described in include/nanogpt/token_file.hpp).
//
//   ./build/prepare --input=../shared/data/tinyshakespeare.txt --out_dir=data/shakespeare_char
//   ./build/prepare --input=../shared/data/tinyshakespeare.txt --out_dir=data/shakespeare
//   --tokenizer=gpt2
#include <cstdint>      // std::int32_t
#include <cstdio>       // std::printf
#include <cstdlib>      // std::getenv
#include <exception>    // std::exception
#include <filesystem>   // std::filesystem::create_directories
#include <iostream>     // std::cout, std::cerr
#include <span>         // std::span
#include <stdexcept>    // std::invalid_argument, std::runtime_error
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <utility>      // std::pair
#include <vector>       // std::vector

#include <nanogpt.hpp>
#include <nanogpt/token_file.hpp>

#include "args.hpp"

namespace {

const char* kHelp = R"(prepare: tokenise a text file for train (nanoGPT's prepare.py).

  --input PATH            the text (UTF-8)
  --out_dir DIR           where train.bin, val.bin and meta.txt go (created if missing)
  --tokenizer char        char: one token per character, vocabulary = the text's characters;
                          gpt2: GPT-2's byte-level BPE (50257 tokens), as nanoGPT's
                          data/shakespeare and data/openwebtext
  --encoder PATH          gpt2 only: GPT-2's encoder.json and vocab.bpe. Default: the files in
  --merges PATH           $NANOGPT_DATA_DIR when that variable is set, else in data/gpt2/
                          (where scripts/download_gpt2.sh puts them)
  --train_fraction 0.9    the first 90% of the text's characters train, the rest validate
)";

/// GPT-2's tokenizer files: --encoder / --merges when given, else $NANOGPT_DATA_DIR/encoder.json
/// and vocab.bpe when that variable is set, else data/gpt2/ (scripts/download_gpt2.sh).
std::pair<std::string, std::string> gpt2_tokenizer_paths(examples::Args& args) {
    const char* env = std::getenv("NANOGPT_DATA_DIR");
    const std::string dir =
        env != nullptr && *env != '\0' ? std::string(env) : std::string("data/gpt2");
    return {args.get("encoder", dir + "/encoder.json"), args.get("merges", dir + "/vocab.bpe")};
}

/// GPT2Tokenizer::load, with a hint on where the files come from when one is missing.
nanogpt::GPT2Tokenizer load_gpt2_tokenizer(const std::string& encoder, const std::string& merges) {
    try {
        return nanogpt::GPT2Tokenizer::load(encoder, merges);
    } catch (const std::runtime_error& e) {
        throw std::runtime_error(std::string(e.what()) +
                                 " (GPT-2's tokenizer: run scripts/download_gpt2.sh, "
                                 "set NANOGPT_DATA_DIR, or pass --encoder and --merges)");
    }
}

/// Byte offset where the text's first `fraction` of characters (code points) ends: nanoGPT's
/// data/shakespeare/prepare.py splits the text, data[:int(n * 0.9)], before encoding it.
std::size_t text_split_offset(std::string_view text, double fraction) {
    if (!(fraction > 0.0 && fraction < 1.0)) {
        throw std::invalid_argument("--train_fraction must be in (0, 1), got " +
                                    std::to_string(fraction));
    }
    auto starts_character = [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; };
    std::size_t characters = 0;
    for (char c : text) characters += starts_character(c) ? 1 : 0;
    const auto n_train = static_cast<std::size_t>(fraction * static_cast<double>(characters));
    std::size_t seen = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (starts_character(text[i]) && seen++ == n_train) return i;
    }
    return text.size();
}

void write_split(const std::string& out_dir, const std::vector<std::int32_t>& train,
                 const std::vector<std::int32_t>& val, const nanogpt::DatasetMeta& meta) {
    std::filesystem::create_directories(out_dir);
    nanogpt::write_token_file(out_dir + "/train.bin", std::span<const std::int32_t>(train));
    nanogpt::write_token_file(out_dir + "/val.bin", std::span<const std::int32_t>(val));
    // meta.txt last: a directory with meta.txt is complete.
    nanogpt::write_dataset_meta(out_dir + "/meta.txt", meta);
    std::printf(
        "%s: train.bin %zu tokens, val.bin %zu tokens, meta.txt (tokenizer %s, vocab_size %lld)\n",
        out_dir.c_str(), train.size(), val.size(), meta.tokenizer.c_str(),
        static_cast<long long>(meta.vocab_size));
}

int run(examples::Args& args) {
    const std::string input = args.get("input", "");
    const std::string out_dir = args.get("out_dir", "");
    const std::string kind = args.get("tokenizer", "char");
    const double train_fraction = args.get_double("train_fraction", 0.9);
    const auto [encoder, merges] = gpt2_tokenizer_paths(args);
    args.reject_unknown();
    if (input.empty() || out_dir.empty())
        throw std::invalid_argument("--input and --out_dir are required (see --help)");
    if (kind != "char" && kind != "gpt2")
        throw std::invalid_argument("unknown --tokenizer '" + kind + "' (known: char, gpt2)");
    if (kind == "char" && (args.has("encoder") || args.has("merges"))) {
        throw std::invalid_argument("--encoder and --merges are for --tokenizer=gpt2");
    }

    const std::string text = nanogpt::read_text_file(input);
    if (kind == "gpt2") {
        const auto tokenizer = load_gpt2_tokenizer(encoder, merges);
        const std::size_t split = text_split_offset(text, train_fraction);
        std::printf("%s: %zu bytes, GPT-2 tokenizer from %s and %s\n", input.c_str(), text.size(),
                    encoder.c_str(), merges.c_str());
        // encode(): a literal "<|endoftext|>" in the text becomes the separator token 50256.
        write_split(out_dir, tokenizer.encode(std::string_view(text).substr(0, split)),
                    tokenizer.encode(std::string_view(text).substr(split)),
                    {"gpt2", tokenizer.vocab_size(), {}});
        return 0;
    }
    const auto tokenizer = nanogpt::CharTokenizer::from_text(text);
    if (tokenizer.vocab_size() > 65535) {
        throw std::invalid_argument(
            "vocabulary of " + std::to_string(tokenizer.vocab_size()) +
            " characters is too large for uint16 token files (at most 65535)");
    }
    // One token per character: splitting the tokens is splitting the text's characters.
    const auto split = nanogpt::split_train_val(tokenizer.encode(text), train_fraction);
    std::printf("%s: %zu bytes, vocab_size %d\n", input.c_str(), text.size(),
                tokenizer.vocab_size());
    write_split(out_dir, split.train, split.val,
                {"char", tokenizer.vocab_size(), tokenizer.symbols()});
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return examples::run_main(argc, argv, kHelp, run); }
