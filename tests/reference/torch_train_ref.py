#!/usr/bin/env python3
"""The workbench's GPT-2 124M training step in PyTorch, for tokens/s comparisons.

Same model and step as `gpt2-bench perf train` (core/train/trainer.cpp): GPT-2 124M
(12 layers, 12 heads, 768 wide, vocab 50257, tied LM head, dropout 0), T = 1024,
bf16 autocast over fp32 weights, SDPA causal attention, tanh-GELU, cross-entropy on
fp32 logits, gradient clipping at 1.0, fused AdamW (decay on >= 2-D tensors only,
betas 0.9/0.95), one host read of the loss per step, batches copied from host memory.
Eager and torch.compile. Each step timed with CUDA events after warm-up.
Usage: torch_train_ref.py [--mode eager|compile|both] [--batch 16] [--seq 1024]
                          [--warmup 5] [--repeats 20]        (prints JSON)
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.ln_1 = nn.LayerNorm(d)
        self.c_attn = nn.Linear(d, 3 * d)
        self.attn_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.c_fc = nn.Linear(d, 4 * d)
        self.mlp_proj = nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.h, d // self.h).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(b, t, d))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class Gpt2(nn.Module):
    def __init__(self, vocab=50257, ctx=1024, d=768, layers=12, heads=12):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(ctx, d)
        self.h = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        std, proj = 0.02, 0.02 / math.sqrt(2 * layers)
        for name, p in self.named_parameters():
            if "ln_" in name:
                nn.init.ones_(p) if name.endswith("weight") else nn.init.zeros_(p)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
            else:
                nn.init.normal_(p, 0.0, proj if "proj" in name else std)

    def forward(self, ids):
        pos = torch.arange(ids.size(1), device=ids.device)
        x = self.wte(ids) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.ln_f(x) @ self.wte.weight.t()  # tied LM head


def run(mode, args):
    torch.manual_seed(1337)
    dev = torch.device("cuda")
    model = Gpt2().to(dev)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), eps=1e-8, fused=True)
    fwd = torch.compile(model) if mode == "compile" else model
    gen = torch.Generator().manual_seed(7)
    data = torch.randint(0, 50257, (64, args.batch, args.seq + 1), generator=gen)  # host memory, as ours
    times, losses = [], []
    compile_s = None
    t_first = time.perf_counter()
    for step in range(args.warmup + args.repeats):
        batch = data[step % data.size(0)]
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        x, y = batch[:, :-1].to(dev), batch[:, 1:].to(dev)
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = fwd(x)
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        end.record()
        losses.append(loss.item())
        end.synchronize()
        if step == 0:
            compile_s = time.perf_counter() - t_first
        if step >= args.warmup:
            times.append(start.elapsed_time(end) * 1e-3)
    tokens = args.batch * args.seq
    tps = [tokens / t for t in times]
    return {
        "mode": mode,
        "step_ms": {"mean": statistics.mean(times) * 1e3, "std": statistics.stdev(times) * 1e3, "n": len(times)},
        "tokens_per_s": {"mean": statistics.mean(tps), "std": statistics.stdev(tps), "n": len(tps),
                         "samples": tps},
        "first_step_s": compile_s,
        "final_loss": losses[-1],
        "peak_allocated_mb": torch.cuda.max_memory_allocated() / 2**20,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["eager", "compile", "both"], default="both")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA device"}))
        sys.exit(1)
    torch.backends.cuda.matmul.allow_tf32 = False
    report = {"script": "tests/reference/torch_train_ref.py", "argv": sys.argv[1:], "torch": torch.__version__,
              "cuda": torch.version.cuda, "device": torch.cuda.get_device_name(0),
              "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "batch": args.batch, "seq_len": args.seq, "precision": "bf16 autocast", "optimizer": "AdamW fused",
              "results": []}
    for mode in (["eager", "compile"] if args.mode == "both" else [args.mode]):
        torch.cuda.reset_peak_memory_stats()
        report["results"].append(run(mode, args))
        torch.cuda.empty_cache()
    if len(report["results"]) == 2:
        e, c = (r["tokens_per_s"]["mean"] for r in report["results"])
        report["compile_over_eager"] = c / e
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
