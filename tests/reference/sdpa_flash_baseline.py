"""LibTorch's SDPA flash backend timed from Python (CUDA events, warm-up, mean +- std),
as an independent cross-check of `gpt2-bench perf attention`'s baseline column.
Run on the GPU machine: python3 tests/reference/sdpa_flash_baseline.py"""
import statistics

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel


def timed(fn, warmup=5, reps=20):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b))
    return statistics.mean(out), statistics.stdev(out)


def main():
    print("torch", torch.__version__, torch.cuda.get_device_name())
    B, H, T, D = 16, 12, 1024, 64
    for dt in (torch.bfloat16, torch.float16):
        for causal in (True, False):
            q, k, v, do = (torch.randn(B, H, T, D, device="cuda", dtype=dt) for _ in range(4))
            flops = 4 * B * H * T * T * D / (2 if causal else 1)
            fwd = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, causal, False, scale=0.125)
            o, lse, cq, ck, mq, mk, seed, off, _ = fwd
            f = timed(lambda: torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, causal, False, scale=0.125))
            b = timed(lambda: torch.ops.aten._scaled_dot_product_flash_attention_backward(
                do, q, k, v, o, lse, cq, ck, mq, mk, 0.0, causal, seed, off, scale=0.125))
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                s = timed(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal))
            name = f"{str(dt)[6:]} B{B} H{H} T{T} D{D} {'causal' if causal else 'full'}"
            print(f"SDPA flash fwd {name}: {f[0]:.4f} +- {f[1]:.4f} ms {flops / f[0] / 1e9:.1f} TFLOP/s"
                  f" (via sdpa_kernel: {s[0]:.4f} ms)")
            print(f"SDPA flash bwd {name}: {b[0]:.4f} +- {b[1]:.4f} ms {2.5 * flops / b[0] / 1e9:.1f} TFLOP/s")


if __name__ == "__main__":
    main()
