"""`audit_run(RUN_DIR)`: attack a finished run and set what the attacks achieved beside what was proven.

Reads the run folder (`fl_core.rundir.read_run`: config, privacy.json, model.npz checked against its
SHA-256, membership.json, canaries.npz), runs the audits that fit the run, and writes into the folder:
`audit.json` (everything), `audit.md` (the tables) and PNG figures (`audit_roc_global.png`,
`audit_roc_client.png`, `audit_epsilons.png`, `audit_reconstructions.png`).

Audits (names for ``attacks``):

* ``loss``, ``lira``, ``rmia``: membership inference against the global model (members: the examples
  of every client that completed a round; non-members: the test split and the examples of clients that
  never took part) and against one client's local model (the largest participating client's local
  training from the final global model, as it would send it next round; non-members: the test split).
  Non-members of the local model are test examples drawn with the client's label mix.
  Shadow / reference models train on balanced random halves of the pool, by default centrally with
  `fl_core.training` and the run's recipe (``shadow_training="centralized"``), or each repeating the
  run's federated training (config and DP included) through `fl_core.run_experiment` (``"federated"``).
* ``canary``: Andrew et al.'s one-shot estimate and Steinke et al.'s one-run bound (runs with
  `audit.canary_clients`).
* ``inversion``: the exact (linear first layer) or optimization attack on one client's plain batch-1
  update from the final model, and on the secure sum of a cohort of 8 (through secagg).
* ``secagg``: the same cohort's round transcript checked by `audits.secagg_view`.

``attacks=None`` runs every audit that fits the run and lists the others as skipped with the reason;
naming an audit that does not fit raises `AuditError`. The budget report is always included.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audits import plots
from audits.budget import budget_markdown, budget_report
from audits.errors import AuditError

__all__ = ["AUDITS", "audit_run"]

AUDITS: tuple[str, ...] = ("loss", "lira", "rmia", "canary", "inversion", "secagg")
MEMBERSHIP = ("loss", "lira", "rmia")
INVERSION_COHORT = 8
Progress = Callable[[int, int, str], None]


def _read(run_dir: str | Path) -> Any:
    from fl_core.errors import FLError
    from fl_core.rundir import read_run

    p = Path(run_dir)
    if not p.is_dir():
        raise AuditError(f"{str(p)!r} is not a run folder")
    try:
        return read_run(p)
    except FLError as exc:
        raise AuditError(str(exc).splitlines()[0]) from None


def _unfit(run: Any, name: str) -> str | None:
    """Why an audit does not fit this run (None when it does)."""
    task = run.summary.get("task", "classification")
    if name == "canary" and run.canaries is None:
        return "the run had no canary clients (set audit.canary_clients when running)"
    if name in ("inversion", "secagg") and task != "classification":
        return f"gradient inversion is implemented for classification, the run's task is {task}"
    if name in MEMBERSHIP and not run.membership.get("clients"):
        return "membership.json lists no client examples"
    return None


def _choose(run: Any, attacks: Sequence[str] | None) -> tuple[list[str], dict[str, str]]:
    if attacks is None:
        chosen = [a for a in AUDITS if _unfit(run, a) is None]
        return chosen, {a: str(_unfit(run, a)) for a in AUDITS if a not in chosen}
    names = [a.strip() for a in attacks if a.strip()]
    if not names:
        raise AuditError("no audit named; choose from " + ", ".join(AUDITS))
    for a in names:
        if a not in AUDITS:
            raise AuditError(f"unknown audit {a!r}; choose from {', '.join(AUDITS)}")
        why = _unfit(run, a)
        if why is not None:
            raise AuditError(f"audit {a!r} does not fit this run: {why}")
    return list(dict.fromkeys(names)), {}


def _proven(run: Any) -> tuple[float | None, float]:
    """The proven epsilon the attacks are held to: against an observer of the released model (what these
    attacks see, without the cohorts) where the run states one per adversary; it is the smaller, so the
    check is the stricter one."""
    pr = run.privacy
    delta = float(pr.get("delta") or run.config.dp.delta)
    eps = (pr.get("epsilon_by_adversary") or {}).get("observer_of_model", pr.get("epsilon"))
    return (float(eps) if isinstance(eps, (int, float)) and pr.get("dp_mode") != "none" else None), delta


# ---------------------------------------------------------------- membership


def _participants(run: Any) -> set[int]:
    n_real = len(run.membership["clients"])
    return {int(c) for rnd in run.membership.get("participants", []) for c in rnd if int(c) < n_real}


def _recipe(run: Any, start: np.ndarray, epochs: int, n_examples: int) -> Any:
    from audits.membership import TrainingRecipe

    cfg, ds_task = run.config, run.summary.get("task", "classification")
    dp_cfg = None
    if cfg.dp.mode == "local":
        from dp.local import DPSGDConfig

        dp_cfg = DPSGDConfig(
            noise_multiplier=float(run.privacy["noise_multiplier"]),
            max_grad_norm=cfg.dp.clip_norm,
            batch_size=min(cfg.train.batch_size, n_examples),
            epochs=epochs,
            lr=cfg.train.lr,
            momentum=cfg.train.momentum,
            delta=cfg.dp.delta,
        )

    def factory() -> Any:
        return run.build_model(run.initial).train()

    return TrainingRecipe(
        factory, start, ds_task, epochs, cfg.train.batch_size, cfg.train.lr, cfg.train.momentum, dp_cfg
    )


@dataclass(frozen=True)
class FederatedRecipe:
    """Shadow training that repeats the run itself: the same config (model, partition, strategy, rounds,
    DP mode and noise; no canaries, no centralized baseline, no early stop) through
    `fl_core.run_experiment` on the shadow's examples, with the shadow's seed (init and partition)."""

    config: Any
    task: str
    model_factory: Callable[[], Any]

    def train(self, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
        from fl_core import run_experiment
        from fl_core.config import build_config
        from fl_core.data import dataset_from_arrays
        from fl_core.models import set_flat

        data = self.config.to_dict()
        data["run"]["seed"] = int(seed) % 2**31
        data["centralized"] = {"enabled": False}
        data["audit"] = {"canary_clients": 0}
        data.get("dp", {}).pop("max_epsilon", None)
        k = max(2, len(x) // 50)  # the per-round evaluation needs a test split: a few of its own examples
        ds = dataset_from_arrays("shadow", x, y, x[:k], y[:k], task=self.task)  # type: ignore[arg-type]
        result = run_experiment(build_config(data), dataset=ds)
        model = self.model_factory()
        set_flat(model, result.final_weights)
        return model.eval()


def _global_epochs(run: Any) -> int:
    """Passes over the data that the federated run made: rounds x local epochs x participation."""
    n_real = len(run.membership["clients"])
    parts = run.membership.get("participants", [])
    share = np.mean([len([c for c in p if c < n_real]) / n_real for p in parts]) if parts else 1.0
    return max(1, int(round(len(parts) * run.config.train.local_epochs * share)))


def _membership(
    run: Any,
    names: list[str],
    shadows: int,
    seed: int,
    progress: Progress | None,
    shadow_epochs: int | None,
    shadow_training: str,
) -> dict[str, Any]:
    import torch

    from audits.membership import membership_audit
    from fl_core.training import as_tensors, train_epochs

    ds = run.load_dataset()
    task = ds.task
    eps, delta = _proven(run)
    clients = run.client_indices
    took_part = _participants(run)
    in_train = np.zeros(ds.num_train, bool)
    for c in took_part:
        in_train[clients[c]] = True
    x = np.concatenate([ds.x_train, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    member = np.concatenate([in_train, np.zeros(ds.num_test, bool)])
    epochs = shadow_epochs or _global_epochs(run)
    recipe: Any = _recipe(run, run.initial, epochs, max(1, int(in_train.sum()) // 2))
    if shadow_training == "federated":
        if run.config.data.partition == "natural":
            raise AuditError("federated shadow training cannot repeat a 'natural' partition; use centralized")
        recipe = FederatedRecipe(run.config, task, recipe.model_factory)
    elif shadow_training != "centralized":
        raise AuditError(f"shadow_training must be 'federated' or 'centralized', got {shadow_training!r}")
    target = run.build_model(run.final)

    def tagged(stage: str) -> Progress | None:
        if progress is None:
            return None
        return lambda done, total, what: progress(done, total, f"{stage}: {what}")

    out: dict[str, Any] = {
        "shadow_training": shadow_training,
        "shadow_epochs": epochs if shadow_training == "centralized" else None,
    }
    out["global"] = membership_audit(
        target,
        x,
        y,
        member,
        task,
        recipe=recipe,
        attacks=names,
        shadows=shadows,
        seed=seed,
        progress=tagged("global model"),
        epsilon=eps,
        delta=delta,
    )

    # one client's local model: its local training from the final global weights
    c = max(took_part, key=lambda i: len(clients[i])) if took_part else 0
    idx = clients[c]
    local = run.build_model(run.final).train()  # Opacus trains modules in training mode
    local_recipe = _recipe(run, run.final, run.config.train.local_epochs, len(idx) // 2)
    if local_recipe.dp_sgd is not None:
        from dp.local import train_dp_sgd

        cfg = local_recipe.dp_sgd
        train_dp_sgd(
            local,
            ds.x_train[idx],
            ds.y_train[idx],
            "cross_entropy" if task == "classification" else "mse",
            type(cfg)(**{**cfg.__dict__, "batch_size": min(cfg.batch_size, len(idx))}),
            seed=seed,
            account=False,
        )
    else:
        xt, yt = as_tensors(ds.x_train[idx], ds.y_train[idx], task)
        train_epochs(
            local,
            xt,
            yt,
            task,
            epochs=run.config.train.local_epochs,
            batch_size=run.config.train.batch_size,
            lr=run.config.train.lr,
            momentum=run.config.train.momentum,
            generator=torch.Generator().manual_seed(seed),
        )
    local.eval()
    non = _matched_nonmembers(ds.y_train[idx], ds.y_test, task, np.random.default_rng(seed))
    xc = np.concatenate([ds.x_train[idx], ds.x_test[non]])
    yc = np.concatenate([ds.y_train[idx], ds.y_test[non]])
    mc = np.r_[np.ones(len(idx), bool), np.zeros(non.size, bool)]
    client_eps = None
    if run.config.dp.mode == "local" and eps is not None:
        client_eps = _local_client_epsilon(run, c, len(idx))
    out["client"] = membership_audit(
        local,
        xc,
        yc,
        mc,
        task,
        recipe=local_recipe,
        attacks=names,
        shadows=shadows,
        seed=seed + 1,
        progress=tagged(f"client {c}'s local model"),
        epsilon=client_eps,
        delta=delta,
    )
    out["client"]["client_id"] = int(c)
    out["client"]["epsilon_allowed"] = client_eps
    out["client"]["epsilon_allowed_note"] = (
        "the client's sample-level ledger plus this local round"
        if client_eps is not None
        else "no DP protects one client's plain update under client-level DP or without DP"
    )
    return out


def _matched_nonmembers(
    y_client: np.ndarray, y_test: np.ndarray, task: str, rng: np.random.Generator
) -> np.ndarray:
    """Test examples with the client's label mix (classification): a client's local model fits its own
    label skew, and non-members of other classes would be told apart by their label, not membership."""
    if task != "classification":
        return np.arange(y_test.size)
    classes, counts = np.unique(y_client, return_counts=True)
    avail = {int(k): np.flatnonzero(y_test == k) for k in classes}
    present = [(int(k), int(c)) for k, c in zip(classes, counts, strict=True) if avail[int(k)].size]
    if not present:
        raise AuditError("the test split holds none of this client's classes")
    ratio = min(avail[k].size / c for k, c in present)
    picks = [rng.choice(avail[k], max(1, int(ratio * c)), replace=False) for k, c in present]
    return np.sort(np.concatenate(picks))


def _local_client_epsilon(run: Any, client: int, n: int) -> float:
    """Sample-level epsilon of the client's ledger plus one more local round (the attacked update)."""
    from dp import epsilon_for
    from dp.calibration import dp_sgd_steps

    b = min(run.config.train.batch_size, n)
    rounds = sum(1 for p in run.membership.get("participants", []) if client in p) + 1
    steps = dp_sgd_steps(n, b, run.config.train.local_epochs) * rounds
    return float(
        epsilon_for(float(run.privacy["noise_multiplier"]), b / n, steps, float(run.privacy["delta"]))
    )


