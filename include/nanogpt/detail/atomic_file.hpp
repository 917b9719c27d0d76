// atomic_file.hpp — writing a file so that a crash or a full disk never destroys the old one:
// the bytes go to "<path>.tmp", which is renamed over <path> only once it is complete (a rename
// within one directory is atomic on POSIX file systems). Used by checkpoints, safetensors
// exports, token files and everything else the library writes.
#pragma once

#include <cerrno>            // errno
#include <cstddef>           // std::size_t
#include <cstdio>            // std::fopen, std::fwrite, std::fclose
#include <cstring>           // std::strerror
#include <filesystem>        // std::filesystem::rename, remove
#include <initializer_list>  // std::initializer_list
#include <stdexcept>         // std::runtime_error
#include <string>            // std::string
#include <system_error>      // std::error_code

namespace nanogpt::detail {

/// A piece of the file's contents.
struct ByteRange {
    const void* data;
    std::size_t size;
};

/// Writes the pieces, in order, to path atomically. Errors are std::runtime_error messages
/// starting with `who` (e.g. "checkpoint") and naming the file.
inline void write_file_atomically(const std::string& path, std::initializer_list<ByteRange> pieces,
                                  const std::string& who) {
    const std::string tmp = path + ".tmp";
    errno = 0;
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (f == nullptr) {
        throw std::runtime_error(who + ": cannot open '" + tmp +
                                 "' for writing: " + std::strerror(errno));
    }
    bool written = true;
    for (const ByteRange& piece : pieces)
        written = written && std::fwrite(piece.data, 1, piece.size, f) == piece.size;
    const bool closed = std::fclose(f) == 0;
    if (!written || !closed) {
        std::error_code ignored;
        std::filesystem::remove(tmp, ignored);
        throw std::runtime_error(who + ": writing '" + tmp + "' failed (disk full?)");
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec)
        throw std::runtime_error(who + ": cannot rename '" + tmp + "' to '" + path +
                                 "': " + ec.message());
}

}  // namespace nanogpt::detail
