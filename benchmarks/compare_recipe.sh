#!/usr/bin/env bash
# nanoGPT's CPU recipe end to end: ./build/train_shakespeare_char (its defaults are the recipe)
# against the same run in PyTorch (benchmarks/pytorch_recipe.py), one after the other, and the
# ratio of their wall times (training loop with evaluations). PyTorch runs as in compare_pytorch.sh:
# 2 threads, OMP_WAIT_POLICY=PASSIVE, OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset.
# Usage: benchmarks/compare_recipe.sh [tinyshakespeare.txt] [threads]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
data=${1:-${NANOGPT_DATA:-../shared/data/tinyshakespeare.txt}}
threads=${2:-2}
out=$(mktemp -d)
trap 'rm -rf "${out}"' EXIT
benchmarks/torch_blas.sh  # stops here when torch would use the reference BLAS

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), CPU: $(lscpu | sed -n 's/^Model name: *//p'), threads: ${threads}"
ours=$(OMP_NUM_THREADS=${threads} ./build/train_shakespeare_char --data "${data}" --out_dir "${out}" \
    --sample_tokens 0 | tee "${out}/ours.log" | grep '^done:')
ours_val=$(grep '^step 2000:' "${out}/ours.log" | sed 's/.*val loss \([0-9.]*\).*/\1/')
ours_s=$(echo "${ours}" | sed 's/.* in \([0-9.]*\) s.*/\1/')
torch=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=${threads} OMP_WAIT_POLICY=PASSIVE \
    /usr/bin/python3 benchmarks/pytorch_recipe.py --data "${data}" --threads "${threads}" | tee "${out}/torch.log" | grep '^RESULT')
torch_val=$(echo "${torch}" | sed 's/.*final_val_loss=\([0-9.]*\).*/\1/')
torch_s=$(echo "${torch}" | sed 's/.*recipe_seconds=\([0-9.]*\).*/\1/')
printf '| %-12s | %14s | %22s |\n' side "wall time (s)" "val loss at step 2000"
printf '|%s|\n' "--------------|----------------|------------------------"
printf '| %-12s | %14s | %22s |\n' nanogpt.hpp "${ours_s}" "${ours_val}"
printf '| %-12s | %14s | %22s |\n' "PyTorch" "${torch_s}" "${torch_val}"
printf 'speed-up: %.2fx\n' "$(echo "${torch_s} / ${ours_s}" | bc -l)"
