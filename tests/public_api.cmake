# public_api.cmake — the examples use only the public API: no file under examples/ names
# `detail::` (nanogpt::detail is internal and may change without notice). A CTest test
# (tests/CMakeLists.txt) runs it:
#
#   cmake -DEXAMPLES_DIR=examples -P tests/public_api.cmake

cmake_minimum_required(VERSION 3.21)
file(GLOB_RECURSE sources LIST_DIRECTORIES false "${EXAMPLES_DIR}/*")
if(NOT sources)
    message(FATAL_ERROR "no files under '${EXAMPLES_DIR}'")
endif()
set(offenders "")
foreach(source IN LISTS sources)
    file(STRINGS "${source}" lines REGEX "detail::")
    foreach(line IN LISTS lines)
        string(STRIP "${line}" line)
        string(APPEND offenders "\n  ${source}: ${line}")
    endforeach()
endforeach()
if(offenders)
    message(FATAL_ERROR "examples/ must use only the public API; these lines name detail::${offenders}")
endif()
list(LENGTH sources count)
message(STATUS "${count} files under ${EXAMPLES_DIR} name no detail::")
