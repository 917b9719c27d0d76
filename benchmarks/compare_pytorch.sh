#!/usr/bin/env bash
# Runs every training workload in nanogpt.hpp (./build/bench_train) and in PyTorch
# (benchmarks/pytorch_reference.py under Debian's /usr/bin/python3 with python3-torch), one process
# each, and prints a table with the ratios. PyTorch runs at its best on this kind of machine:
# 2 threads, OMP_WAIT_POLICY=PASSIVE, and OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset (they force
# OpenBLAS onto its AVX2 kernel at half speed). nanogpt.hpp runs with the OpenMP default wait policy
# (threads spin briefly between loops), which is its best setting on an otherwise idle machine.
# A second table repeats the training workloads with --dtype bfloat16 on both sides (PyTorch:
# torch.autocast("cpu", dtype=torch.bfloat16), as nanoGPT uses its dtype key).
# Usage: benchmarks/compare_pytorch.sh [iters] [threads] [dtypes: "float32 bfloat16"]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
iters=${1:-10}
threads=${2:-2}
dtypes=${3:-float32 bfloat16}
benchmarks/torch_blas.sh  # stops here when torch would use the reference BLAS
workloads=(recipe shakespeare_b8 shakespeare_b64 gpt2_block64_b4 gpt2_block512_b4)
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), CPU: $(lscpu | sed -n 's/^Model name: *//p'), threads: ${threads}"
for dtype in ${dtypes}; do
echo
echo "dtype ${dtype} (ours: matrix products in ${dtype}; PyTorch: $([ "${dtype}" = bfloat16 ] && echo 'torch.autocast bfloat16' || echo float32))"
printf '| %-18s | %12s | %12s | %7s | %9s | %12s | %12s |\n' workload "ours ms/iter" "torch ms/iter" speedup "our MFU" "our RSS MB" "torch RSS MB"
printf '|%s|\n' "--------------------|--------------|---------------|---------|-----------|--------------|--------------"
for w in "${workloads[@]}"; do
    ours=$(OMP_NUM_THREADS=${threads} ./build/bench_train --workload "$w" --iters "${iters}" --dtype "${dtype}" | grep '^RESULT')
    torch=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=${threads} OMP_WAIT_POLICY=PASSIVE \
        /usr/bin/python3 benchmarks/pytorch_reference.py --workload "$w" --iters "${iters}" --threads "${threads}" --dtype "${dtype}" | grep '^RESULT')
    o_ms=$(echo "$ours" | field ms_per_iter); t_ms=$(echo "$torch" | field ms_per_iter)
    printf '| %-18s | %12s | %13s | %6.2fx | %8.1f%% | %12s | %12s |\n' "$w" "${o_ms}" "${t_ms}" \
        "$(echo "${t_ms} / ${o_ms}" | bc -l)" "$(echo "$(echo "$ours" | field mfu) * 100" | bc -l)" \
        "$(echo "$ours" | field peak_rss_mb)" "$(echo "$torch" | field peak_rss_mb)"
done
done
ours=$(OMP_NUM_THREADS=${threads} ./build/bench_sample --model shakespeare_char --tokens 256 --runs 3)
torch=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=${threads} OMP_WAIT_POLICY=PASSIVE \
    /usr/bin/python3 benchmarks/pytorch_reference.py --workload shakespeare_b8 --sample_tokens 256 --threads "${threads}" | grep '^RESULT')
echo
echo "generate 256 tokens, shakespeare_char model:"
echo "$ours" | grep -E 'tokens/s|speed-up'
echo "PyTorch (nanoGPT generate, no cache): $(echo "$torch" | field sample_tokens_per_s) tokens/s"
