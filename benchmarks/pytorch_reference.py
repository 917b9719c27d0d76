#!/usr/bin/env python3
"""Times the workloads of bench_configs.hpp in PyTorch, for benchmarks/compare_pytorch.sh.

The same GPT-2 architecture as nanogpt.hpp (pre-LN blocks, tanh GELU, causal attention via
scaled_dot_product-free matmuls as in nanoGPT's slow path when SDPA is missing, weight-tied head),
the same step (forward, backward, clip_grad_norm, AdamW), random tokens, dropout 0.
Run with Debian's /usr/bin/python3 (python3-torch). Prints one RESULT line like bench_train.
--dtype bfloat16 runs forward and loss under torch.autocast("cpu", dtype=torch.bfloat16), nanoGPT's
way of using its dtype key (fp32 master weights and optimizer state); --blas prints which BLAS
torch was built with and exits.
"""
import argparse
import contextlib
import math
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

WORKLOADS = {  # name: (block, vocab, n_layer, n_head, n_embd, bias, batch) — as bench_configs.hpp
    "recipe": (64, 65, 4, 4, 128, False, 12),
    "shakespeare_b64": (256, 65, 6, 6, 384, False, 64),
    "shakespeare_b8": (256, 65, 6, 6, 384, False, 8),
    "gpt2_block512_b4": (512, 50257, 12, 12, 768, True, 4),
    "gpt2_block64_b4": (64, 50257, 12, 12, 768, True, 4),
}


class Block(nn.Module):
    def __init__(self, n_embd, n_head, bias):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(n_embd, elementwise_affine=True)
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.attn_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.mlp_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        if not bias:
            self.ln_1.bias = None
            self.ln_2.bias = None

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if hasattr(F, "scaled_dot_product_attention"):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # torch 1.13: the explicit form nanoGPT falls back to
            att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
            mask = torch.ones(T, T, dtype=torch.bool).tril()
            att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            y = att @ v
        x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, block, vocab, n_layer, n_head, n_embd, bias):
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(block, n_embd)
        self.h = nn.ModuleList(Block(n_embd, n_head, bias) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        if not bias:
            self.ln_f.bias = None
        # nanoGPT's (GPT-2's) initialisation, as nanogpt.hpp: N(0, 0.02) weights and embeddings,
        # zero biases, residual projections scaled by 1/sqrt(2 n_layer). Speed does not depend on
        # it; pytorch_recipe.py's loss does.
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))
            elif p.dim() >= 2:
                nn.init.normal_(p, 0.0, 0.02)
            elif name.endswith(".bias") and "ln" not in name:
                nn.init.zeros_(p)

    def forward(self, idx, targets):
        pos = torch.arange(idx.size(1))
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # weight tying
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    @torch.no_grad()
    def generate(self, idx, n, block):  # nanoGPT's generate: full forward per token, no cache
        for _ in range(n):
            ctx = idx[:, -block:]
            pos = torch.arange(ctx.size(1))
            x = self.wte(ctx) + self.wpe(pos)
            for b in self.h:
                x = b(x)
            logits = F.linear(self.ln_f(x[:, -1, :]), self.wte.weight)
            idx = torch.cat([idx, torch.multinomial(F.softmax(logits, dim=-1), 1)], dim=1)
        return idx


def loaded_blas():
    """The BLAS libraries this process has mapped after a matrix product: Debian's torch links
    libblas.so.3, which the alternatives system points at OpenBLAS or at the netlib reference."""
    torch.ones(64, 64) @ torch.ones(64, 64)
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "blas" in line.lower() and "/" in line}
    return " ".join(sorted(paths)) if paths else "no BLAS library mapped"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload", default="recipe")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sample_tokens", type=int, default=0, help="time generate() instead of training")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--blas", action="store_true", help="print torch's BLAS and exit")
    args = parser.parse_args()
    if args.blas:
        print(loaded_blas())
        return
    torch.set_num_threads(args.threads)
    torch.manual_seed(1337)
    block, vocab, n_layer, n_head, n_embd, bias, batch = WORKLOADS[args.workload]
    model = GPT(block, vocab, n_layer, n_head, n_embd, bias)
    if args.sample_tokens:
        model.eval()
        t0 = time.perf_counter()
        model.generate(torch.zeros(1, 1, dtype=torch.long), args.sample_tokens, block)
        rate = args.sample_tokens / (time.perf_counter() - t0)
        print(f"RESULT workload={args.workload} sample_tokens_per_s={rate:.1f}")
        return
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    x = torch.randint(vocab, (batch, block))
    y = torch.randint(vocab, (batch, block))
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if args.dtype == "bfloat16"
                else contextlib.nullcontext())
    times = []
    for it in range(args.warmup + args.iters):
        t0 = time.perf_counter()
        with autocast:
            loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if it >= args.warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    ms = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"RESULT workload={args.workload} dtype={args.dtype} ms_per_iter={ms:.2f} tokens_per_s={batch * block / ms * 1e3:.1f} "
          f"peak_rss_mb={rss:.1f} torch={torch.__version__} threads={torch.get_num_threads()}")


if __name__ == "__main__":
    main()
