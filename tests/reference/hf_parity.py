#!/usr/bin/env python3
"""Parity of the workbench's GPT-2 with Hugging Face transformers (run on the GPU machine).

1. A randomly initialised GPT2LMHeadModel saved by transformers (safetensors) loads in
   our code and gives the same mean loss on the same tokens (1e-5 relative, fp32, CPU
   and CUDA) and the same greedy continuation.
2. A model saved by us (`gpt2-bench init-model`) loads in transformers with the same
   logits (max abs diff <= 1e-4).
Usage: hf_parity.py PATH/TO/gpt2-bench [--cuda]   (prints a JSON report, exits 1 on failure)
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file
from transformers import GPT2Config, GPT2LMHeadModel

bench = sys.argv[1]
devices = ["cpu"] + (["cuda"] if "--cuda" in sys.argv and torch.cuda.is_available() else [])
tmp = tempfile.mkdtemp(prefix="wb-parity-")
report = {"transformers": __import__("transformers").__version__, "torch": torch.__version__, "checks": []}
ok = True


def check(name, passed, **details):
    global ok
    ok = ok and passed
    report["checks"].append({"name": name, "passed": bool(passed), **details})


def ours(*args):
    out = subprocess.run([bench, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


torch.manual_seed(0)
T = 128
cfg = GPT2Config(n_layer=3, n_head=4, n_embd=128, n_positions=T, vocab_size=50257,
                 resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, attn_implementation="eager")
hf = GPT2LMHeadModel(cfg).eval()
hf_dir = os.path.join(tmp, "hf")
hf.save_pretrained(hf_dir, safe_serialization=True)

tokens = np.random.RandomState(0).randint(0, cfg.vocab_size, size=4 * T + 37 + 1).astype("<u2")
tok_path = os.path.join(tmp, "tokens.bin")
tokens.tofile(tok_path)

# Reference loss: the same non-overlapping windows our evaluator uses (last one shorter),
# token-weighted mean of the next-token cross-entropy.
with torch.no_grad():
    ids = torch.tensor(tokens.astype(np.int64))
    total, count = 0.0, 0
    for b in range(0, len(ids) - 1, T):
        x = ids[b:min(b + T, len(ids) - 1)]
        y = ids[b + 1:b + 1 + len(x)]
        logits = hf(x[None]).logits[0].double()
        total += torch.nn.functional.cross_entropy(logits, y, reduction="sum").item()
        count += len(y)
ref_loss = total / count

for dev in devices:
    r = ours("eval", "--model", hf_dir, "--tokens", tok_path, "--seq-len", str(T), "--json", "--device", dev)
    rel = abs(r["loss"] - ref_loss) / abs(ref_loss)
    check(f"hf->ours mean loss ({dev})", rel <= 1e-5, ours=r["loss"], reference=ref_loss, rel_diff=rel,
          tokens=r["tokens"], reference_tokens=count)

prompt = [int(t) for t in tokens[:10]]
with torch.no_grad():
    gen = hf.generate(torch.tensor([prompt]), max_new_tokens=24, min_new_tokens=24, do_sample=False,
                      pad_token_id=cfg.eos_token_id)
ref_greedy = gen[0, len(prompt):].tolist()
for dev in devices:
    r = ours("generate", "--model", hf_dir, "--prompt-ids", ",".join(map(str, prompt)), "--max-new-tokens", "24",
             "--temperature", "0", "--json", "--device", dev)
    check(f"hf->ours greedy continuation ({dev})", r["ids"] == ref_greedy, ours=r["ids"], reference=ref_greedy)

# The other direction: our fresh model in transformers.
our_dir = os.path.join(tmp, "ours")
subprocess.run([bench, "init-model", "--config", json.dumps({"n_layer": 2, "n_head": 4, "n_embd": 64,
                "n_positions": T, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}),
                "--seed", "7", "--out", our_dir], check=True)
loaded = GPT2LMHeadModel.from_pretrained(our_dir, attn_implementation="eager").eval()
dump = os.path.join(tmp, "logits.safetensors")
ours("eval", "--model", our_dir, "--tokens", tok_path, "--seq-len", str(T), "--json", "--dump-logits", dump)
ours_logits = load_file(dump)
with torch.no_grad():
    ref_logits = loaded(ours_logits["input_ids"]).logits
diff = (ref_logits - ours_logits["logits"]).abs().max().item()
check("ours->hf logits", diff <= 1e-4, max_abs_diff=diff)

report["ok"] = ok
print(json.dumps(report, indent=1))
sys.exit(0 if ok else 1)
