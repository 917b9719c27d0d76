#!/usr/bin/env bash
# Downloads tiny Shakespeare (1,115,394 bytes, the corpus nanoGPT's shakespeare_char uses) to
# data/tinyshakespeare.txt, unless it is already there. Needs curl and internet access.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target=data/tinyshakespeare.txt
url=https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt
if [[ -f ${target} ]]; then
    echo "${target} already exists"
    exit 0
fi
mkdir -p data
curl -fL --retry 3 -o "${target}.part" "${url}"
size=$(wc -c < "${target}.part")
if [[ ${size} -ne 1115394 ]]; then
    echo "error: downloaded ${size} bytes, expected 1115394; keeping ${target}.part for inspection" >&2
    exit 1
fi
mv "${target}.part" "${target}"
echo "wrote ${target}"
