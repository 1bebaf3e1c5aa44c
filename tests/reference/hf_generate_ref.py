#!/usr/bin/env python3
"""transformers' generate() batch-1 greedy decode latency for GPT-2 124M in fp16.

Random weights (GPT2Config() defaults, no download), CUDA, use_cache=True,
do_sample=False. µs per token = (t(N) - t(1)) / (N - 1) with t(n) the wall time of
generate(max_new_tokens=n, min_new_tokens=n) after torch.cuda.synchronize(), so the
prompt's prefill cancels out; mean ± sample std over repeats after warm-up.
Usage: hf_generate_ref.py [--prompt 16] [--new 257] [--warmup 2] [--repeats 5]  (prints JSON)
"""
import argparse
import json
import statistics
import sys
import time

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--new", type=int, default=257)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA device"}))
        sys.exit(1)
    torch.manual_seed(1337)
    model = GPT2LMHeadModel(GPT2Config()).to("cuda", torch.float16).eval()
    ids = torch.randint(0, 50257, (1, args.prompt), device="cuda")

    def timed(n):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, use_cache=True,
                                 pad_token_id=50256, attention_mask=torch.ones_like(ids))
        torch.cuda.synchronize()
        assert out.size(1) == args.prompt + n
        return time.perf_counter() - t0

    for _ in range(args.warmup):
        timed(args.new)
        timed(1)
    per_token = []
    for _ in range(args.repeats):
        t_long, t_one = timed(args.new), timed(1)
        per_token.append((t_long - t_one) / (args.new - 1) * 1e6)
    print(json.dumps({
        "script": "tests/reference/hf_generate_ref.py", "argv": sys.argv[1:],
        "torch": torch.__version__, "transformers": transformers.__version__, "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name(0), "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": "GPT-2 124M random weights, fp16", "prompt_tokens": args.prompt, "new_tokens": args.new,
        "attn_implementation": model.config._attn_implementation,
        "us_per_token": {"mean": statistics.mean(per_token), "std": statistics.stdev(per_token), "n": len(per_token),
                         "samples": per_token},
    }, indent=2))


if __name__ == "__main__":
    main()
