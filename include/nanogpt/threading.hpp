// threading.hpp — how many threads the library's parallel loops use.
//
// Every kernel splits its work statically across this many threads, so for a fixed count the
// results are identical run to run (see detail/parallel.hpp). The default is one thread per core.
// A program that runs several models at once, or shares the machine, sets a smaller count once
// at start-up. Builds without OpenMP (Apple clang, -DNANOGPT_USE_OPENMP=OFF) run the loops on a
// std::thread pool instead, with the same split and the same results (detail/thread_pool.hpp).
// Read next: tape.hpp.
#pragma once

#include <stdexcept>  // std::invalid_argument
#include <string>     // std::to_string

#include <nanogpt/detail/parallel.hpp>

namespace nanogpt {

/// Sets the number of threads later parallel loops use (n >= 1). Call it between operations,
/// not from inside one.
inline void set_num_threads(int n) {
    if (n < 1) {
        throw std::invalid_argument("set_num_threads: n must be >= 1, got " + std::to_string(n));
    }
    detail::set_threads(n);
}

/// The number of threads parallel loops use now.
inline int num_threads() { return detail::max_threads(); }

/// What runs the parallel loops in this build: "openmp" or "std::thread" (the pool).
inline const char* threading_backend() { return detail::threading_backend(); }

}  // namespace nanogpt
