#!/usr/bin/env bash
# Alternating A/B runs of bench_train, printing each run's ms/iter and the medians and their ratio:
#   threading  build/bench_train (OpenMP) against build-noomp/bench_train (the std::thread pool,
#              configured with -DNANOGPT_USE_OPENMP=OFF), same workload and thread count;
#   scaling    build/bench_train on 1 thread against 2 threads.
# Alternating (A B A B ...) spreads a noisy machine's slow moments over both sides. OPENMP_BENCH
# and POOL_BENCH override the two programs' paths; ITERS the timed iterations per run (10).
# Usage: benchmarks/compare_threading.sh threading|scaling [workload] [rounds] [threads]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode=${1:?usage: compare_threading.sh threading|scaling [workload] [rounds] [threads]}
workload=${2:-recipe}
rounds=${3:-5}
threads=${4:-2}
iters=${ITERS:-10}

openmp_bench=${OPENMP_BENCH:-./build/bench_train}
pool_bench=${POOL_BENCH:-./build-noomp/bench_train}
case "${mode}" in
    threading) a_name=openmp; a_cmd=("${openmp_bench}" --threads "${threads}")
               b_name=pool;   b_cmd=("${pool_bench}" --threads "${threads}") ;;
    scaling)   a_name=1thread; a_cmd=("${openmp_bench}" --threads 1)
               b_name=2threads; b_cmd=("${openmp_bench}" --threads 2) ;;
    *) echo "unknown mode ${mode}" >&2; exit 2 ;;
esac

one() {  # runs a bench_train command, prints its ms per iteration
    "$@" --workload "${workload}" --iters "${iters}" --peak_gflops 1 |
        sed -n 's/^RESULT .*ms_per_iter=\([0-9.]*\).*/\1/p'
}
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "mode ${mode}, workload ${workload}, ${rounds} rounds of ${iters} timed iterations, A = ${a_name}, B = ${b_name}"
"${a_cmd[@]}" --workload "${workload}" --iters 1 --warmup 0 --peak_gflops 1 | grep '^threads'
"${b_cmd[@]}" --workload "${workload}" --iters 1 --warmup 0 --peak_gflops 1 | grep '^threads'
a_all=() b_all=()
for ((r = 1; r <= rounds; ++r)); do
    a=$(one "${a_cmd[@]}")
    b=$(one "${b_cmd[@]}")
    echo "round ${r}: ${a_name} ${a} ms, ${b_name} ${b} ms"
    a_all+=("${a}") b_all+=("${b}")
done
a_med=$(printf '%s\n' "${a_all[@]}" | median)
b_med=$(printf '%s\n' "${b_all[@]}" | median)
echo "median ms/iter: ${a_name} ${a_med}, ${b_name} ${b_med}; ${a_name}/${b_name} = $(echo "${a_med} / ${b_med}" | bc -l | cut -c1-5)"
