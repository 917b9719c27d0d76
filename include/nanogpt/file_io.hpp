// file_io.hpp — reading a whole file with a clear error, and writing one so that neither a crash,
// a full disk nor a power cut destroys the old contents.
//
// write_file_atomically does what storage code that must survive power loss does: write the bytes
// to "<path>.tmp", fsync it (the data reaches the disk), rename it over <path> (atomic within one
// directory on POSIX file systems), then fsync the directory (the rename itself reaches the disk).
// Without the first fsync a power cut after the rename can leave an empty or partial <path>; without
// the second the rename can be lost. Where POSIX calls are unavailable it falls back to stdio and
// only the rename's atomicity holds. Used by checkpoints, safetensors, token files and the
// examples' text outputs. Read next: key_value.hpp.
#pragma once

#include <atomic>            // std::atomic (the sync counter the tests read)
#include <cerrno>            // errno
#include <cstddef>           // std::size_t
#include <cstdio>            // std::fopen, std::fread, std::fwrite, std::fclose
#include <cstring>           // std::strerror
#include <filesystem>        // std::filesystem::rename, remove, path
#include <initializer_list>  // std::initializer_list
#include <memory>            // std::unique_ptr
#include <stdexcept>         // std::runtime_error
#include <string>            // std::string
#include <string_view>       // std::string_view
#include <system_error>      // std::error_code
#include <vector>            // std::vector

#if __has_include(<fcntl.h>) && __has_include(<unistd.h>) && __has_include(<sys/stat.h>)
#include <fcntl.h>     // open, O_* flags
#include <sys/stat.h>  // fstat, S_ISREG
#include <unistd.h>    // write, fsync, close
#define NANOGPT_HAS_POSIX_IO 1
#else
#define NANOGPT_HAS_POSIX_IO 0
#endif

namespace nanogpt {

/// A piece of a file's contents.
struct ByteRange {
    const void* data;
    std::size_t size;
};

namespace detail {

/// Successful fsync calls so far: lets a test check that a write really syncs file and directory.
inline std::atomic<long> fsync_count{0};

[[noreturn]] inline void io_fail(const std::string& who, const std::string& what, int err) {
    throw std::runtime_error(who + ": " + what + (err != 0 ? ": " + std::string(std::strerror(err))
                                                           : std::string()));
}

#if NANOGPT_HAS_POSIX_IO
inline bool write_all(int fd, const void* data, std::size_t size) {
    const auto* p = static_cast<const unsigned char*>(data);
    while (size > 0) {
        const ssize_t n = ::write(fd, p, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        size -= static_cast<std::size_t>(n);
    }
    return true;
}

inline bool sync_fd(int fd) {
    if (::fsync(fd) != 0) return false;
    ++fsync_count;
    return true;
}
#endif

}  // namespace detail

/// Writes the pieces, in order, to path durably and atomically (see the top of this file).
/// Errors are std::runtime_error messages starting with `who` (e.g. "checkpoint") and naming the
/// file.
inline void write_file_atomically(const std::string& path, std::initializer_list<ByteRange> pieces,
                                  const std::string& who) {
    const std::string tmp = path + ".tmp";
    auto discard = [&] {
        std::error_code ignored;
        std::filesystem::remove(tmp, ignored);
    };
#if NANOGPT_HAS_POSIX_IO
    errno = 0;
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) detail::io_fail(who, "cannot open '" + tmp + "' for writing", errno);
    bool written = true;
    for (const ByteRange& piece : pieces)
        written = written && detail::write_all(fd, piece.data, piece.size);
    const int write_error = errno;
    const bool synced = written && detail::sync_fd(fd);
    const int sync_error = errno;
    const bool closed = ::close(fd) == 0;
    if (!written || !synced || !closed) {
        discard();
        detail::io_fail(who, std::string(!written ? "writing" : !synced ? "syncing" : "closing") +
                                 " '" + tmp + "' failed (disk full?)",
                        !written ? write_error : sync_error);
    }
#else
    errno = 0;
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (f == nullptr) detail::io_fail(who, "cannot open '" + tmp + "' for writing", errno);
    bool written = true;
    for (const ByteRange& piece : pieces)
        written = written && std::fwrite(piece.data, 1, piece.size, f) == piece.size;
    const bool closed = std::fclose(f) == 0;
    if (!written || !closed) {
        discard();
        detail::io_fail(who, "writing '" + tmp + "' failed (disk full?)", 0);
    }
#endif
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        discard();
        throw std::runtime_error(who + ": cannot rename '" + tmp + "' to '" + path +
                                 "': " + ec.message());
    }
#if NANOGPT_HAS_POSIX_IO
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    const std::string dir = parent.empty() ? std::string(".") : parent.string();
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_CLOEXEC);
    if (dfd < 0) detail::io_fail(who, "cannot open directory '" + dir + "' to sync it", errno);
    const bool dir_synced = detail::sync_fd(dfd);
    const int dir_error = errno;
    ::close(dfd);
    if (!dir_synced) detail::io_fail(who, "cannot sync directory '" + dir + "'", dir_error);
#endif
}

/// write_file_atomically for one piece of text.
inline void write_file_atomically(const std::string& path, std::string_view text,
                                  const std::string& who) {
    write_file_atomically(path, {ByteRange{text.data(), text.size()}}, who);
}

/// The whole file as bytes. std::runtime_error starting with `who` and naming the file when it
/// cannot be opened, is not a regular file (a directory), or reading fails.
inline std::vector<unsigned char> read_file_bytes(const std::string& path, const std::string& who) {
    struct Close {
        void operator()(std::FILE* f) const { std::fclose(f); }
    };
    errno = 0;
    std::unique_ptr<std::FILE, Close> file(std::fopen(path.c_str(), "rb"));
    if (!file) detail::io_fail(who + " '" + path + "'", "cannot open file", errno);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
        detail::io_fail(who + " '" + path + "'", "not a regular file", 0);
    std::vector<unsigned char> bytes;
    const auto size = std::filesystem::file_size(path, ec);
    if (!ec) bytes.reserve(static_cast<std::size_t>(size));  // a hint: reading stops at EOF
    unsigned char buffer[1 << 16];
    std::size_t got = 0;
    while ((got = std::fread(buffer, 1, sizeof buffer, file.get())) > 0)
        bytes.insert(bytes.end(), buffer, buffer + got);
    if (std::ferror(file.get())) detail::io_fail(who + " '" + path + "'", "cannot read file", errno);
    return bytes;
}

}  // namespace nanogpt
