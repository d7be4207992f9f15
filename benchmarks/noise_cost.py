"""What the secure noise stream costs (run by hand; prints Markdown tables).

    .venv/bin/python benchmarks/noise_cost.py

1. Drawing d Gaussians: AES-256-CTR + Box-Muller (`dp.csprng.AesCtrGenerator`, what DP uses unless
   seeded) against numpy's PCG64 (what a seeded run uses), best of 5, alternated.
2. A DP-SGD step on the digits CNN (B = 64, one torch thread): `dp.local.train_dp_sgd` with the secure
   stream (seed=None) against PCG64 (seed=0), alternated over 6 repeats. The two draw different Poisson
   batches, so whole-step times scatter by about 10% on this machine; the stream's own cost per step is
   read more precisely as the extra time to draw one step's noise (the model's parameter count) and its
   Poisson batch, over the step's time.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from dp.csprng import AesCtrGenerator
from dp.local import DPSGDConfig, train_dp_sgd
from fl_core.data import load_dataset
from fl_core.models import build_model, get_flat, set_flat


def draws() -> None:
    print("| d | PCG64 ms | AES-CTR ms | x PCG64 |")
    print("|---|---|---|---|")
    for d in (10_000, 100_000, 1_000_000):
        pcg, aes = np.random.default_rng(0), AesCtrGenerator()
        tp, ta = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            pcg.normal(0.0, 1.0, size=d)
            tp.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            aes.normal(0.0, 1.0, size=d)
            ta.append(time.perf_counter() - t0)
        print(f"| {d:,} | {1e3 * min(tp):.2f} | {1e3 * min(ta):.2f} | {min(ta) / min(tp):.2f} |", flush=True)


def dp_sgd_steps() -> None:
    torch.set_num_threads(1)
    ds = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    model = build_model("cnn", ds.input_shape, ds.num_outputs)
    w0 = get_flat(model)
    cfg = DPSGDConfig(noise_multiplier=1.0, max_grad_norm=1.0, batch_size=64, epochs=1, lr=0.1, delta=1e-5)
    times: dict[str, list[float]] = {"secure (AES-CTR)": [], "seeded (PCG64)": []}
    pairs = (("secure (AES-CTR)", None), ("seeded (PCG64)", 0))
    for i in range(6):  # alternated, and the order swapped every repeat
        for name, seed in pairs if i % 2 == 0 else pairs[::-1]:
            set_flat(model, w0)
            t0 = time.perf_counter()
            res = train_dp_sgd(model, ds.x_train, ds.y_train, "cross_entropy", cfg, seed=seed, account=False)
            times[name].append((time.perf_counter() - t0) / res.steps)
    base = statistics.median(times["seeded (PCG64)"])
    print("\n| noise stream | ms per DP-SGD step (median of 6) | x seeded |")
    print("|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {1e3 * statistics.median(ts):.2f} | {statistics.median(ts) / base:.3f} |")
    d, n = w0.size, len(ds.x_train)
    extra = []
    for _ in range(20):
        pcg, aes = np.random.default_rng(0), AesCtrGenerator()
        t0 = time.perf_counter()
        pcg.normal(0.0, 1.0, size=d), pcg.random(n)
        t1 = time.perf_counter()
        aes.normal(0.0, 1.0, size=d), aes.random(n)
        extra.append((time.perf_counter() - t1) - (t1 - t0))
    ex = statistics.median(extra)
    print(f"\none step's noise ({d:,} parameters) and Poisson batch ({n:,} examples): {1e3 * ex:.3f} ms more "
          f"with AES-CTR than PCG64, {100 * ex / base:.1f}% of a {1e3 * base:.1f} ms step")


if __name__ == "__main__":
    draws()
    dp_sgd_steps()
