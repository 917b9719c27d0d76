# run_consumer.cmake — body of the consumer_find_package and consumer_add_subdirectory tests.
#
#   cmake -DMODE=find_package|add_subdirectory -DSOURCE_DIR=<repo> -DPARENT_BINARY_DIR=<build>
#         -DWORK_DIR=<scratch> -DPREFIX_DIR=<install prefix> -DCXX_COMPILER=... [-DCXX_FLAGS=...]
#         [-DEXE_LINKER_FLAGS=...] [-DGENERATOR=...] [-DMAKE_PROGRAM=...] [-DPARENT_CONFIG=...]
#         [-DUSE_OPENMP=ON|OFF] -P run_consumer.cmake
#
# find_package:     install the parent build into PREFIX_DIR, then build tests/consumer against it.
# add_subdirectory: build tests/consumer with the source tree added as a subdirectory.
# Either way the consumer is configured from scratch in Release and its output is checked.

foreach(required MODE SOURCE_DIR PARENT_BINARY_DIR WORK_DIR PREFIX_DIR CXX_COMPILER)
    if(NOT DEFINED ${required} OR "${${required}}" STREQUAL "")
        message(FATAL_ERROR "run_consumer.cmake: -D${required}=... is required")
    endif()
endforeach()

# Runs a command, echoing it, and stops the test on failure.
function(run_step what)
    string(REPLACE ";" " " shown "${ARGN}")
    message(STATUS "[consumer ${MODE}] ${what}: ${shown}")
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE result)
    if(NOT result EQUAL 0)
        message(FATAL_ERROR "[consumer ${MODE}] ${what} failed (${result})")
    endif()
endfunction()

set(consumer_source "${SOURCE_DIR}/tests/consumer")
set(consumer_build "${WORK_DIR}/build")
file(REMOVE_RECURSE "${WORK_DIR}")

set(configure_args
    -S "${consumer_source}" -B "${consumer_build}"
    "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
    "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
    "-DCMAKE_EXE_LINKER_FLAGS=${EXE_LINKER_FLAGS}"
    -DCMAKE_BUILD_TYPE=Release)
if(GENERATOR)
    list(APPEND configure_args -G "${GENERATOR}")
endif()
if(MAKE_PROGRAM)
    list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()

if(MODE STREQUAL "find_package")
    file(REMOVE_RECURSE "${PREFIX_DIR}")
    set(install_args --install "${PARENT_BINARY_DIR}" --prefix "${PREFIX_DIR}")
    if(PARENT_CONFIG)
        list(APPEND install_args --config "${PARENT_CONFIG}")
    endif()
    run_step("install" "${CMAKE_COMMAND}" ${install_args})
    list(APPEND configure_args -DNANOGPT_CONSUMER_MODE=find_package
        "-DCMAKE_PREFIX_PATH=${PREFIX_DIR}")
elseif(MODE STREQUAL "add_subdirectory")
    list(APPEND configure_args -DNANOGPT_CONSUMER_MODE=add_subdirectory
        "-DNANOGPT_SOURCE_DIR=${SOURCE_DIR}")
    if(DEFINED USE_OPENMP)
        list(APPEND configure_args "-DNANOGPT_USE_OPENMP=${USE_OPENMP}")
    endif()
else()
    message(FATAL_ERROR "run_consumer.cmake: unknown MODE='${MODE}'")
endif()

run_step("configure" "${CMAKE_COMMAND}" ${configure_args})

if(MODE STREQUAL "find_package")
    # CMAKE_PREFIX_PATH is searched first, but make sure no other installed copy was picked up.
    file(STRINGS "${consumer_build}/CMakeCache.txt" found_dir REGEX "^nanogpt_DIR:")
    string(REGEX REPLACE "^nanogpt_DIR:[A-Z]+=" "" found_dir "${found_dir}")
    file(REAL_PATH "${PREFIX_DIR}" prefix_real)
    file(REAL_PATH "${found_dir}" found_real)
    string(FIND "${found_real}/" "${prefix_real}/" at)
    if(NOT at EQUAL 0)
        message(FATAL_ERROR "[consumer] found nanogpt in '${found_dir}', not under '${PREFIX_DIR}'")
    endif()
endif()

run_step("build" "${CMAKE_COMMAND}" --build "${consumer_build}" --config Release)

file(READ "${consumer_build}/consumer-exe-Release.txt" consumer_exe)
message(STATUS "[consumer ${MODE}] run: ${consumer_exe}")
execute_process(COMMAND "${consumer_exe}"
    RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
message("${output}")
if(NOT result EQUAL 0)
    message(FATAL_ERROR "[consumer ${MODE}] the consumer program failed (${result})")
endif()
if(NOT output MATCHES "nanogpt consumer OK")
    message(FATAL_ERROR "[consumer ${MODE}] unexpected output from the consumer program")
endif()
message(STATUS "[consumer ${MODE}] passed")
