// parallel.hpp — the only place in nanogpt.hpp that mentions OpenMP.
//
// Every parallel loop goes through parallel_for. Each iteration must write its own outputs
// (no two threads touch the same element, no floating-point reductions across threads), so
// results are identical with or without OpenMP and for any thread count unless a kernel says
// otherwise. Without OpenMP the loop simply runs serially.
#pragma once

#include <cstdint>  // std::int64_t

#ifdef _OPENMP
#include <omp.h>
#endif

namespace nanogpt::detail {

/// Runs body(i) for i in [0, n), split statically across threads.
/// body must not throw: an exception escaping an OpenMP region terminates the program.
template <class Body>
inline void parallel_for(std::int64_t n, const Body& body) {
#ifdef _OPENMP
    if (n > 1 && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
        for (std::int64_t i = 0; i < n; ++i) body(i);
        return;
    }
#endif
    for (std::int64_t i = 0; i < n; ++i) body(i);
}

/// Number of threads parallel_for will use (1 without OpenMP).
inline int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/// Sets the thread count for later parallel loops (ignored without OpenMP).
inline void set_threads(int n) {
#ifdef _OPENMP
    if (n > 0) omp_set_num_threads(n);
#else
    (void)n;
#endif
}

}  // namespace nanogpt::detail
