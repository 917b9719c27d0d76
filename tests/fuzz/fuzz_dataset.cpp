// fuzz_dataset.cpp — a dataset directory's files: meta.txt (first input byte even) or a uint16
// token file checked against a vocabulary and sampled (odd). Seeds: tests/fuzz/corpus/dataset
// (write_dataset_meta, write_token_file).
#include <cstdint>  // std::uint8_t
#include <string>   // std::string

#include <nanogpt/data.hpp>
#include <nanogpt/token_file.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    if (data[0] % 2 == 0) {
        const std::string path = fuzz::scratch_file("meta.txt", data + 1, size - 1);
        fuzz::expect_clean_errors([&] {
            const nanogpt::DatasetMeta meta = nanogpt::read_dataset_meta(path);
            if (meta.tokenizer == "char") (void)meta.char_tokenizer();
            // What prepare would write for it reads back the same.
            const std::string again = path + ".again";
            nanogpt::write_dataset_meta(again, meta);
            const nanogpt::DatasetMeta reread = nanogpt::read_dataset_meta(again);
            fuzz::check(reread.vocabulary == meta.vocabulary && reread.vocab_size == meta.vocab_size,
                        "meta.txt round trip");
        });
    } else {
        const std::string path = fuzz::scratch_file("train.bin", data + 1, size - 1);
        fuzz::expect_clean_errors([&] {
            const nanogpt::TokenFile file(path);
            file.check_vocabulary(1 + data[0] * 200);
            file.check_length(8);
            nanogpt::Random rng(size);
            const nanogpt::Batch b = nanogpt::get_batch(file.tokens(), 2, 8, rng);
            fuzz::check(b.x.numel() == 16, "batch shape");
        });
    }
    return 0;
}