# ---------------------------------------------------------------- inversion and the secagg view


def _inversion(
    run: Any, want_inversion: bool, want_secagg: bool, seed: int, iterations: int
) -> dict[str, Any]:
    import secagg
    from audits.inversion import client_update, first_linear_slices, inversion_experiment
    from audits.secagg_view import secagg_view

    ds = run.load_dataset()
    clients = run.client_indices
    order = sorted(_participants(run)) or list(range(len(clients)))
    picks = [int(clients[c][0]) for c in order[:INVERSION_COHORT] if len(clients[c])]
    rng = np.random.default_rng(seed)
    if len(picks) < INVERSION_COHORT:  # fewer clients than the cohort: more examples stand in for clients
        rest = np.setdiff1d(np.arange(ds.num_train), picks)
        picks += rng.choice(rest, INVERSION_COHORT - len(picks), replace=False).tolist()
    x, y = ds.x_train[picks], ds.y_train[picks]
    model = run.build_model(run.final)
    lr = run.config.train.lr
    round_info: dict[str, Any] = {}

    def secure(updates: list[np.ndarray]) -> np.ndarray:
        clip = float(np.max(np.abs(updates))) * 1.01 or 1.0
        enc = secagg.FixedPointEncoding.for_clients(len(updates), clip)
        encoded = [enc.encode(u, rng) for u in updates]
        res = secagg.aggregate(encoded, record_transcript=True)
        round_info["result"], round_info["inputs"] = res, encoded
        return np.asarray(enc.decode_sum(res.sum), np.float64)

    out: dict[str, Any] = {}
    try:
        first_linear_slices(model)
        method = "exact"
    except AuditError:
        method = "optimization"
    if want_inversion:
        res = inversion_experiment(
            model, x, y, method=method, lr=lr, secure_sum=secure, iterations=iterations, seed=seed
        )
        out["inversion"] = {
            **res.to_dict(),
            "clients": [int(c) for c in order[:INVERSION_COHORT]],
            "model": "final global model",
            "update": "one SGD step on one example (batch 1)",
        }
        out["_images"] = res
    elif want_secagg:
        secure([client_update(model, x[i : i + 1], y[i : i + 1], lr=lr) for i in range(len(x))])
    if want_secagg:
        view = secagg_view(round_info["result"], round_info["inputs"])
        out["secagg"] = {k: v for k, v in view.items() if k != "clients"} | {
            "clients_checked": len(view["clients"])
        }
    return out


