// Tests for token_file.hpp: uint16 token files (round trip, nanoGPT's byte layout, size, range and
// length errors) and meta.txt (round trip of awkward characters, errors naming file:line).
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nanogpt/data.hpp>
#include <nanogpt/token_file.hpp>

namespace {

/// A fresh directory under the system's temp directory, removed at the end of the test.
struct TempDir {
    std::filesystem::path path;
    explicit TempDir(const std::string& name)
        : path(std::filesystem::temp_directory_path() /
               ("nanogpt_test_" + name + "_" +
                std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()))) {
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
    std::string file(const std::string& name) const { return (path / name).string(); }
};

void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
}

}  // namespace

TEST_CASE("token file round trip, little-endian layout, batches over the mapping", "[token_file]") {
    TempDir dir("roundtrip");
    const std::vector<std::int32_t> ids = {0, 1, 258, 65535, 7, 7, 3};
    nanogpt::write_token_file(dir.file("t.bin"), ids);
    std::ifstream in(dir.file("t.bin"), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    REQUIRE(bytes.size() == 14);
    CHECK(static_cast<unsigned char>(bytes[4]) == 0x02);  // 258 = 0x0102, low byte first
    CHECK(static_cast<unsigned char>(bytes[5]) == 0x01);
    CHECK_FALSE(std::filesystem::exists(dir.file("t.bin.tmp")));

    const nanogpt::TokenFile file(dir.file("t.bin"));
    REQUIRE(file.size() == 7);
    CHECK(std::vector<std::int32_t>(file.tokens().begin(), file.tokens().end()) == ids);
    file.check_vocabulary(65536);
    file.check_length(6);
    nanogpt::Random rng(1);
    const nanogpt::Batch batch = nanogpt::get_batch(file.tokens(), 2, 3, rng);
    CHECK(batch.x.size(1) == 3);

    const nanogpt::TokenFile empty = [&] {
        write_bytes(dir.file("empty.bin"), "");
        return nanogpt::TokenFile(dir.file("empty.bin"));
    }();
    CHECK(empty.size() == 0);
}

TEST_CASE("token file errors name the file and the value", "[token_file]") {
    TempDir dir("errors");
    SECTION("odd size") {
        write_bytes(dir.file("odd.bin"), "abc");
        CHECK_THROWS_WITH(nanogpt::TokenFile(dir.file("odd.bin")),
                          Catch::Contains("odd.bin' has 3 bytes, not a multiple of 2"));
    }
    SECTION("missing file") {
        CHECK_THROWS_WITH(nanogpt::TokenFile(dir.file("none.bin")),
                          Catch::Contains("none.bin': cannot open"));
    }
    SECTION("token id outside the vocabulary: the first one and its position") {
        std::vector<std::int32_t> ids(10000, 5);
        ids[9001] = 70;
        ids[9500] = 90;
        nanogpt::write_token_file(dir.file("v.bin"), ids);
        const nanogpt::TokenFile file(dir.file("v.bin"));
        CHECK_THROWS_AS(file.check_vocabulary(65), std::out_of_range);
        CHECK_THROWS_WITH(
            file.check_vocabulary(65),
            Catch::Contains("token id 70 at position 9001 is not below vocab_size 65"));
        file.check_vocabulary(91);
    }
    SECTION("too short for one block") {
        nanogpt::write_token_file(dir.file("s.bin"), std::vector<std::int32_t>{1, 2, 3});
        const nanogpt::TokenFile file(dir.file("s.bin"));
        CHECK_THROWS_WITH(
            file.check_length(8),
            Catch::Contains("s.bin' has 3 tokens, needs at least block_size + 1 = 9"));
    }
    SECTION("ids that do not fit uint16") {
        CHECK_THROWS_WITH(
            nanogpt::write_token_file(dir.file("w.bin"), std::vector<std::int32_t>{1, 65536}),
            Catch::Contains("token id 65536 at position 1 does not fit uint16"));
    }
}

TEST_CASE("meta.txt round trip keeps every character", "[token_file]") {
    TempDir dir("meta");
    // Newline, tab, '#', '=', a space, quotes, non-ASCII and a 4-byte emoji, sorted by code point.
    const std::string text = "\t\n \"#'=AZ\\\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";
    const auto tokenizer = nanogpt::CharTokenizer::from_text(text);
    nanogpt::write_dataset_meta(dir.file("meta.txt"),
                                {"char", tokenizer.vocab_size(), tokenizer.symbols()});
    const nanogpt::DatasetMeta meta = nanogpt::read_dataset_meta(dir.file("meta.txt"));
    CHECK(meta.tokenizer == "char");
    CHECK(meta.vocab_size == tokenizer.vocab_size());
    CHECK(meta.vocabulary == tokenizer.symbols());
    CHECK(meta.char_tokenizer().encode(text) == tokenizer.encode(text));
}

TEST_CASE("meta.txt errors name file and line", "[token_file]") {
    TempDir dir("meta_errors");
    const std::string path = dir.file("meta.txt");
    SECTION("unknown key") {
        write_bytes(path, "format = 1\n# comment\nvocab_size = 1\ncolour = red\n");
        CHECK_THROWS_WITH(nanogpt::read_dataset_meta(path),
                          Catch::Contains("meta.txt:4: unknown key 'colour'"));
    }
    SECTION("unknown tokenizer") {
        write_bytes(path, "format = 1\ntokenizer = sentencepiece\n");
        CHECK_THROWS_WITH(nanogpt::read_dataset_meta(path),
                          Catch::Contains("meta.txt:2: unknown tokenizer 'sentencepiece'"));
    }
    SECTION("bad symbol") {
        write_bytes(path, "format = 1\nvocab_size = 1\nsymbol = U+D800\n");
        CHECK_THROWS_WITH(nanogpt::read_dataset_meta(path),
                          Catch::Contains("meta.txt:3: symbol 'U+D800'"));
    }
    SECTION("symbol count differs from vocab_size") {
        write_bytes(path, "format = 1\nvocab_size = 2\nsymbol = U+0041\n");
        CHECK_THROWS_WITH(nanogpt::read_dataset_meta(path),
                          Catch::Contains("1 symbols but vocab_size = 2"));
    }
    SECTION("gpt2 is read but not supported yet") {
        write_bytes(path, "format = 1\ntokenizer = gpt2\nvocab_size = 50257\n");
        const nanogpt::DatasetMeta meta = nanogpt::read_dataset_meta(path);
        CHECK_THROWS_WITH(meta.char_tokenizer(), Catch::Contains("'gpt2' is not supported yet"));
    }
    SECTION("missing file") {
        CHECK_THROWS_WITH(nanogpt::read_dataset_meta(path), Catch::Contains("run prepare first"));
    }
    SECTION("issue 11, item 5: a vocab_size no uint16 token file can use") {
        write_bytes(path, "format = 1\ntokenizer = gpt2\nvocab_size = 2000000000\n");
        CHECK_THROWS_AS(nanogpt::read_dataset_meta(path), std::runtime_error);
        CHECK_THROWS_WITH(nanogpt::read_dataset_meta(path),
                          Catch::Contains("meta.txt:3: vocab_size 2000000000 exceeds 65536"));
    }
}

TEST_CASE("token files: block_size = INT64_MAX is a clear error, not an overflow",
          "[token_file]") {
    TempDir dir("huge_block");
    nanogpt::write_token_file(dir.file("t.bin"), std::vector<std::int32_t>{1, 2, 3});
    const nanogpt::TokenFile file(dir.file("t.bin"));
    CHECK_THROWS_WITH(file.check_length(INT64_MAX),
                      Catch::Contains("needs at least block_size + 1 = 9223372036854775808"));
    nanogpt::Random rng(1);
    CHECK_THROWS_AS(nanogpt::get_batch(file.tokens(), 1, INT64_MAX, rng), std::invalid_argument);
    const std::vector<std::int32_t> data(100, 1);
    CHECK_THROWS_WITH(nanogpt::get_batch(data, 1000000000000, 8, rng),
                      Catch::Contains("batch_size x block_size"));
}
