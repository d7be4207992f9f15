"""The budget report of a run: epsilon after every round by PLD and RDP, the mechanisms charged, per-client
ledgers under sample-level DP, and the plain-language statement.

Client-level runs (`dp.mode` central / distributed) keep their ledger in privacy.json; the report
replays it round by round (`dp.PrivacyAccountant.from_json` on each prefix). Sample-level runs
(`dp.mode = local`) keep each client's epsilon; the report rebuilds each client's ledger from the run
(every round a client completed charges DP-SGD with Poisson rate B/N for epochs * ceil(N/B) steps, the
event `fl_core` commits) and checks it against privacy.json.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from audits.errors import AuditError

__all__ = ["budget_markdown", "budget_report", "describe_event"]


def describe_event(event: Mapping[str, Any]) -> str:
    """A DpEvent dict (privacy.json) in a few words, e.g. 'Poisson(q=0.1) Gaussian(z=1.1)'."""
    kind = str(event.get("type", "?"))
    inner = event.get("event")
    if kind == "GaussianDpEvent":
        return f"Gaussian(z={event.get('noise_multiplier'):.4g})"
    if kind == "PoissonSampledDpEvent":
        return f"Poisson(q={event.get('sampling_probability'):.4g}) {describe_event(inner or {})}"
    if kind == "SampledWithoutReplacementDpEvent":
        return (f"sampled {event.get('sample_size')} of {event.get('source_dataset_size')} "
                f"{describe_event(inner or {})}")  # fmt: skip
    if kind == "SelfComposedDpEvent":
        return f"{event.get('count')} x [{describe_event(inner or {})}]"
    if kind == "ComposedDpEvent":
        return " + ".join(describe_event(e) for e in event.get("events", []))
    fields = ", ".join(f"{k}={v}" for k, v in event.items() if k not in ("type", "event", "events"))
    return f"{kind.removesuffix('DpEvent')}({fields})"


def _curve(ledger: Mapping[str, Any], delta: float, rounds: Sequence[int]) -> list[dict[str, Any]]:
    """epsilon (PLD and RDP) of the ledger's first r entries, for r in rounds."""
    from dp import PrivacyAccountant

    entries = list(ledger.get("entries", []))
    out = []
    for r in rounds:
        data = {**ledger, "entries": entries[:r], "max_epsilon": None}
        rep = PrivacyAccountant.from_json(json.dumps(data)).report(delta)
        out.append({"round": r, "epsilon_pld": rep.epsilon_pld, "epsilon_rdp": rep.epsilon_rdp})
    return out


def _points(n: int, max_points: int) -> list[int]:
    if n <= max_points:
        return list(range(1, n + 1))
    return sorted(set(np.linspace(1, n, max_points).round().astype(int).tolist()))


def _local_ledgers(
    privacy: Mapping[str, Any], config: Mapping[str, Any], membership: Mapping[str, Any], max_points: int
) -> dict[str, Any]:
    """Each client's DP-SGD ledger rebuilt from the run, and the worst client's epsilon per round."""
    from dp import PrivacyAccountant
    from dp import events as dp_events
    from dp.calibration import dp_sgd_steps

    train = config.get("train", {})
    batch, epochs = int(train.get("batch_size", 16)), int(train.get("local_epochs", 1))
    z, delta = float(privacy["noise_multiplier"]), float(privacy["delta"])
    sizes = [len(c) for c in membership.get("clients", [])]
    participants = [set(p) for p in membership.get("participants", [])]
    per_client: dict[str, Any] = {}
    ledgers: dict[int, PrivacyAccountant] = {}
    for cid, n in enumerate(sizes):
        b = min(batch, n)
        ev = dp_events.dp_sgd(z, b / n, dp_sgd_steps(n, b, epochs))
        acc = PrivacyAccountant(delta=delta)
        for r, who in enumerate(participants, start=1):
            if cid in who:
                acc.commit(ev, label="dp-sgd round", round_id=r)
        ledgers[cid] = acc
        rounds = len(acc.entries)
        per_client[str(cid)] = {
            "examples": n,
            "rounds_trained": rounds,
            "event_per_round": describe_event(json.loads(json.dumps(_event_dict(ev)))),
            "epsilon": acc.epsilon() if rounds else 0.0,
        }
    stated = {str(k): v for k, v in (privacy.get("client_epsilons") or {}).items()}
    agree = all(
        abs(per_client[c]["epsilon"] - float(e)) <= 1e-3 * max(1.0, float(e))
        for c, e in stated.items()
        if c in per_client
    )
    worst = max(per_client, key=lambda c: per_client[c]["epsilon"]) if per_client else None
    curve = []
    if worst is not None:
        w = int(worst)
        ledger = json.loads(ledgers[w].to_json())
        curve = _curve(ledger, delta, _points(len(ledger["entries"]), max_points))
    return {"clients": per_client, "worst_client": worst, "matches_privacy_json": bool(stated) and agree,
            "curve": curve}  # fmt: skip


