"""One experiment from a RunConfig: data -> partition -> clients -> rounds -> centralized baseline.

This is the library entry point behind `privagg run`. With `out=` it writes the run folder
(`fl_core.rundir`: config, metrics per round, summary, privacy.json, model and membership); your own
`Dataset` and torch model (or factory) plug in through `dataset=` and `model=`.
"""

from __future__ import annotations

import copy
import importlib
import inspect
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dp.accountant import epsilon_for
from dp.calibration import calibrate_noise, dp_sgd_steps
from dp.errors import DPError
from dp.local import check_model
from fl_core import checkpoint
from fl_core.canaries import CanaryPlan
from fl_core.centralized import matched_epochs, train_centralized
from fl_core.config import MODEL_NAMES, RunConfig
from fl_core.data import Dataset, load_dataset, partition
from fl_core.devices import assign_profiles
from fl_core.errors import ConfigError, DataError
from fl_core.models import build_model, get_flat, num_parameters, set_flat
from fl_core.privacy import PrivacySpec, spec_from_config
from fl_core.rundir import MEMBERSHIP_FILE, RunDirectory
from fl_core.sampling import ClientSampler
from fl_core.server import FaultModel, FederatedServer
from fl_core.strategies import Strategy, build_strategy
from fl_core.torch_client import LocalDP, TorchClient
from fl_core.training import as_tensors, evaluate
from fl_core.types import ModelVector, RoundConfig, RoundRecord


