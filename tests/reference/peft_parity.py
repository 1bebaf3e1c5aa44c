#!/usr/bin/env python3
"""Parity of the workbench's LoRA adapters with Hugging Face peft (run on the GPU machine).

1. peft -> ours: a random GPT2LMHeadModel (saved by transformers, safetensors) gets a peft
   LoRA adapter with random non-zero A and B, saved by peft's save_pretrained; our
   `gpt2-bench lora-logits` loads both and must give peft's logits within 1e-4 (max abs,
   fp32), unmerged and merged.
2. ours -> peft: an adapter written by `gpt2-bench lora-init` (random non-zero A and B)
   loads in peft (PeftModel.from_pretrained) with our logits within 1e-4, and changes
   the output (so it was not silently ignored).
3. GPT-2 124M shapes: r = 8 on c_attn has 294,912 trainable parameters in peft and in our
   adapter, with the same tensor names and shapes; logits agree as in 1.
Usage: peft_parity.py PATH/TO/gpt2-bench [--cuda]   (prints a JSON report and PASS/FAIL,
exits 1 on failure). No pickle anywhere: models, adapters and logits are safetensors.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import GPT2Config, GPT2LMHeadModel

TOL = 1e-4
bench = sys.argv[1]
devices = ["cpu"] + (["cuda"] if "--cuda" in sys.argv and torch.cuda.is_available() else [])
tmp = tempfile.mkdtemp(prefix="wb-peft-")
report = {"peft": __import__("peft").__version__, "transformers": __import__("transformers").__version__,
          "torch": torch.__version__, "tolerance": TOL, "checks": []}
ok = True


def check(name, passed, **details):
    global ok
    ok = ok and bool(passed)
    report["checks"].append({"name": name, "passed": bool(passed), **details})
    print(("PASS " if passed else "FAIL ") + name + " " + json.dumps(details)[:300], file=sys.stderr)


def ours(*args):
    out = subprocess.run([bench, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def base_model(cfg, seed, name):
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(cfg).eval()
    path = os.path.join(tmp, name)
    model.save_pretrained(path, safe_serialization=True)
    return model, path


def tokens_file(vocab, n, seed):
    ids = np.random.RandomState(seed).randint(0, vocab, size=n).astype("<u2")
    path = os.path.join(tmp, f"tokens-{seed}.bin")
    ids.tofile(path)
    return path


def our_logits(model_dir, adapter, tok, seq_len, dev, merge=False):
    out = os.path.join(tmp, f"logits-{len(os.listdir(tmp))}.safetensors")
    args = ["lora-logits", "--model", model_dir, "--tokens", tok, "--seq-len", str(seq_len), "--out", out,
            "--device", dev]
    if adapter:
        args += ["--adapter", adapter]
    if merge:
        args.append("--merge")
    info = ours(*args)
    t = load_file(out)
    return t["logits"], t["input_ids"], info


def randomize_lora(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def peft_to_ours(label, cfg, targets, r, alpha, seed, seq_len):
    base, base_dir = base_model(cfg, seed, f"base-{label}")
    lcfg = LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, fan_in_fan_out=True, lora_dropout=0.0,
                      bias="none", task_type="CAUSAL_LM")
    peft_model = get_peft_model(base, lcfg).eval()
    randomize_lora(peft_model, seed + 1)
    adapter = os.path.join(tmp, f"peft-adapter-{label}")
    peft_model.save_pretrained(adapter, safe_serialization=True)
    tok = tokens_file(cfg.vocab_size, seq_len + 1, seed + 2)
    trainable, _ = peft_model.get_nb_trainable_parameters()
    for dev in devices:
        for merge in (False, True):
            logits, ids, info = our_logits(base_dir, adapter, tok, seq_len, dev, merge)
            with torch.no_grad():
                ref = peft_model(input_ids=ids).logits
                plain = peft_model.get_base_model()
                with peft_model.disable_adapter():
                    base_logits = plain(input_ids=ids).logits
            diff = (ref - logits).abs().max().item()
            effect = (ref - base_logits).abs().max().item()
            check(f"peft->ours {label} ({dev}, {'merged' if merge else 'unmerged'})", diff <= TOL and effect > 1e-3,
                  max_abs_diff=diff, adapter_effect=effect, modules=len(info["modules"]))
    return base_dir, trainable


def ours_to_peft(label, cfg, targets, r, alpha, seed, seq_len):
    base, base_dir = base_model(cfg, seed, f"base-ours-{label}")
    adapter = os.path.join(tmp, f"our-adapter-{label}")
    info = ours("lora-init", "--model", base_dir, "--out", adapter, "--rank", str(r), "--alpha", str(alpha),
                "--targets", ",".join(targets), "--b-std", "0.05", "--seed", str(seed + 1))
    tok = tokens_file(cfg.vocab_size, seq_len + 1, seed + 3)
    peft_model = PeftModel.from_pretrained(base, adapter).eval()
    trainable = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)
    for dev in devices:
        logits, ids, _ = our_logits(base_dir, adapter, tok, seq_len, dev)
        with torch.no_grad():
            ref = peft_model(input_ids=ids).logits
            with peft_model.disable_adapter():
                base_logits = peft_model.get_base_model()(input_ids=ids).logits
        diff = (ref - logits).abs().max().item()
        effect = (ref - base_logits).abs().max().item()
        check(f"ours->peft {label} ({dev})", diff <= TOL and effect > 1e-3, max_abs_diff=diff,
              adapter_effect=effect)
    # Our file's names and shapes are peft's own for this model and config.
    ours_sd = load_file(os.path.join(adapter, "adapter_model.safetensors"))
    fresh = get_peft_model(GPT2LMHeadModel(cfg), LoraConfig(r=r, lora_alpha=alpha, target_modules=targets,
                                                            fan_in_fan_out=True, task_type="CAUSAL_LM"))
    from peft import get_peft_model_state_dict
    peft_sd = get_peft_model_state_dict(fresh)
    same = {k: tuple(v.shape) for k, v in ours_sd.items()} == {k: tuple(v.shape) for k, v in peft_sd.items()}
    check(f"ours->peft {label} key names and shapes", same, ours=len(ours_sd), peft=len(peft_sd))
    return info["trainable_params"], trainable


small = GPT2Config(n_layer=3, n_head=4, n_embd=64, n_positions=128, vocab_size=1000, resid_pdrop=0.0,
                   embd_pdrop=0.0, attn_pdrop=0.0, attn_implementation="eager")
all_targets = ["c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]
peft_to_ours("small-c_attn", small, ["c_attn"], 8, 16, 10, 64)
peft_to_ours("small-all", small, all_targets, 4, 8, 20, 64)
peft_to_ours("small-c_proj-suffix", small, ["c_proj"], 2, 4, 30, 32)
ours_to_peft("small-c_attn", small, ["c_attn"], 8, 16, 40, 64)
ours_to_peft("small-all", small, all_targets, 4, 8, 50, 64)

gpt2 = GPT2Config(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, attn_implementation="eager")  # 124M shapes
_, peft_trainable = peft_to_ours("124M-c_attn", gpt2, ["c_attn"], 8, 16, 60, 64)
check("124M r=8 c_attn trainable parameters (peft)", peft_trainable == 294912, peft=peft_trainable)
our_trainable, peft_loaded = ours_to_peft("124M-c_attn", gpt2, ["c_attn"], 8, 16, 70, 64)
check("124M r=8 c_attn trainable parameters (ours)", our_trainable == 294912 and peft_loaded == 294912,
      ours=our_trainable, peft_loaded=peft_loaded)

report["ok"] = ok
print(json.dumps(report, indent=1))
print("PASS: all peft parity checks" if ok else "FAIL: see the checks above", file=sys.stderr)
sys.exit(0 if ok else 1)
