// bench_tokenizer — GPT2Tokenizer encode and decode speed on tiny Shakespeare, single-threaded.
// Validates first: the ids must match tiktoken's (count and hash in
// tests/data/gpt2_tokenizer_vectors.txt) and decode must give the text back.
// scripts/bench_tiktoken.js prints tiktoken's number on the same file for comparison.
//
// usage: bench_tokenizer [--data DIR] [--runs N]
//   DIR holds encoder.json, vocab.bpe, tinyshakespeare.txt; default $NANOGPT_DATA_DIR, else
//   ../shared/data. Prints medians over N runs (default 7) for a cold word cache (cleared before
//   each run) and a warm one (filled by the run before).
#include <algorithm>   // std::sort
#include <chrono>      // std::chrono::steady_clock
#include <cstdint>     // std::int32_t, std::uint64_t
#include <cstdio>      // std::printf
#include <cstdlib>     // std::getenv, std::atoi
#include <cstring>     // std::strcmp
#include <exception>   // std::exception
#include <filesystem>  // std::filesystem::path
#include <fstream>     // std::ifstream
#include <functional>  // std::function
#include <iterator>    // std::istreambuf_iterator
#include <sstream>     // std::istringstream
#include <string>      // std::string, std::getline
#include <vector>      // std::vector

#include "nanogpt/bpe_tokenizer.hpp"
#include "nanogpt/detail/hash.hpp"

namespace {

namespace fs = std::filesystem;

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median_seconds(int runs, const std::function<void()>& before,
                      const std::function<void()>& fn) {
    std::vector<double> times;
    for (int r = 0; r < runs; ++r) {
        before();
        const auto start = std::chrono::steady_clock::now();
        fn();
        times.push_back(seconds_since(start));
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

std::string cpu_name() {
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
    }
    return "unknown CPU";
}

/// The vectors file's hash of an id sequence: FNV-1a over the ids' little-endian bytes.
std::uint64_t fnv1a64(const std::vector<std::int32_t>& ids) {
    return nanogpt::detail::fnv1a(ids.data(), ids.size() * sizeof(std::int32_t));
}

// Checks the ids against the reference record for the file, if the vectors file is there.
bool validate(const std::vector<std::int32_t>& ids, const std::string& text) {
    const fs::path vectors =
        fs::path(__FILE__).parent_path() / ".." / "tests" / "data" / "gpt2_tokenizer_vectors.txt";
    std::ifstream in(vectors);
    bool checked = false, ok = true;
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("F\ttinyshakespeare.txt\t", 0) != 0) continue;
        std::istringstream fields(line.substr(line.find('\t', 2) + 1));
        std::size_t bytes = 0, count = 0;
        std::string hash;
        fields >> bytes >> count >> hash;
        checked = true;
        ok = bytes == text.size() && count == ids.size() &&
             std::stoull(hash, nullptr, 16) == fnv1a64(ids);
    }
    std::printf("validation vs tiktoken: %s\n", !checked ? "skipped (no vectors file)"
                                                : ok     ? "ids match"
                                                         : "FAILED");
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    int runs = 7;
    std::string dir;
    if (const char* env = std::getenv("NANOGPT_DATA_DIR")) dir = env;
    if (dir.empty()) dir = "../shared/data";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--runs") == 0) runs = std::max(1, std::atoi(argv[i + 1]));
        if (std::strcmp(argv[i], "--data") == 0) dir = argv[i + 1];
    }
    try {
        auto start = std::chrono::steady_clock::now();
        const auto tok = nanogpt::GPT2Tokenizer::load((fs::path(dir) / "encoder.json").string(),
                                                      (fs::path(dir) / "vocab.bpe").string());
        const double load_s = seconds_since(start);
        std::ifstream in(fs::path(dir) / "tinyshakespeare.txt", std::ios::binary);
        if (!in) throw std::runtime_error("cannot open " + dir + "/tinyshakespeare.txt");
        const std::string text((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());

        std::printf("CPU: %s, threads: 1, runs: %d (median), Unicode tables %s\n",
                    cpu_name().c_str(), runs, nanogpt::detail::kUnicodeVersion);
        std::printf("load encoder.json + vocab.bpe: %.1f ms\n", load_s * 1e3);
        std::vector<std::int32_t> ids = tok.encode(text);
        if (!validate(ids, text) || tok.decode(ids) != text) {
            std::printf("validation FAILED\n");
            return 1;
        }
        const double mb = static_cast<double>(text.size()) / 1e6;
        const auto encode = [&] { ids = tok.encode(text); };
        const double cold = median_seconds(
            runs, [&] { tok.clear_cache(); }, encode);
        const double warm = median_seconds(
            runs, [] {}, encode);
        std::string decoded;
        const double dec = median_seconds(
            runs, [] {}, [&] { decoded = tok.decode(ids); });
        std::printf("tinyshakespeare.txt: %.2f MB, %zu tokens\n", mb, ids.size());
        std::printf("encode, cold word cache: %8.2f MB/s  (%.1f ms)\n", mb / cold, cold * 1e3);
        std::printf("encode, warm word cache: %8.2f MB/s  (%.1f ms)\n", mb / warm, warm * 1e3);
        std::printf("decode:                  %8.2f MB/s  (%.1f ms)\n", mb / dec, dec * 1e3);
        // One word of n random lowercase letters (fixed seed) is one pre-token, so this times the
        // merge loop alone: it should grow about linearly in n (it was quadratic before the heap).
        std::uint64_t state = 42;
        for (const std::size_t n : {5000u, 10000u, 20000u, 40000u, 1000000u}) {
            std::string word(n, 'a');
            for (char& c : word) {
                state = state * 6364136223846793005ULL + 1442695040888963407ULL;
                c = static_cast<char>('a' + (state >> 33) % 26);
            }
            const int word_runs = n > 100000 ? 1 : runs;
            const double t = median_seconds(
                word_runs, [&] { tok.clear_cache(); }, [&] { (void)tok.encode(word); });
            std::printf("one word of %7zu letters: %9.2f ms\n", n, t * 1e3);
        }
    } catch (const std::exception& e) {
        std::printf("bench_tokenizer: %s\n", e.what());
        return 1;
    }
    return 0;
}
