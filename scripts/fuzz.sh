#!/usr/bin/env bash
# scripts/fuzz.sh — build and run the libFuzzer harnesses of tests/fuzz (docs/fuzzing.md).
#
#   scripts/fuzz.sh build                    configure and build them with clang in build-fuzz/
#   scripts/fuzz.sh seeds                    rewrite tests/fuzz/corpus/ with the library's writers
#   scripts/fuzz.sh ci [RUNS]                each harness, fixed seed, a fixed number of inputs
#                                            (about a minute each; RUNS overrides), over a copy of
#                                            the committed corpus: deterministic
#   scripts/fuzz.sh run HARNESS [SECONDS]    one harness for SECONDS (default 600), new inputs kept
#                                            in build-fuzz/corpus/HARNESS, crashes in build-fuzz/
#
# Harnesses: checkpoint safetensors bpe dataset config. Needs clang++ and libclang-rt-14-dev.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD=build-fuzz
HARNESSES=(checkpoint safetensors bpe dataset config)
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

build() {
    CXX=clang++ cmake -S . -B "${BUILD}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNANOGPT_BUILD_FUZZERS=ON \
        -DNANOGPT_BUILD_EXAMPLES=OFF -DNANOGPT_BUILD_BENCHMARKS=OFF -DNANOGPT_USE_OPENMP=OFF \
        -DNANOGPT_INSTALL=OFF >/dev/null
    cmake --build "${BUILD}" -j2 --target make_seeds "${HARNESSES[@]/#/fuzz_}"
}

case "${1:-}" in
    build) build ;;
    seeds)
        build
        rm -rf tests/fuzz/corpus
        "${BUILD}/tests/fuzz/make_seeds" tests/fuzz/corpus
        du -sh tests/fuzz/corpus
        ;;
    ci)
        build
        # About a minute each on this project's 2-core machine (docs/fuzzing.md): the harnesses
        # differ by 30x in speed, so each has its own count; a number given here overrides them.
        declare -A RUNS=([checkpoint]=120000 [safetensors]=10000 [bpe]=200000 [dataset]=18000
                         [config]=25000)
        for h in "${HARNESSES[@]}"; do
            runs="${2:-${RUNS[${h}]}}"
            work="${BUILD}/ci-corpus/${h}"
            rm -rf "${work}"
            mkdir -p "${work}"
            cp tests/fuzz/corpus/"${h}"/* "${work}/"
            echo "---- fuzz_${h}: ${runs} runs, seed 1"
            (cd "${BUILD}" && "./tests/fuzz/fuzz_${h}" -runs="${runs}" -seed=1 -max_len=65536 \
                -rss_limit_mb=4096 -print_final_stats=1 "ci-corpus/${h}") 2>&1 | tail -n 12
        done
        ;;
    run)
        h="${2:?which harness}"
        seconds="${3:-600}"
        build
        mkdir -p "${BUILD}/corpus/${h}"
        cd "${BUILD}"
        "./tests/fuzz/fuzz_${h}" -max_total_time="${seconds}" -max_len=65536 -rss_limit_mb=4096 \
            -print_final_stats=1 "corpus/${h}" "../tests/fuzz/corpus/${h}"
        ;;
    *)
        sed -n '2,13p' "$0"
        exit 1
        ;;
esac
