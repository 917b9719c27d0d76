// synthetic_bpe.hpp — a GPT-2-shaped tokenizer (50257 tokens, "<|endoftext|>" = 50256) made from
// a seed, for tests and fuzzers that must not depend on GPT-2's files: the 256 byte tokens, random
// merges over a few letters and the space (including repeated-letter pairs, which overlap), and
// filler tokens no merge can produce.
#pragma once

#include <algorithm>      // std::min
#include <cstdint>        // std::uint64_t
#include <set>            // std::set
#include <string>         // std::string
#include <unordered_set>  // std::unordered_set
#include <vector>         // std::vector

#include <nanogpt/bpe_tokenizer.hpp>
#include <nanogpt/detail/json.hpp>
#include <nanogpt/random.hpp>
#include <nanogpt/detail/utf8.hpp>

namespace nanogpt_test {

struct SyntheticBpe {
    std::string encoder_json;  // encoder.json
    std::string merges;        // vocab.bpe
};

inline SyntheticBpe make_synthetic_bpe(std::uint64_t seed, int n_merges) {
    const auto alphabet = nanogpt::detail::gpt2_byte_alphabet();
    auto spell = [&](const std::string& bytes) {  // raw bytes in GPT-2's printable alphabet
        std::string s;
        for (const char c : bytes)
            nanogpt::detail::encode_utf8(alphabet[static_cast<unsigned char>(c)], s);
        return s;
    };
    std::vector<std::string> vocab;  // raw bytes, id order
    std::unordered_set<std::string> known;
    for (int b = 0; b < 256; ++b) {
        vocab.emplace_back(1, static_cast<char>(b));
        known.insert(vocab.back());
    }
    nanogpt::Random rng(seed);
    std::vector<std::string> pieces = {"a", "b", "c", "d", " "};
    std::string merges = "#version: 0.2\n";
    std::set<std::pair<std::string, std::string>> pairs;
    for (int tries = 0; static_cast<int>(pairs.size()) < n_merges && tries < 100 * n_merges;
         ++tries) {
        // Short pieces more often, as in a real vocabulary.
        const auto pick = [&] {
            const std::size_t a = rng.next_u64() % pieces.size(), b = rng.next_u64() % pieces.size();
            return pieces[std::min(a, b)];
        };
        const std::string left = pick(), right = pick(), merged = left + right;
        if (merged.size() > 12 || !pairs.emplace(left, right).second) continue;
        merges += spell(left) + " " + spell(right) + "\n";
        if (known.insert(merged).second) {
            vocab.push_back(merged);
            pieces.push_back(merged);
        }
    }
    for (std::uint64_t i = 0; vocab.size() < 50256; ++i) {  // 'Q' never takes part in a merge
        std::string filler = "Q";
        for (std::uint64_t k = i; k > 0 || filler.size() == 1; k /= 3) filler += "xyz"[k % 3];
        if (known.insert(filler).second) vocab.push_back(filler);
    }
    std::string json = "{";
    for (std::size_t id = 0; id < vocab.size(); ++id)
        json += nanogpt::detail::json_quote(spell(vocab[id])) + ": " + std::to_string(id) + ", ";
    json += "\"<|endoftext|>\": 50256}";
    return {json, merges};
}

}  // namespace nanogpt_test