# ---------------------------------------------------------------- report


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(v)
    if isinstance(v, float):
        return "inf" if math.isinf(v) else f"{v:.{digits}g}"
    return str(v)


def _membership_table(title: str, res: dict[str, Any]) -> list[str]:
    lines = [
        f"### {title}",
        "",
        f"{res['members']} members, {res['nonmembers']} non-members, {res['shadows']} shadow models.",
        "",
        "| attack | AUC (allowed) | TPR@0.1% FPR (allowed) | TPR@1% FPR (allowed) | advantage (allowed) "
        "| eps lower bound | GDP eps estimate |",
        "|---|---|---|---|---|---:|---:|",
    ]
    for name, r in res["attacks"].items():
        m = r["metrics"]

        def pair(k: str, m: dict[str, Any] = m) -> str:
            return f"{_fmt(m[k])} ({_fmt(m.get(k + '_allowed'))})"

        lines.append(
            f"| {name} | {pair('auc')} | {pair('tpr_at_0.1%_fpr')} | {pair('tpr_at_1%_fpr')} "
            f"| {pair('advantage')} "
            f"| {_fmt(r['epsilon_lower_bound']['epsilon'])} | {_fmt(r['gdp_epsilon_estimate'])} |"
        )
    return lines + [""]


def _markdown(report: dict[str, Any]) -> str:
    proven = report["proven"]
    lines = [
        "# Privacy audit",
        "",
        f"Run: `{report['run']}`",
        "",
        f"Proven: epsilon = {_fmt(proven['epsilon'])} at delta = {_fmt(proven['delta'])} "
        f"({report['budget'].get('statement') or 'no DP'}).",
        "",
    ]
    lines += [
        "## Empirical epsilon beside the proven one",
        "",
        "| source | epsilon | kind |",
        "|---|---:|---|",
    ]
    for row in report["empirical"]:
        lines.append(f"| {row['source']} | {_fmt(row['epsilon'])} | {row['kind']} |")
    lines.append("")
    if report["exceeds_proven"]:
        lines += [
            "**A lower bound exceeds the proven epsilon: "
            + ", ".join(report["exceeds_proven"])
            + ". The accounting or the implementation is wrong.**",
            "",
        ]
    elif proven["epsilon"] is not None:
        lines += ["Every lower bound stays below the proven epsilon.", ""]
    lines += [
        "Membership bounds: Clopper-Pearson at 95% over the run's examples, the threshold search "
        "corrected by Bonferroni over the thresholds tried; the examples of one run are not independent "
        "trials, so read them as empirical estimates. The canary one-run bound (Steinke et al. 2023) is "
        "rigorous at 95%; the one-shot and GDP numbers are estimates (they assume Gaussian statistics).",
        "",
    ]
    mem = report.get("membership")
    if mem:
        how = (
            "each repeats the federated run (same config and DP) on its half of the pool"
            if mem["shadow_training"] == "federated"
            else f"centralized training, {mem['shadow_epochs']} epochs each"
        )
        lines += ["## Membership inference", "", f"Shadow models: {how}.", ""]
        lines += _membership_table("Global model", mem["global"])
        lines += _membership_table(f"Client {mem['client']['client_id']}'s local model", mem["client"])
    can = report.get("canary")
    if can:
        one = can["one_run"]
        lines += [
            "## Canary clients",
            "",
            f"{can['m']} canaries ({can['inserted']} inserted), model dimension {can['dim']}.",
            "",
            f"- one-run lower bound: {_fmt(one['epsilon'])} ({one['v']} of {one['r']} guesses right, "
            f"k = {one['k']}, {one['correction']})",
        ]
        if can.get("one_shot"):
            s = can["one_shot"]
            lines.append(
                f"- one-shot estimate: {_fmt(s['epsilon'])}, "
                f"with equal widths {_fmt(s['epsilon_equal_width'])} "
                f"(inserted cosines {_fmt(s['mean_inserted'])} +- {_fmt(s['std_inserted'])} against the null "
                f"{s['null']}, std {_fmt(s['std_null'])})"
            )
        lines.append("")
    inv = report.get("inversion")
    if inv:
        lines += [
            "## Gradient inversion",
            "",
            f"{inv['method']} attack, {inv['update']}, cohort of {inv['cohort']}.",
            "",
            "| what the server holds | PSNR (dB) | SSIM |",
            "|---|---:|---:|",
            f"| one client's plain update | {_fmt(inv['plain']['psnr'])} | {_fmt(inv['plain']['ssim'])} |",
            f"| secure aggregate of {inv['cohort']} | {_fmt(inv['secure_aggregate']['psnr'])} "
            f"| {_fmt(inv['secure_aggregate']['ssim'])} |",
            "",
        ]
    sv = report.get("secagg")
    if sv:
        lines += [
            "## What secure aggregation shows",
            "",
            f"- masked vectors look uniform and independent of their inputs: "
            f"{_fmt(sv['masked_vectors_look_uniform_and_independent'])} (smallest p-value "
            f"{_fmt(sv['min_p_value'])} of {sv['tests']} tests, {sv['correction']})",
            f"- only the sum decodes: {_fmt(sv['only_the_sum_decodes'])}",
            "",
        ]
    if report["skipped"]:
        lines += ["## Skipped", ""] + [f"- {k}: {v}" for k, v in report["skipped"].items()] + [""]
    lines.append(budget_markdown(report["budget"]))
    lines += ["## Figures", ""] + [f"![{p}]({p})" for p in report["figures"]] + [""]
    return "\n".join(lines)


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    return obj


