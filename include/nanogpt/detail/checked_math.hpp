// checked_math.hpp — sizes computed from a file or a flag, with overflow reported by name.
//
// A size read from a checkpoint or typed on the command line can be anything up to 2^63. Plain
// int64 arithmetic on it is undefined behaviour on overflow and in practice wraps to a small or
// negative count, which then passes every later check. Every product or sum of such sizes goes
// through these helpers instead: they throw the caller's exception type with a message naming
// the field, the operands and the limit.
#pragma once

#include <cstdint>    // std::int64_t
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string, std::to_string

namespace nanogpt::detail {

/// a * b for non-negative a and b; Error (e.g. std::invalid_argument) naming `field` if the
/// product exceeds `limit` (by default the int64 range).
template <class Error = std::invalid_argument>
std::int64_t checked_mul(std::int64_t a, std::int64_t b, const std::string& field,
                         std::int64_t limit = INT64_MAX) {
    std::int64_t product = 0;
    if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &product) || product > limit) {
        throw Error(field + " = " + std::to_string(a) + " x " + std::to_string(b) +
                    " is negative or exceeds " + std::to_string(limit));
    }
    return product;
}

/// a + b for non-negative a and b; Error naming `field` if the sum exceeds `limit`.
template <class Error = std::invalid_argument>
std::int64_t checked_add(std::int64_t a, std::int64_t b, const std::string& field,
                         std::int64_t limit = INT64_MAX) {
    std::int64_t sum = 0;
    if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &sum) || sum > limit) {
        throw Error(field + " = " + std::to_string(a) + " + " + std::to_string(b) +
                    " is negative or exceeds " + std::to_string(limit));
    }
    return sum;
}

}  // namespace nanogpt::detail
