#!/usr/bin/env bash
# Data-parallel scaling: tokens/s of the shakespeare_char model (6 x 6 x 384, block 256) with 1 rank
# (./build/train) and with N ranks (mpirun ./build/train_mpi), 1 OpenMP thread per rank, the same
# global batch, and the time each step spends communicating. Extra train_mpi keys (e.g.
# --zero_stage=1 --overlap_comm=true) may follow in EXTRA. Needs a build with
# -DNANOGPT_WITH_MPI=ON (build dir as $1, default build-mpi) and tiny Shakespeare.
# Usage: benchmarks/bench_mpi.sh [build-dir] [ranks] [iters] [batch]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${1:-build-mpi}
ranks=${2:-2}
iters=${3:-12}
batch=${4:-8}
data=${NANOGPT_DATA:-../shared/data/tinyshakespeare.txt}
work=$(mktemp -d)
keep=${KEEP_LOGS:-}
trap '[[ -n ${keep} ]] || rm -rf "${work}"' EXIT

"${build}/prepare" --input="${data}" --out_dir="${work}/data" > /dev/null
common=(shakespeare_char --data_dir="${work}/data" --max_iters="${iters}" --eval_interval=100000
        --eval_iters=1 --log_interval=1 --batch_size="${batch}" --dropout=0 --threads=1)
# Median over the logged steps after the first two (warm-up) of a field such as "tok/s".
median_of() {  # $1: log file, $2: sed expression extracting one number per line
    sed -n "$2" "$1" | tail -n +3 | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'
}

OMP_NUM_THREADS=1 "${build}/train" "${common[@]}" --out_dir="${work}/one" > "${work}/one.log"
NANOGPT_PROGRESS=plain OMP_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe -x NANOGPT_PROGRESS -np "${ranks}" \
    "${build}/train_mpi" "${common[@]}" ${EXTRA:-} --out_dir="${work}/many" > "${work}/many.log"

one=$(median_of "${work}/one.log" 's/.*, \([0-9.]*\)k tok\/s.*/\1/p')
many=$(median_of "${work}/many.log" 's/.*, \([0-9.]*\)k tok\/s.*/\1/p')
comm=$(median_of "${work}/many.log" 's/.*comm \([0-9.]*\) ms.*/\1/p')
exposed=$(median_of "${work}/many.log" 's/.*exposed \([0-9.]*\) ms.*/\1/p')
params_mb=$(awk 'BEGIN { print 4 * 10.75e6 / 1e6 }')
echo "shakespeare_char, global batch ${batch} x 256 tokens, ${iters} steps, 1 thread per rank, $(date -u '+%Y-%m-%d')"
echo "1 rank:       ${one}k tokens/s"
echo "${ranks} ranks:      ${many}k tokens/s  (speed-up $(awk "BEGIN { printf \"%.2f\", ${many} / ${one} }")x)"
echo "comm:         ${comm} ms per step for ${params_mb} MB of gradients, ${exposed} ms of it exposed"
