// fuzz_common.hpp — what every libFuzzer harness shares: a scratch file for readers that take a
// path, and the rule that a malformed input may only throw the three documented exception types.
// Anything else (std::bad_alloc, std::length_error, std::logic_error, a crash, a sanitizer report)
// is a finding.
#pragma once

#include <cstddef>    // std::size_t
#include <cstdint>    // std::uint8_t
#include <cstdio>     // std::fprintf
#include <cstdlib>    // std::abort
#include <exception>  // std::exception
#include <fstream>    // std::ofstream
#include <stdexcept>  // std::invalid_argument, std::out_of_range, std::runtime_error
#include <string>     // std::string
#include <typeinfo>   // typeid

#include <unistd.h>  // getpid

namespace fuzz {

/// A file of this process holding `size` bytes of `data`; its path.
inline std::string scratch_file(const char* name, const std::uint8_t* data, std::size_t size) {
    const std::string path = "/tmp/nanogpt_fuzz_" + std::to_string(getpid()) + "_" + name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    return path;
}

/// Runs f; a documented exception is a normal rejection, any other one aborts (a finding).
template <class F>
void expect_clean_errors(F f) {
    try {
        f();
    } catch (const std::invalid_argument&) {
    } catch (const std::out_of_range&) {
    } catch (const std::runtime_error&) {
    } catch (const std::exception& e) {
        std::fprintf(stderr, "undocumented exception %s: %s\n", typeid(e).name(), e.what());
        std::abort();
    }
}

/// A failed property: prints it and aborts so libFuzzer saves the input.
inline void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "property violated: %s\n", what);
        std::abort();
    }
}

}  // namespace fuzz
