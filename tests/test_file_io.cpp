// Tests for file_io.hpp: durable atomic writes (issue 11, item 8) and whole-file reads with errors
// that name the file.
#include <catch2/catch.hpp>

#include <filesystem>  // std::filesystem
#include <stdexcept>   // std::runtime_error
#include <string>      // std::string
#include <vector>      // std::vector

#include <nanogpt/file_io.hpp>

using namespace nanogpt;
namespace fs = std::filesystem;

namespace {
std::string temp_path(const std::string& name) {
    return (fs::temp_directory_path() / ("nanogpt_test_io_" + name)).string();
}
std::string as_text(const std::vector<unsigned char>& bytes) {
    return {bytes.begin(), bytes.end()};
}
}  // namespace

TEST_CASE("file_io: writes replace the file atomically and durably", "[file_io]") {
    const std::string path = temp_path("atomic.txt");
    write_file_atomically(path, std::string_view("first"), "test");
    CHECK(as_text(read_file_bytes(path, "test")) == "first");
    const long syncs = detail::fsync_count.load();
    const std::string a = "sec", b = "ond";
    write_file_atomically(path, {ByteRange{a.data(), a.size()}, ByteRange{b.data(), b.size()}},
                          "test");
    CHECK(as_text(read_file_bytes(path, "test")) == "second");
    CHECK_FALSE(fs::exists(path + ".tmp"));
#if NANOGPT_HAS_POSIX_IO
    // Item 8: the file's data, then the directory holding the renamed entry, reach the disk.
    CHECK(detail::fsync_count.load() - syncs == 2);
#endif
    fs::remove(path);
}

TEST_CASE("file_io: errors name the file", "[file_io]") {
    SECTION("writing into a missing directory") {
        const std::string path = temp_path("no_such_dir") + "/x.bin";
        CHECK_THROWS_AS(write_file_atomically(path, std::string_view("x"), "checkpoint"),
                        std::runtime_error);
        CHECK_THROWS_WITH(write_file_atomically(path, std::string_view("x"), "checkpoint"),
                          Catch::StartsWith("checkpoint: cannot open") &&
                              Catch::Contains(path + ".tmp"));
    }
    SECTION("reading a missing file") {
        const std::string path = temp_path("missing.bin");
        CHECK_THROWS_WITH(read_file_bytes(path, "checkpoint"),
                          Catch::StartsWith("checkpoint '" + path + "': cannot open file"));
    }
    SECTION("reading a directory (issue 11, item 5)") {
        const std::string dir = temp_path("dir");
        fs::create_directories(dir);
        CHECK_THROWS_AS(read_file_bytes(dir, "checkpoint"), std::runtime_error);
        CHECK_THROWS_WITH(read_file_bytes(dir, "checkpoint"),
                          Catch::Contains(dir) && Catch::Contains("not a regular file"));
        fs::remove(dir);
    }
}
