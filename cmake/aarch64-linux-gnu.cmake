# Cross-compiling for 64-bit Arm Linux with Debian's g++-aarch64-linux-gnu, running the results
# under qemu-user (CI's AArch64 stage; see docs/portability.md):
#
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#       -DNANOGPT_BUILD_TESTS=ON -DNANOGPT_BUILD_EXAMPLES=OFF -DNANOGPT_BUILD_BENCHMARKS=OFF
#   qemu-aarch64 -L /usr/aarch64-linux-gnu build-aarch64/tests/nanogpt_tests "~[slow]"
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# ctest and catch_discover_tests run the test binary through this.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
# Libraries and headers from the target's tree; CMake packages (Catch2 is header-only) and
# programs from the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