def audit_run(
    run_dir: str | Path,
    attacks: Sequence[str] | None = None,
    shadows: int = 8,
    progress: Progress | None = None,
    seed: int = 0,
    *,
    shadow_epochs: int | None = None,
    shadow_training: str = "centralized",
    inversion_iterations: int = 300,
) -> dict[str, Any]:
    """Audit a finished run folder; writes audit.json, audit.md and PNGs into it and returns the report.

    ``attacks``: names from `AUDITS` ("lira" = online and offline); None runs every audit that fits.
    ``shadow_training``: "centralized" (default: `fl_core.training` with the passes the federated run
    made, rounds x local epochs x participation, or ``shadow_epochs``) or "federated" (each shadow
    repeats the run's federated training, DP included, on its half of the pool: more faithful, and
    several times slower on runs with many clients). ``progress(done, total, what)`` is called while shadow
    models train."""
    if shadow_training not in ("federated", "centralized"):
        raise AuditError(f"shadow_training must be 'federated' or 'centralized', got {shadow_training!r}")
    if isinstance(shadows, bool) or not isinstance(shadows, int) or shadows < 2 or shadows % 2:
        raise AuditError(f"--shadows must be an even number >= 2, got {shadows!r}")
    run = _read(run_dir)
    names, skipped = _choose(run, attacks)
    eps, delta = _proven(run)
    t0 = time.perf_counter()
    report: dict[str, Any] = {
        "run": str(run.path),
        "audits": names,
        "skipped": skipped,
        "seed": seed,
        "proven": {"epsilon": eps, "delta": delta, "dp_mode": run.privacy.get("dp_mode")},
        "budget": budget_report(run.privacy, config=run.config.to_dict(), membership=run.membership),
        "timings_s": {},
    }
    empirical: list[dict[str, Any]] = []
    mem_names = [n for n in names if n in MEMBERSHIP]
    if mem_names:
        t = time.perf_counter()
        report["membership"] = _membership(
            run, mem_names, shadows, seed, progress, shadow_epochs, shadow_training
        )
        report["timings_s"]["membership"] = time.perf_counter() - t
        for name, r in report["membership"]["global"]["attacks"].items():
            empirical.append(
                {
                    "source": f"{name} (global model)",
                    "epsilon": r["epsilon_lower_bound"]["epsilon"],
                    "kind": "lower bound, Clopper-Pearson over examples",
                    "rigorous": False,
                }
            )
            empirical.append(
                {
                    "source": f"{name} (global model), GDP",
                    "epsilon": r["gdp_epsilon_estimate"],
                    "kind": "estimate (Gaussian trade-off assumed)",
                    "rigorous": False,
                }
            )
    if "canary" in names:
        from audits.canaries import canary_audit

        t = time.perf_counter()
        c = run.canaries
        report["canary"] = canary_audit(c.directions, c.inserted, run.initial, run.final, delta=delta)
        report["timings_s"]["canary"] = time.perf_counter() - t
        empirical.append(
            {
                "source": "canaries, one run",
                "epsilon": report["canary"]["one_run"]["epsilon"],
                "kind": "lower bound at 95% (Steinke et al. 2023)",
                "rigorous": True,
            }
        )
        if report["canary"]["one_shot"]:
            empirical.append(
                {
                    "source": "canaries, one-shot",
                    "epsilon": report["canary"]["one_shot"]["epsilon"],
                    "kind": "estimate (Andrew et al. 2024)",
                    "rigorous": False,
                }
            )
            empirical.append(
                {
                    "source": "canaries, one-shot, equal widths",
                    "epsilon": report["canary"]["one_shot"]["epsilon_equal_width"],
                    "kind": "estimate (Andrew et al. 2024)",
                    "rigorous": False,
                }
            )
    images = None
    if "inversion" in names or "secagg" in names:
        t = time.perf_counter()
        inv = _inversion(run, "inversion" in names, "secagg" in names, seed, inversion_iterations)
        images = inv.pop("_images", None)
        report.update(inv)
        report["timings_s"]["inversion_and_secagg"] = time.perf_counter() - t
    report["empirical"] = empirical
    report["exceeds_proven"] = [
        e["source"]
        for e in empirical
        if eps is not None and "lower bound" in e["kind"] and e["epsilon"] is not None and e["epsilon"] > eps
    ]
    report["timings_s"]["total"] = time.perf_counter() - t0
    report["figures"] = _figures(run.path, report, images, eps, delta)
    (run.path / "audit.json").write_text(json.dumps(_clean(report), indent=2) + "\n")
    (run.path / "audit.md").write_text(_markdown(report))
    return report


