#!/usr/bin/env python3
"""nanoGPT's CPU recipe trained end to end in PyTorch, the yardstick for ./build/train_shakespeare_char.

The same run as train_shakespeare_char's defaults: character-level tiny Shakespeare split 90/10,
4 layers x 4 heads x n_embd 128, block 64, batch 12, bias off, dropout 0, AdamW (beta2 0.99, weight
decay 0.1 on 2-D tensors only, as nanoGPT), lr 1e-3 with 100 warm-up steps and cosine decay to 1e-4 at
step 2000, gradient clipping at 1.0, evaluation of both splits over 20 batches every 250 steps and at
the end. Prints the evaluations and the wall time of the loop, evaluations included (no checkpoints
are written; ours writes one whenever val loss improves). The model is benchmarks/pytorch_reference.py's.
Run with Debian's /usr/bin/python3 (python3-torch); benchmarks/compare_recipe.sh runs both sides.
"""
import argparse
import math
import time

import torch

from pytorch_reference import GPT


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="tinyshakespeare.txt")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max_iters", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    text = open(args.data, encoding="utf-8").read()
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([index[c] for c in text], dtype=torch.long)
    n_train = int(0.9 * len(data))
    splits = {"train": data[:n_train], "val": data[n_train:]}
    block, batch, eval_interval, eval_iters = 64, 12, 250, 20

    def get_batch(split):
        d = splits[split]
        ix = torch.randint(len(d) - block, (batch,))
        x = torch.stack([d[i:i + block] for i in ix])
        y = torch.stack([d[i + 1:i + 1 + block] for i in ix])
        return x, y

    model = GPT(block, len(chars), 4, 4, 128, False)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99))

    def lr_at(it, lr=1e-3, min_lr=1e-4, warmup=100, decay_iters=args.max_iters):
        if it < warmup:
            return lr * (it + 1) / (warmup + 1)
        if it > decay_iters:
            return min_lr
        ratio = (it - warmup) / (decay_iters - warmup)
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)

    @torch.no_grad()
    def estimate_loss():
        model.eval()
        out = {}
        for split in ("train", "val"):
            out[split] = sum(model(*get_batch(split)).item() for _ in range(eval_iters)) / eval_iters
        model.train()
        return out

    start = time.perf_counter()
    best_val = float("inf")
    for it in range(args.max_iters + 1):
        if it % eval_interval == 0 or it == args.max_iters:
            losses = estimate_loss()
            best_val = min(best_val, losses["val"])
            print(f"step {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}", flush=True)
        if it == args.max_iters:
            break
        for group in opt.param_groups:
            group["lr"] = lr_at(it)
        loss = model(*get_batch("train"))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    seconds = time.perf_counter() - start
    print(f"RESULT recipe_seconds={seconds:.1f} best_val_loss={best_val:.4f} final_val_loss={losses['val']:.4f} "
          f"torch={torch.__version__} threads={torch.get_num_threads()}")


if __name__ == "__main__":
    main()
