#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <nanogpt/tape.hpp>

// ctest runs each test case in a process of its own; a run of the whole binary in one process
// (CI's AArch64 stage under qemu does that) must behave the same. So every test case starts on
// an empty tape, not on a graph an earlier case left behind: that graph's backward closures may
// point into a model that no longer exists, and a later backward() would run them.
struct FreshTapePerTestCase : Catch::TestEventListenerBase {
    using TestEventListenerBase::TestEventListenerBase;
    void testCaseStarting(const Catch::TestCaseInfo&) override {
        nanogpt::Tape::current().begin_graph();
    }
};
CATCH_REGISTER_LISTENER(FreshTapePerTestCase)