@dataclass
class ExperimentResult:
    """Everything a run produced: per-round history, final metrics, and the centralized curve."""

    config: RunConfig
    history: list[RoundRecord]
    final: dict[str, float]
    centralized: list[dict[str, float]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    privacy: dict[str, Any] = field(default_factory=dict)
    stopped: str | None = None
    initial_weights: ModelVector | None = None
    final_weights: ModelVector | None = None
    client_indices: list[np.ndarray] = field(default_factory=list)
    participants: list[tuple[int, ...]] = field(default_factory=list)
    canaries: CanaryPlan | None = None
    run_dir: Path | None = None

    def summary(self) -> dict[str, Any]:
        """FL vs centralized in one dict (summary.json)."""
        key = "accuracy" if "accuracy" in self.final else "r2"
        cen_final = self.centralized[-1] if self.centralized else {}
        out: dict[str, Any] = {
            "primary_metric": key,
            "rounds": len(self.history),
            "fl": self.final,
            "centralized": cen_final,
            "bytes_down_total": sum(r.bytes_down for r in self.history),
            "bytes_up_total": sum(r.bytes_up for r in self.history),
            "clients_dropped_total": sum(r.dropped for r in self.history),
            "updates_rejected_total": sum(r.rejected for r in self.history),
            "stopped": self.stopped,
            "privacy": {k: v for k, v in self.privacy.items() if k not in ("ledger", "client_epsilons")},
            **self.info,
        }
        if cen_final:
            out["gap_to_centralized"] = cen_final[key] - self.final.get(key, float("nan"))
            out["rounds_to_95pct_centralized"] = rounds_to_fraction(self.history, key, 0.95 * cen_final[key])
        return out


def rounds_to_fraction(history: list[RoundRecord], key: str, target: float) -> int | None:
    """First round whose test metric reaches `target` (None if never)."""
    for rec in history:
        if rec.test.get(key, float("-inf")) >= target:
            return rec.round
    return None


def build_strategy_from(config: RunConfig) -> Strategy:
    s = config.strategy
    if s.name in ("fedavg", "fedprox"):
        params: dict[str, Any] = {"server_lr": s.server_lr or 1.0}
        if s.name == "fedprox":
            params["proximal_mu"] = s.proximal_mu
    else:
        params = {"server_lr": s.server_lr or 0.01, "beta1": s.beta1, "beta2": s.beta2, "tau": s.tau}
    return build_strategy(s.name, **params)


def client_partition(config: RunConfig, ds: Dataset) -> list[np.ndarray]:
    """Each client's training examples (indices into the train split), reproducible from the seed."""
    d = config.data
    parts = partition(
        ds.y_train,
        d.num_clients,
        d.partition,
        seed=config.run.seed,
        alpha=d.alpha,
        shards_per_client=d.shards_per_client,
        quantity_sigma=d.quantity_sigma,
        groups=ds.groups_train,
        min_size=d.min_size,
    )
    return [np.asarray(p, dtype=np.int64) for p in parts]


def make_clients(
    config: RunConfig,
    ds: Dataset,
    workspace: torch.nn.Module,
    local_dp: LocalDP | None = None,
    parts: list[np.ndarray] | None = None,
) -> list[TorchClient]:
    parts = client_partition(config, ds) if parts is None else parts
    return [
        TorchClient(i, ds.x_train[idx], ds.y_train[idx], ds.task, workspace, dp_sgd=local_dp)
        for i, idx in enumerate(parts)
    ]


ModelSource = torch.nn.Module | Callable[..., torch.nn.Module]


def _import_path(ref: str, what: str) -> Callable[..., Any]:
    module_name, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{what} {ref!r} cannot be imported: {exc}") from None
    if not callable(obj):
        raise ConfigError(f"{what} {ref!r} is not callable")
    return obj


def resolve_dataset(config: RunConfig) -> Dataset:
    """The config's dataset with its seeded split: bundled, `medmnist:PATH`, or `package.module:function`."""
    return load_dataset(config.data.dataset, test_fraction=config.data.test_fraction, seed=config.run.seed)


def resolve_model(config: RunConfig, ds: Dataset, model: ModelSource | None = None) -> torch.nn.Module:
    """A fresh model: the zoo's by name, a copy of a given module, or what a factory / import path builds."""
    if model is None:
        name = config.model.name
        if name in MODEL_NAMES:
            return build_model(name, ds.input_shape, ds.num_outputs)
        model = _import_path(name, "model.name")
    if isinstance(model, torch.nn.Module):
        return copy.deepcopy(model)
    try:
        n_params = len(inspect.signature(model).parameters)
    except (TypeError, ValueError):
        n_params = 2
    built = model(ds.input_shape, ds.num_outputs) if n_params >= 2 else model()
    if not isinstance(built, torch.nn.Module):
        raise ConfigError(f"the model factory returned {type(built).__name__}, not a torch.nn.Module")
    return built


def resolve_noise(config: RunConfig, sampler: ClientSampler, client_sizes: list[int]) -> float:
    """The noise multiplier: as given, or calibrated (dp_accounting, rounded toward more privacy) so that
    config.run.rounds rounds stay within dp.target_epsilon. Under local DP the calibration assumes the
    smallest client takes part in every round (the worst case)."""
    d = config.dp
    if d.noise_multiplier is not None:
        return d.noise_multiplier
    if d.target_epsilon is None:
        return 1.0
    try:
        if d.mode == "local":
            return _calibrate_local(config, client_sizes)
        if d.mode == "distributed":  # the headline adversary is the server: Gaussian(z/2) every round
            return 2.0 * calibrate_noise(d.target_epsilon, d.delta, 1.0, config.run.rounds)
        return calibrate_noise(d.target_epsilon, d.delta, sampler.rate, config.run.rounds)
    except DPError as exc:
        raise ConfigError(f"dp.target_epsilon={d.target_epsilon}: {exc}") from None


def run_experiment(
    config: RunConfig,
    *,
    dataset: Dataset | None = None,
    model: ModelSource | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    resume: bool = False,
    on_round: Callable[[RoundRecord], None] | None = None,
    on_centralized_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> ExperimentResult:
    """Run federated training (and the centralized baseline if enabled); deterministic under run.seed.

    `dataset` (a `fl_core.data.Dataset`) and `model` (a torch module, copied, or a factory called as
    factory(input_shape, num_outputs)) replace the config's data.dataset / model.name. With `out`, the
    run folder is written there (through `OUT.partial`, renamed when the run completes; a failed run
    keeps the partial folder with every round it finished and error.txt) with a checkpoint after every
    round; `resume=True` continues `OUT.partial` from its last checkpoint (the same final model and
    ledger as an uninterrupted run with the same seeds; no round is charged twice).
    """
    if out is None:
        if resume:
            raise ConfigError("resume needs the run folder (out=...)")
        return _run(config, dataset, model, on_round, on_centralized_epoch)
    prepared = _prepare(config, dataset, model)  # every validation happens before anything is written
    rundir = RunDirectory(out, overwrite=overwrite)
    if resume:
        rundir.reopen(config.to_dict())
    else:
        rundir.create()
    try:
        if not resume:
            rundir.write_config(config.to_dict())
        config_text = rundir.config_text()

        def restore(server: FederatedServer) -> None:
            if resume:
                server.load_state(checkpoint.load(rundir.staging, config_text))
                rundir.rewrite_rounds(server.history)

        def record(server: FederatedServer, rec: RoundRecord) -> None:
            checkpoint.save(rundir.staging, server.state(), config_text)  # first: a crash after it
            rundir.append_round(rec)  # loses at most this metrics line, rewritten on resume
            if on_round is not None:
                on_round(rec)

        result = _run(
            config, dataset, model, record, on_centralized_epoch, restore=restore, prepared=prepared
        )
        rundir.write_json("privacy.json", result.privacy)
        if result.canaries is not None:
            c = result.canaries
            rundir.write_canaries(c.directions, c.inserted, c.norm)
        rundir.write_json(MEMBERSHIP_FILE, membership_record(config, result, from_object=dataset is not None))
        sha = rundir.write_model(result.initial_weights, result.final_weights)  # type: ignore[arg-type]
        result.run_dir = rundir.finish({**result.summary(), "model_file": "model.npz", "model_sha256": sha})
    except BaseException as exc:
        rundir.fail(exc)
        raise
    return result


def membership_record(config: RunConfig, result: ExperimentResult, *, from_object: bool) -> dict[str, Any]:
    """membership.json: which train-split examples each client held and who completed each round."""
    d = config.data
    return {
        "dataset": result.info.get("dataset", d.dataset),
        "dataset_source": "object passed to run_experiment" if from_object else d.dataset,
        "test_fraction": d.test_fraction,
        "seed": config.run.seed,
        "num_train": int(sum(len(ix) for ix in result.client_indices)),
        "clients": [ix.tolist() for ix in result.client_indices],
        "canary_client_ids": result.info.get("canary_client_ids", []),
        "participants": [list(p) for p in result.participants],
    }


@dataclass
class _Prepared:
    """Everything built and validated before a run folder is created (bad input writes nothing)."""

    ds: Dataset
    workspace: torch.nn.Module
    eval_model: torch.nn.Module
    w0: ModelVector
    parts: list[np.ndarray]
    n_real: int
    canaries: CanaryPlan | None
    sampler: ClientSampler
    profiles: list[Any]
    spec: PrivacySpec
    server: FederatedServer
    evaluate_global: Callable[[ModelVector], dict[str, float]]


def _prepare(config: RunConfig, dataset: Dataset | None, model: ModelSource | None) -> _Prepared:
    torch.set_num_threads(config.run.threads)
    seed = config.run.seed
    ds = dataset if dataset is not None else resolve_dataset(config)
    if not isinstance(ds, Dataset):
        raise DataError(f"dataset must be a fl_core.data.Dataset, got {type(ds).__name__}")
    torch.manual_seed(seed)
    workspace = resolve_model(config, ds, model)
    w0 = get_flat(workspace)
    local_dp = None
    if config.dp.mode == "local":
        check_model(workspace)
        local_dp = LocalDP(1.0, config.dp.clip_norm, config.dp.delta, config.dp.seed)
    parts = client_partition(config, ds)
    clients: list[Any] = make_clients(config, ds, workspace, local_dp, parts)
    n_real = len(clients)
    canaries = None
    if config.audit.canary_clients:
        norm = config.audit.canary_norm or config.dp.clip_norm
        canaries = CanaryPlan.draw(config.audit.canary_clients, w0.size, norm, seed)
        clients.extend(canaries.clients(first_id=n_real))
    eval_model = copy.deepcopy(workspace)
    xs, ys = as_tensors(ds.x_test, ds.y_test, ds.task)

    def evaluate_global(weights: ModelVector) -> dict[str, float]:
        set_flat(eval_model, weights)
        return evaluate(eval_model, xs, ys, ds.task)

    s = config.sampling
    sampler = ClientSampler(
        num_clients=len(clients),
        mode=s.mode,
        clients_per_round=s.clients_per_round or len(clients),
        rate=s.rate,
    )
    sizes = [c.num_examples for c in clients]
    z = resolve_noise(config, sampler, sizes)
    if local_dp is not None:
        local_dp = replace(local_dp, noise_multiplier=z)
        for c in clients:
            c.dp_sgd = local_dp
    profiles = assign_profiles(
        len(clients), config.devices.mix, np.random.default_rng(np.random.SeedSequence([seed, 7]))
    )
    spec = privacy_spec(config, z, sizes)
    t = config.train
    base = RoundConfig(
        round=0, local_epochs=t.local_epochs, batch_size=t.batch_size, lr=t.lr, momentum=t.momentum, seed=seed
    )
    server = FederatedServer(
        clients,
        build_strategy_from(config),
        w0,
        base_config=base,
        sampler=sampler,
        evaluate_fn=evaluate_global,
        faults=FaultModel(dropout_rate=s.dropout_rate, deadline_s=s.deadline_s, profiles=profiles),
        privacy=spec,
        local_event=(lambda cid: local_dp.event(sizes[cid], base)) if local_dp is not None else None,
        upload_bits=t.upload_bits,
        seed=seed,
    )
    cohort = max(2, round(sampler.expected_cohort)) if s.mode == "poisson" else sampler.clients_per_round
    server.aggregator.check(cohort, server.mechanism)  # e.g. secagg over one client, or no safe threshold
    server.mechanism.check(cohort)  # e.g. a discrete Gaussian that does not fit its bits
    return _Prepared(
        ds, workspace, eval_model, w0, parts, n_real, canaries, sampler, profiles, spec, server,
        evaluate_global,
    )  # fmt: skip


def _run(
    config: RunConfig,
    dataset: Dataset | None,
    model: ModelSource | None,
    on_round: Callable[..., None] | None,
    on_centralized_epoch: Callable[[int, dict[str, float]], None] | None,
    *,
    restore: Callable[[FederatedServer], None] | None = None,
    prepared: _Prepared | None = None,
) -> ExperimentResult:
    p = prepared or _prepare(config, dataset, model)
    ds, workspace, eval_model, w0, server = p.ds, p.workspace, p.eval_model, p.w0, p.server
    parts, n_real, canaries, sampler = p.parts, p.n_real, p.canaries, p.sampler
    profiles, spec = p.profiles, p.spec
    evaluate_global, clients, seed, t = p.evaluate_global, server.clients, config.run.seed, config.train
    sizes = [c.num_examples for c in clients]
    if restore is not None:
        restore(server)
        left = config.run.rounds - len(server.history)
        if left > 0:
            server.run(left, on_round=(lambda rec: on_round(server, rec)) if on_round else None)
    else:
        server.run(config.run.rounds, on_round=on_round)
    history = server.history
    final = evaluate_global(server.weights)
    centralized: list[dict[str, float]] = []
    epochs = matched_epochs(config.run.rounds, t.local_epochs, sampler.expected_cohort, len(clients))
    if config.centralized.enabled:
        centralized = train_centralized(
            eval_model,
            w0,
            ds.x_train,
            ds.y_train,
            ds.x_test,
            ds.y_test,
            ds.task,
            epochs=epochs,
            batch_size=t.batch_size,
            lr=t.lr,
            momentum=t.momentum,
            seed=seed,
            on_epoch=on_centralized_epoch,
        )
    info = {
        "dataset": ds.name,
        "task": ds.task,
        "model": config.model.name if model is None else type(workspace).__name__,
        "num_parameters": num_parameters(workspace),
        "num_clients": n_real,
        "client_sizes": sizes[:n_real],
        "centralized_epochs": epochs if config.centralized.enabled else 0,
        "device_profiles": dict(sorted(Counter(p.name for p in profiles).items())),
    }
    if canaries is not None:
        info["canary_client_ids"] = list(range(n_real, len(clients)))
    privacy = privacy_summary(config, spec, server)
    return ExperimentResult(
        config,
        history,
        final,
        centralized,
        info,
        privacy,
        server.stopped,
        initial_weights=w0,
        final_weights=server.weights.copy(),
        client_indices=parts,
        participants=list(server.participants),
        canaries=canaries,
    )


def _calibrate_local(config: RunConfig, client_sizes: list[int]) -> float:
    """DP-SGD noise for the worst client, assuming it takes part in every round.

    A client's cost depends on its size N through q = B/N and steps = epochs * ceil(N/B), so the
    smallest client is not always the worst (one just above B takes nearly twice the steps at q ~ 1).
    RDP (fast) ranks the distinct sizes at a reference z; the three worst are calibrated by PLD and the
    largest z is used.
    """
    d, t = config.dp, config.train

    def cost(n: int) -> tuple[float, int]:
        b = min(t.batch_size, n)
        return b / n, config.run.rounds * dp_sgd_steps(n, b, t.local_epochs)

    sizes = sorted(set(client_sizes))
    ranked = sorted(sizes, key=lambda n: epsilon_for(1.0, *cost(n), d.delta, method="rdp"), reverse=True)
    return max(calibrate_noise(d.target_epsilon, d.delta, *cost(n)) for n in ranked[:3])


def privacy_spec(config: RunConfig, noise_multiplier: float, client_sizes: list[int]) -> PrivacySpec:
    """The run's privacy settings; secagg's weight cap defaults to the largest client (exact counts)."""
    return spec_from_config(config, noise_multiplier, config.secagg.weight_cap or max(client_sizes))


def privacy_summary(config: RunConfig, spec: PrivacySpec, server: FederatedServer) -> dict[str, Any]:
    """privacy.json: what was promised, what it cost, and the caveats in plain words."""
    out: dict[str, Any] = {"dp_mode": spec.mode, "secagg": spec.secagg, "mechanism": server.mechanism.name}
    if spec.mode == "none":
        out["statement"] = "no differential privacy: the trained model carries no formal privacy guarantee"
    else:
        mech = server.mechanism
        charged = getattr(mech, "accountant", None)
        out.update(
            {
                "delta": spec.delta,
                "noise_multiplier": spec.noise_multiplier,
                "clip_norm": spec.clip_norm,
                "max_epsilon": spec.max_epsilon,
                "epsilon": mech.epsilon(),
                "rounds_charged": len(charged.entries) if charged is not None else len(server.history),
                "noise_seeded": spec.seed is not None,
            }
        )
        out.update(mech.summary())
        if spec.client_level_dp:
            headline = mech.summary().get("headline_adversary", "observer_of_model")
            against = {
                "observer_of_model": "against anyone who sees the released models but not the cohorts",
                "server_knowing_cohort": "against the server, which draws the cohorts (no amplification)",
            }[headline]
            level = f"client-level (one client's whole data) {against}"
            sampled = (
                "add or remove one client (Poisson sampling)"
                if config.sampling.mode == "poisson"
                else "replace one client (fixed cohorts), accounted by RDP"
            )
            out["neighbouring"] = {
                "observer_of_model": sampled,
                "server_knowing_cohort": "replace one client's data in a round it took part in (z/2)",
            }
        else:
            level = "sample-level (one training example), worst client"
            out["neighbouring"] = (
                "add or remove one training example of a client (DP-SGD with Poisson batches); each client "
                "has its own ledger, charged for every round it trained"
            )
            modes = {getattr(c, "grad_sample_mode", None) for c in server.clients} - {None}
            out["grad_sample_mode"] = sorted(modes)  # chosen by dp.local: the fastest the model supports
        eps = out["epsilon"]
        out["statement"] = f"({eps:.3g}, {spec.delta:g})-DP at the {level} after {len(server.history)} rounds"
        if spec.mode == "distributed":
            out["caveat_dropouts"] = (
                "each client adds noise sized for the smallest cohort secagg lets a round finish with "
                f"(ceil((1 - {spec.dropout_tolerance}) x started clients)); a round that finishes with more "
                "survivors carries more noise than accounted, never less"
            )
        out["not_covered"] = (
            "DP covers the model updates only. Who was sampled, how many clients completed or dropped, "
            "timing and byte counts are released as they are; a secure-aggregation round that aborts "
            "(too few survivors) is not charged, although whether it aborts can depend on the cohort size."
        )
        if spec.seed is not None:
            out["warning"] = "noise drawn from a user-given seed: reproducible, NOT for production"
    if server.stopped:
        out["stopped"] = server.stopped
    return out
