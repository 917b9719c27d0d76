#!/usr/bin/env bash
# Prints which BLAS library PyTorch (Debian's /usr/bin/python3 with python3-torch) really uses and
# fails when it is not an optimised one. Debian's torch links libblas.so.3, which the alternatives
# system points at OpenBLAS when libopenblas0-pthread is installed and at the netlib reference
# BLAS otherwise; with the reference BLAS nanoGPT's CPU recipe takes ~1 s per iteration instead of
# tens of milliseconds, and every ratio against PyTorch is meaningless.
# Used by compare_pytorch.sh and compare_recipe.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
blas=$(/usr/bin/python3 benchmarks/pytorch_reference.py --blas)
echo "PyTorch BLAS: ${blas}"
case "${blas}" in
*openblas* | *mkl* | *blis*) ;;
*)
    echo "error: PyTorch is using the reference BLAS, not an optimised one: install" >&2
    echo "libopenblas0-pthread (apt-get install libopenblas0-pthread) and run again." >&2
    exit 1
    ;;
esac