def _event_dict(ev: Any) -> dict[str, Any]:
    from dp.accountant import event_to_dict

    return event_to_dict(ev)


def budget_report(
    privacy: Mapping[str, Any],
    *,
    config: Mapping[str, Any] | None = None,
    membership: Mapping[str, Any] | None = None,
    max_points: int = 30,
) -> dict[str, Any]:
    """The budget report from privacy.json (+ the config and membership.json for sample-level runs)."""
    if not isinstance(privacy, Mapping) or "dp_mode" not in privacy:
        raise AuditError("privacy.json has no dp_mode: not a privagg run's privacy statement")
    mode = privacy["dp_mode"]
    out: dict[str, Any] = {
        "dp_mode": mode,
        "statement": privacy.get("statement", ""),
        "epsilon": privacy.get("epsilon"),
        "delta": privacy.get("delta"),
        "neighbouring": privacy.get("neighbouring"),
        "secagg": privacy.get("secagg"),
    }
    if mode == "none":
        out["plain_language"] = (
            "This run used no differential privacy: nothing bounds what the model reveals about a client "
            "or an example. The attacks below measure what leaks; no epsilon is proven."
        )
        return out
    delta = float(privacy["delta"])
    if mode == "local":
        if config is None or membership is None:
            raise AuditError(
                "a sample-level (dp.mode=local) budget needs the run's config and membership.json"
            )
        local = _local_ledgers(privacy, config, membership, max_points)
        out["per_client"] = local["clients"]
        out["worst_client"] = local["worst_client"]
        out["ledgers_match_privacy_json"] = local["matches_privacy_json"]
        out["per_round"] = local["curve"]
        first = next(iter(local["clients"].values()), None)
        out["mechanisms"] = [
            {"mechanism": "DP-SGD per client per round", "example": first and first["event_per_round"]}
        ]
        level = "one training example of any one client"
    else:
        ledger = privacy.get("ledger")
        if not isinstance(ledger, Mapping):
            raise AuditError("privacy.json holds no ledger for a client-level DP run")
        entries = list(ledger.get("entries", []))
        out["per_round"] = _curve(ledger, delta, _points(len(entries), max_points))
        kinds = Counter((e.get("label", ""), describe_event(e["event"])) for e in entries)
        out["mechanisms"] = [{"label": lbl, "mechanism": d, "rounds": n} for (lbl, d), n in kinds.items()]
        level = "all of one client's data"
    eps = out["epsilon"]
    eps_txt = f"{eps:.3g}" if isinstance(eps, (int, float)) and math.isfinite(eps) else str(eps)
    out["plain_language"] = (
        f"Whatever an attacker does with the released model, it cannot tell whether {level} was used "
        f"much better than an (epsilon = {eps_txt}, delta = {delta:g}) guarantee allows: any membership "
        f"test's true-positive rate is at most e^{eps_txt} times its false-positive rate, plus {delta:g}. "
        "Smaller epsilon is stronger; above about 10 the guarantee says little."
    )
    return out


def budget_markdown(report: Mapping[str, Any]) -> str:
    """The report as a Markdown section."""
    lines = ["## Privacy budget", "", f"- mode: `{report['dp_mode']}`"]
    if report.get("statement"):
        lines.append(f"- accountant's statement: {report['statement']}")
    lines += ["", report.get("plain_language", ""), ""]
    if report.get("mechanisms"):
        lines += ["| mechanism charged | rounds |", "|---|---|"]
        for m in report["mechanisms"]:
            what = " ".join(str(m.get(k) or "") for k in ("label", "mechanism", "example")).strip()
            lines.append(f"| {what} | {m.get('rounds', 'every round trained')} |")
        lines.append("")
    if report.get("per_round"):
        lines += ["| round | epsilon (PLD) | epsilon (RDP) |", "|---:|---:|---:|"]
        for r in report["per_round"]:
            fmt = lambda v: "n/a" if v is None else f"{v:.4g}"  # noqa: E731
            lines.append(f"| {r['round']} | {fmt(r['epsilon_pld'])} | {fmt(r['epsilon_rdp'])} |")
        lines.append("")
    if report.get("per_client"):
        match = "match" if report.get("ledgers_match_privacy_json") else "DO NOT match"
        lines += [
            f"Per-client ledgers (worst: client {report['worst_client']}; rebuilt: {match} privacy.json):",
            "",
            "| client | examples | rounds trained | epsilon |",
            "|---:|---:|---:|---:|",
        ]
        for cid, c in report["per_client"].items():
            lines.append(f"| {cid} | {c['examples']} | {c['rounds_trained']} | {c['epsilon']:.4g} |")
        lines.append("")
    return "\n".join(lines)