def _figures(path: Path, report: dict[str, Any], images: Any, eps: float | None, delta: float) -> list[str]:
    out = []
    mem = report.get("membership")
    if mem:
        curves = {k: v["roc"] for k, v in mem["global"]["attacks"].items()}
        plots.plot_roc(path / "audit_roc_global.png", curves, epsilon=eps, delta=delta, title="global model")
        curves = {k: v["roc"] for k, v in mem["client"]["attacks"].items()}
        client = mem["client"]
        plots.plot_roc(
            path / "audit_roc_client.png",
            curves,
            epsilon=client.get("epsilon_allowed"),
            delta=delta,
            title=f"client {client['client_id']}'s local model",
        )
        out += ["audit_roc_global.png", "audit_roc_client.png"]
    bars = {e["source"]: e["epsilon"] for e in report.get("empirical", []) if e["epsilon"] is not None}
    if bars:
        plots.plot_epsilons(path / "audit_epsilons.png", bars, eps)
        out.append("audit_epsilons.png")
    if images is not None:
        lo, hi = float(np.min(images.originals)), float(np.max(images.originals))
        plots.plot_reconstructions(
            path / "audit_reconstructions.png",
            {
                "originals": list(images.originals),
                "plain update": [images.plain],
                "secure aggregate": [images.aggregate],
            },
            vmin=lo,
            vmax=hi,
        )
        out.append("audit_reconstructions.png")
    return out
