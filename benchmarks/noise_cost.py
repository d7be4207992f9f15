"""What the secure noise stream costs (run by hand; prints Markdown tables).

    .venv/bin/python benchmarks/noise_cost.py

1. Drawing d Gaussians: AES-256-CTR + Marsaglia's polar method (`dp.csprng.AesCtrGenerator`, what DP
   uses unless seeded) against numpy's PCG64 (what a seeded run uses), best of 5, alternated.
2. A DP-SGD step on the digits CNN and on the breast_cancer MLP (B = 64, one torch thread):
   `dp.local.train_dp_sgd` with the secure stream (seed=None) against PCG64 (seed=0), alternated over 6
   repeats. The two draw different Poisson batches, so whole-step times scatter by about 10% on this
   machine; the stream's own cost per step is read more precisely as the time to draw a run's noise and
   Poisson batches as train_dp_sgd draws them (`StepNoise`, `poisson_batches`: several steps per call),
   per step, over the step's time.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from dp.csprng import AesCtrGenerator
from dp.local import DPSGDConfig, StepNoise, poisson_batches, train_dp_sgd
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


def dp_sgd_steps(dataset: str, model_name: str, batch: int, epochs: int) -> None:
    torch.set_num_threads(1)
    ds = load_dataset(dataset, seed=0)
    torch.manual_seed(0)
    model = build_model(model_name, ds.input_shape, ds.num_outputs)
    w0 = get_flat(model)
    cfg = DPSGDConfig(
        noise_multiplier=1.0, max_grad_norm=1.0, batch_size=batch, epochs=epochs, lr=0.1, delta=1e-5
    )
    times: dict[str, list[float]] = {"secure (AES-CTR)": [], "seeded (PCG64)": []}
    pairs = (("secure (AES-CTR)", None), ("seeded (PCG64)", 0))
    steps = 1
    for i in range(6):  # alternated, and the order swapped every repeat
        for name, seed in pairs if i % 2 == 0 else pairs[::-1]:
            set_flat(model, w0)
            t0 = time.process_time()
            res = train_dp_sgd(model, ds.x_train, ds.y_train, "cross_entropy", cfg, seed=seed, account=False)
            times[name].append((time.process_time() - t0) / res.steps)
            steps = res.steps
    base = statistics.median(times["seeded (PCG64)"])
    print(f"\n### {dataset} {model_name}, B = {batch} ({w0.size:,} parameters, {steps} steps, CPU time)\n")
    print("| noise stream | ms per DP-SGD step (median of 6) | x seeded |")
    print("|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {1e3 * statistics.median(ts):.3f} | {statistics.median(ts) / base:.3f} |")
    d, n, q = w0.size, len(ds.x_train), batch / len(ds.x_train)
    cost: dict[str, list[float]] = {"AES-CTR": [], "PCG64": []}
    for _ in range(7):  # one run's noise and Poisson batches, drawn as train_dp_sgd draws them
        for name, make in (("AES-CTR", AesCtrGenerator), ("PCG64", lambda: np.random.default_rng(0))):
            noise_rng, sampler = make(), make()
            t0 = time.process_time()
            stream = StepNoise(noise_rng, 1.0, d, steps)
            for _ in poisson_batches(sampler, n, q, steps):
                stream.next()
            cost[name].append((time.process_time() - t0) / steps)
    aes, pcg = statistics.median(cost["AES-CTR"]), statistics.median(cost["PCG64"])
    print(
        f"\none step's noise ({d:,} parameters) and Poisson batch ({n:,} examples), drawn ahead as "
        f"train_dp_sgd draws them: AES-CTR {1e3 * aes:.3f} ms ({100 * aes / base:.1f}% of a "
        f"{1e3 * base:.2f} ms step), PCG64 {1e3 * pcg:.3f} ms; AES-CTR costs {1e3 * (aes - pcg):+.3f} ms "
        f"({100 * (aes - pcg) / base:+.1f}% of the step)"
    )


if __name__ == "__main__":
    draws()
    dp_sgd_steps("digits", "cnn", 64, 1)
    dp_sgd_steps("breast_cancer", "mlp", 64, 10)
