"""GPT-2 in plain PyTorch: the reference that tests/test_parity_torch.cpp compares nanogpt against.

Reads GPT-2 weights from a safetensors file (Hugging Face names, Conv1D weights [in, out]), runs the
forward pass on token ids and targets, backpropagates the mean cross-entropy, and writes

    logits          [B, T, V]
    loss            []  (mean cross-entropy over all B*T positions)
    grad.<name>     one per parameter, in nanogpt's layout: the block matrices (c_attn, c_proj,
                    c_fc) are transposed to PyTorch nn.Linear's [out, in]; the rest as in the file

as an F32 safetensors file. The model is nanoGPT's: learned position embeddings, pre-LN blocks,
layernorm eps 1e-5, GELU with the tanh approximation, causal attention, lm_head tied to wte.
Biases are optional (nanoGPT's bias=False): a model without ln_f.bias has none.

    /usr/bin/python3 gpt2_reference.py WEIGHTS INPUTS OUTPUT [--dtype float64|float32]

INPUTS holds 'idx' and 'targets', [B, T] token ids stored as F32 (exact below 2^24). The
safetensors pip package is not needed: the format is read and written here with json + numpy.
"""
import argparse
import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

NUMPY_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "U8": "u1", "BOOL": "?"}


def read_safetensors(path):
    """Returns ({name: numpy array}, metadata) for a safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    if len(raw) < 8 or n > len(raw) - 8:
        sys.exit(f"{path}: not a safetensors file (header length {n}, file {len(raw)} bytes)")
    header = json.loads(raw[8 : 8 + n])
    metadata = header.pop("__metadata__", {})
    data = memoryview(raw)[8 + n :]
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        values = np.frombuffer(data[begin:end], dtype=NUMPY_DTYPES[entry["dtype"]])
        tensors[name] = values.reshape(entry["shape"])
    return tensors, metadata


def write_safetensors(path, tensors):
    """Writes {name: array} as F32 tensors, the data section 8-byte aligned."""
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        blob = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(np.shape(array)), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def gpt2_parameters(tensors, metadata, dtype):
    """The model's parameters by name (prefix and non-parameter buffers dropped) and its shape."""
    params = {}
    for name, array in tensors.items():
        name = name.removeprefix("transformer.")
        if name == "lm_head.weight" or name.endswith(".attn.bias") or name.endswith(".attn.masked_bias"):
            continue  # the head is tied to wte; the others are causal-mask constants
        params[name] = torch.tensor(np.array(array, dtype=np.float64), dtype=dtype, requires_grad=True)
    n_layer = len({name.split(".")[1] for name in params if name.startswith("h.")})
    n_embd = params["wte.weight"].shape[1]
    n_head = int(metadata.get("n_head", n_embd // 64))  # GPT-2's heads are 64 wide
    return params, n_layer, n_head


def layer_norm(x, p, name):
    return F.layer_norm(x, x.shape[-1:], p[name + ".weight"], p.get(name + ".bias"), eps=1e-5)


def conv1d(x, p, name):
    """GPT-2's Conv1D: y = x W + b with W stored [in, out]."""
    y = x @ p[name + ".weight"]
    bias = p.get(name + ".bias")
    return y if bias is None else y + bias


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def attention(x, p, name, n_head):
    B, T, C = x.shape
    hs = C // n_head
    q, k, v = conv1d(x, p, name + ".c_attn").split(C, dim=2)  # each (B, T, C)
    q, k, v = (t.view(B, T, n_head, hs).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(hs)  # (B, nh, T, T)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    weights = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)
    y = (weights @ v).transpose(1, 2).reshape(B, T, C)  # (B, T, C)
    return conv1d(y, p, name + ".c_proj")


def forward(p, idx, targets, n_layer, n_head):
    T = idx.shape[1]
    x = p["wte.weight"][idx] + p["wpe.weight"][:T]  # (B, T, C)
    for i in range(n_layer):
        h = f"h.{i}"
        x = x + attention(layer_norm(x, p, h + ".ln_1"), p, h + ".attn", n_head)
        m = gelu_tanh(conv1d(layer_norm(x, p, h + ".ln_2"), p, h + ".mlp.c_fc"))  # (B, T, 4C)
        x = x + conv1d(m, p, h + ".mlp.c_proj")
    x = layer_norm(x, p, "ln_f")
    logits = x @ p["wte.weight"].t()  # (B, T, V): the head reuses wte
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    return logits, loss


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights")
    parser.add_argument("inputs")
    parser.add_argument("output")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    args = parser.parse_args()
    torch.set_num_threads(1)  # a tiny model: threads would only add start-up time
    dtype = getattr(torch, args.dtype)

    tensors, metadata = read_safetensors(args.weights)
    params, n_layer, n_head = gpt2_parameters(tensors, metadata, dtype)
    inputs, _ = read_safetensors(args.inputs)
    idx = torch.tensor(inputs["idx"], dtype=torch.int64)
    targets = torch.tensor(inputs["targets"], dtype=torch.int64)

    logits, loss = forward(params, idx, targets, n_layer, n_head)
    loss.backward()

    out = {"logits": logits.detach().numpy(), "loss": loss.detach().numpy()}
    for name, param in params.items():
        grad = param.grad.numpy()
        is_conv1d = name.startswith("h.") and grad.ndim == 2
        out["grad." + name] = grad.T if is_conv1d else grad
    write_safetensors(args.output, out)


if __name__ == "__main__":
    main()
