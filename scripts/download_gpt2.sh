#!/usr/bin/env bash
# Downloads OpenAI's GPT-2 weights (Hugging Face's model.safetensors) and GPT-2's BPE tokenizer
# files into data/gpt2/, skipping files that are already there. Needs curl and internet access.
#
#   scripts/download_gpt2.sh [MODEL...]     MODEL: gpt2 (default), gpt2-medium, gpt2-large, gpt2-xl
#
# Writes data/gpt2/<MODEL>.safetensors (gpt2: 548 MB, -medium 1.5 GB, -large 3.3 GB, -xl 6.4 GB)
# and data/gpt2/encoder.json + vocab.bpe (the same for every size). Each file is downloaded to
# <file>.part and renamed only after it checks out, so an interrupted run never leaves a partial
# file under the final name; a file that is already present is never overwritten.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dir=data/gpt2
bpe_url=https://openaipublic.blob.core.windows.net/gpt-2/models/124M
# sha256 of GPT-2's tokenizer files (identical for all four sizes).
encoder_sha256=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
vocab_sha256=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5

models=("$@")
if [[ ${#models[@]} -eq 0 ]]; then
    models=(gpt2)
fi
for model in "${models[@]}"; do
    case ${model} in
        gpt2 | gpt2-medium | gpt2-large | gpt2-xl) ;;
        *)
            echo "error: unknown model '${model}' (expected gpt2, gpt2-medium, gpt2-large or gpt2-xl)" >&2
            exit 2
            ;;
    esac
done
command -v curl > /dev/null || { echo "error: curl is not installed" >&2; exit 1; }
mkdir -p "${dir}"

# fetch URL TARGET CHECK: downloads URL to TARGET.part, runs CHECK on it, then renames it.
fetch() {
    local url=$1 target=$2 check=$3
    if [[ -e ${target} ]]; then
        echo "${target} already exists, not downloading it again"
        return 0
    fi
    echo "downloading ${url}"
    curl -fL --retry 3 --continue-at - -o "${target}.part" "${url}" || {
        echo "error: download of ${url} failed; ${target}.part is kept, rerun to resume" >&2
        exit 1
    }
    if ! "${check}" "${target}.part"; then
        echo "error: ${target}.part failed its check; kept for inspection (delete it to retry)" >&2
        exit 1
    fi
    mv "${target}.part" "${target}"
    echo "wrote ${target} ($(wc -c < "${target}") bytes)"
}

# check_sha256 EXPECTED FILE (skipped with a note when sha256sum is missing).
check_sha256() {
    if ! command -v sha256sum > /dev/null; then
        echo "note: sha256sum not found, not verifying $2"
        return 0
    fi
    local actual
    actual=$(sha256sum "$2" | cut -d' ' -f1)
    [[ ${actual} == "$1" ]] || { echo "sha256 of $2 is ${actual}, expected $1" >&2; return 1; }
}
check_encoder() { check_sha256 "${encoder_sha256}" "$1"; }
check_vocab() { check_sha256 "${vocab_sha256}" "$1"; }

# A safetensors file starts with a little-endian u64 header length N, then N bytes of JSON. Check
# that N fits in the file and that the header names GPT-2's token embedding.
check_safetensors() {
    local file=$1 size n
    size=$(wc -c < "${file}")
    n=$(head -c 8 "${file}" | od -An -v -tu1 | awk '{for (i = NF; i >= 1; i--) n = n * 256 + $i} END {printf "%.0f", n}')
    if (( size < 8 || n == 0 || n > size - 8 )); then
        echo "${file}: not a safetensors file (header length ${n}, file ${size} bytes)" >&2
        return 1
    fi
    local header
    header=$(head -c $((8 + n)) "${file}" | tail -c "${n}")
    if [[ ${header} != *'"wte.weight"'* ]]; then
        echo "${file}: the safetensors header has no wte.weight; not a GPT-2 checkpoint" >&2
        return 1
    fi
}

fetch "${bpe_url}/encoder.json" "${dir}/encoder.json" check_encoder
fetch "${bpe_url}/vocab.bpe" "${dir}/vocab.bpe" check_vocab
for model in "${models[@]}"; do
    fetch "https://huggingface.co/openai-community/${model}/resolve/main/model.safetensors" \
        "${dir}/${model}.safetensors" check_safetensors
done
