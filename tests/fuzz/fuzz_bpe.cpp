// fuzz_bpe.cpp — GPT-2's tokenizer: encode then decode gives back any byte string, and the one
// JSON reader (encoder.json, safetensors headers) rejects malformed text cleanly. The tokenizer
// is a synthetic GPT-2-shaped one (tests/synthetic_bpe.hpp), so no data files are needed; the
// first input byte picks the mode. Seeds: tests/fuzz/corpus/bpe.
#include <cstdint>      // std::uint8_t
#include <string>       // std::string
#include <string_view>  // std::string_view

#include <nanogpt/bpe_tokenizer.hpp>
#include <nanogpt/detail/json.hpp>

#include "../synthetic_bpe.hpp"
#include "fuzz_common.hpp"

namespace {
const nanogpt::GPT2Tokenizer& tokenizer() {
    static const nanogpt::GPT2Tokenizer tok = [] {
        const auto files = nanogpt_test::make_synthetic_bpe(7, 600);
        const auto* e = reinterpret_cast<const std::uint8_t*>(files.encoder_json.data());
        const auto* m = reinterpret_cast<const std::uint8_t*>(files.merges.data());
        const std::string encoder = fuzz::scratch_file("encoder.json", e, files.encoder_json.size());
        const std::string merges = fuzz::scratch_file("vocab.bpe", m, files.merges.size());
        return nanogpt::GPT2Tokenizer::load(encoder, merges);
    }();
    return tok;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
    if (data[0] % 2 == 0) {
        const nanogpt::GPT2Tokenizer& tok = tokenizer();
        fuzz::check(tok.decode(tok.encode(text)) == text, "decode(encode(x)) == x");
        fuzz::check(tok.decode(tok.encode_ordinary(text)) == text,
                    "decode(encode_ordinary(x)) == x");
    } else {
        fuzz::expect_clean_errors(
            [&] { (void)nanogpt::detail::JsonParser(text, "fuzz").parse_document(); });
    }
    return 0;
}
