// allocation_probe.hpp — the largest single heap request since the last reset, recorded by the
// global operator new that tests/test_allocations.cpp replaces for the whole test binary. Lets a
// test check that a small hostile file never makes the library ask for a large buffer.
#pragma once

#include <cstddef>  // std::size_t

namespace nanogpt_test {

void reset_largest_allocation();
std::size_t largest_allocation();

}  // namespace nanogpt_test
