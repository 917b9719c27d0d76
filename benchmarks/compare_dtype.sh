#!/usr/bin/env bash
# float32 against bfloat16 matrix products, alternating runs (A B A B ...) so a noisy machine's
# slow moments fall on both sides; prints each run, the medians and their ratio.
#   train   build/bench_train --workload W --dtype float32|bfloat16: ms per training step
#   sample  build/bench_sample --model M --dtype float32|bfloat16: KV-cache tokens/s (greedy)
# ITERS: timed training steps per run (2); TOKENS: tokens per sampling run (64); BUILD: the
# build directory (./build).
# Usage: benchmarks/compare_dtype.sh train [workload] [rounds] [threads]
#        benchmarks/compare_dtype.sh sample [model] [rounds] [threads]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode=${1:?usage: compare_dtype.sh train|sample [workload or model] [rounds] [threads]}
rounds=${3:-3}
build=${BUILD:-./build}  # where bench_train and bench_sample are
threads=${4:-2}
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg), threads ${threads}"
case "${mode}" in
    train)
        target=${2:-gpt2_block512_b4}
        unit="ms/step"
        one() {
            "${build}"/bench_train --workload "${target}" --iters "${ITERS:-2}" --warmup 1 \
                --threads "${threads}" --peak_gflops 1 --dtype "$1" |
                sed -n 's/^RESULT .*ms_per_iter=\([0-9.]*\).*peak_rss_mb=\([0-9.]*\).*/\1 \2/p'
        } ;;
    sample)
        target=${2:-gpt2}
        unit="tokens/s"
        one() {
            "${build}"/bench_sample --model "${target}" --tokens "${TOKENS:-64}" --runs 3 \
                --skip_uncached true --threads "${threads}" --dtype "$1" |
                sed -n "s/^with KV cache *\([0-9.]*\) tokens\/s.*/\1/p" | tail -1
        } ;;
    *) echo "unknown mode ${mode}" >&2; exit 2 ;;
esac
echo "mode ${mode}, ${target}, ${rounds} rounds"
f_all=() b_all=()
for ((r = 1; r <= rounds; ++r)); do
    f=$(one float32)
    b=$(one bfloat16)
    echo "round ${r}: float32 ${f}, bfloat16 ${b} (${unit}$([ "${mode}" = train ] && echo ', peak RSS MB'))"
    f_all+=("${f%% *}") b_all+=("${b%% *}")
done
f_med=$(printf '%s\n' "${f_all[@]}" | median)
b_med=$(printf '%s\n' "${b_all[@]}" | median)
if [ "${mode}" = train ]; then ratio=$(echo "${f_med} / ${b_med}" | bc -l); else ratio=$(echo "${b_med} / ${f_med}" | bc -l); fi
echo "median ${unit}: float32 ${f_med}, bfloat16 ${b_med}; bfloat16 is ${ratio:0:5}x float32"
