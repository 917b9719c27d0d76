// hash.hpp — FNV-1a (64-bit) over bytes: the checkpoint integrity hash, and the hash the test
// vectors use to pin long token-id sequences (ids hashed as their little-endian bytes).
#pragma once

#include <cstddef>  // std::size_t
#include <cstdint>  // std::uint64_t

namespace nanogpt::detail {

inline constexpr std::uint64_t kFnv1aStart = 0xcbf29ce484222325ULL;

/// The hash of n bytes; pass the hash of the bytes before them as `h` to hash a file in pieces.
inline std::uint64_t fnv1a(const void* data, std::size_t n, std::uint64_t h = kFnv1aStart) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ bytes[i]) * 0x100000001b3ULL;
    return h;
}

}  // namespace nanogpt::detail
