"""The privacy ledger: events with labels/round ids; epsilon by PLD (reported) and RDP (cross-check).

PLD (Koskela et al. 2020, dp_accounting) is the number privagg reports; RDP (Mironov 2017) is the
cross-check and the fallback for events PLD cannot compose (fixed cohorts without replacement,
zCDP events of the discrete mechanism). Identical events are grouped into one SelfComposedDpEvent
before composing, so 10,000 rounds cost one FFT self-composition, not 10,000 convolutions.

A ledger of Poisson-sampled Gaussians (add/remove; one (z, q) or a few) reports `quick_epsilon`'s
certified bound (pessimistic PLD on a grid chosen per query, within 0.5% above the fine PLD, never
below the true epsilon): `epsilon`, `projected_epsilon`, `can_spend`, `report` and
`epsilon_for(method="pld")` all give that one number. Any other ledger (unsampled or mixed event types,
replace-one neighbours) and `delta_for` keep dp_accounting's PLD on the fixed `pld_discretization` grid.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import json
import logging
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import attr
import dp_accounting as dpa
import numpy as np
from dp_accounting import dp_event as _dp_event
from dp_accounting.pld import pld_privacy_accountant as _pld
from dp_accounting.pld import privacy_loss_distribution as _PLD
from dp_accounting.rdp import rdp_privacy_accountant as _rdp

from dp import events as _events
from dp._checks import check_count, check_delta, check_epsilon, check_positive, check_rate
from dp.errors import BudgetExceededError, InvalidPrivacyParameterError

Method = Literal["pld", "rdp", "auto"]
#: PLD grid: dp_accounting's own default; within 0.01% of a 1e-5 grid at epsilon ~ 1-10 (see docs/dp.md).
DEFAULT_PLD_DISCRETIZATION = 1e-4
_JSON_VERSION = 1


class Neighbouring(str, enum.Enum):
    """Neighbouring relation: add/remove one record (Poisson sampling) or replace one (fixed cohorts)."""

    ADD_OR_REMOVE = "add_or_remove"
    REPLACE = "replace"

    def to_dpa(self) -> dpa.NeighboringRelation:
        if self is Neighbouring.ADD_OR_REMOVE:
            return dpa.NeighboringRelation.ADD_OR_REMOVE_ONE
        return dpa.NeighboringRelation.REPLACE_ONE


# ---------------------------------------------------------------- event <-> JSON (no pickle)


def event_to_dict(event: dpa.DpEvent) -> dict[str, Any]:
    """A DpEvent as plain JSON data: {"type": class name, fields...}, nested events recursively."""
    if not isinstance(event, dpa.DpEvent) or not attr.has(type(event)):
        raise InvalidPrivacyParameterError(f"event must be a dp_accounting DpEvent, found {event!r}")
    out: dict[str, Any] = {"type": type(event).__name__}
    for field in attr.fields(type(event)):
        value = getattr(event, field.name)
        if isinstance(value, dpa.DpEvent):
            value = event_to_dict(value)
        elif isinstance(value, list | tuple):
            value = [event_to_dict(v) if isinstance(v, dpa.DpEvent) else v for v in value]
        out[field.name] = value
    return out


def event_from_dict(data: dict[str, Any]) -> dpa.DpEvent:
    """Inverse of event_to_dict; only classes defined in dp_accounting.dp_event are accepted."""
    name = data.get("type") if isinstance(data, dict) else None
    cls = getattr(_dp_event, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, dpa.DpEvent) and attr.has(cls)):
        raise InvalidPrivacyParameterError(f"unknown DpEvent type in ledger JSON: {name!r}")
    kwargs: dict[str, Any] = {}
    for field in attr.fields(cls):
        if field.name not in data:
            continue
        value = data[field.name]
        if isinstance(value, dict) and "type" in value:
            value = event_from_dict(value)
        elif isinstance(value, list):
            value = [event_from_dict(v) if isinstance(v, dict) and "type" in v else v for v in value]
        kwargs[field.name] = value
    return cls(**kwargs)


def _event_key(event: dpa.DpEvent) -> str:
    return json.dumps(event_to_dict(event), sort_keys=True)


def _flatten(event: dpa.DpEvent, count: int, counts: Counter[str]) -> None:
    """Canonical grouping: SelfComposed(e, k) x c -> e x (k c); Composed([a, b]) x c -> a x c, b x c."""
    if isinstance(event, dpa.SelfComposedDpEvent):
        if not isinstance(event.count, int) or isinstance(event.count, bool) or event.count < 1:
            raise InvalidPrivacyParameterError(
                f"SelfComposedDpEvent count must be an int >= 1, found {event.count!r}"
            )
        _flatten(event.event, event.count * count, counts)
    elif isinstance(event, dpa.ComposedDpEvent):
        for part in event.events:
            _flatten(part, count, counts)
    elif not isinstance(event, dpa.NoOpDpEvent):
        counts[_event_key(event)] += count


# ---------------------------------------------------------------- the pure computation (cached)


def _compose(
    groups: tuple[tuple[str, int], ...], method: str, relation: Neighbouring, discretization: float
) -> dpa.PrivacyAccountant:
    if method == "pld":
        acc: dpa.PrivacyAccountant = _pld.PLDAccountant(relation.to_dpa(), discretization)
    else:
        acc = _rdp.RdpAccountant(neighboring_relation=relation.to_dpa())
    for key, count in groups:
        acc.compose(event_from_dict(json.loads(key)), count)
    return acc


def _supports(groups: tuple[tuple[str, int], ...], method: str, relation: Neighbouring) -> bool:
    acc = (
        _pld.PLDAccountant(relation.to_dpa())
        if method == "pld"
        else _rdp.RdpAccountant(neighboring_relation=relation.to_dpa())
    )
    return all(acc.supports(event_from_dict(json.loads(k))) for k, _ in groups)


#: the most grid points a base PLD's privacy-loss range is cut into: keeps every query in memory and under
#: ~2 s on one loaded core (z = 0.3, q = 0.1 asked for 360,000 points and 3.9 s at the 1e-4 grid)
PLD_MAX_POINTS = 60_000


@functools.lru_cache(maxsize=1024)
def privacy_loss_span(noise_multiplier: float, sampling_rate: float = 1.0) -> float:
    """Width of the privacy-loss range dp_accounting discretizes for a (Poisson-subsampled) Gaussian of
    multiplier z: the loss between its tail-truncation points (mass 1e-15), the wider of add and remove.
    Cheap (no discretization): it sizes the grid before any PLD is built."""
    from dp_accounting.pld import privacy_loss_mechanism as plm

    span = 0.0
    for adjacency in (plm.AdjacencyType.ADD, plm.AdjacencyType.REMOVE):
        loss = plm.GaussianPrivacyLoss(
            noise_multiplier, sampling_prob=sampling_rate, adjacency_type=adjacency
        )
        tail = loss.privacy_loss_tail()
        lo, hi = tail.lower_x_truncation, tail.upper_x_truncation
        span = max(span, abs(float(loss.privacy_loss(lo)) - float(loss.privacy_loss(hi))))
    return span


def pld_grid(noise_multiplier: float, discretization: float, sampling_rate: float = 1.0) -> float:
    """The discretization actually used for a Gaussian of multiplier z sampled at rate q: the requested one,
    or coarser when the privacy-loss range would need more than PLD_MAX_POINTS points (z = 1e-3 asked for
    38 GiB; z = 0.3 at q = 0.1 for 3.9 s). dp_accounting rounds the loss pessimistically on any grid, so a
    coarser grid can only raise epsilon, never lower it; where it coarsens, epsilon is large and the
    change is below 1e-4 relative."""
    span = privacy_loss_span(noise_multiplier, sampling_rate)
    return max(discretization, span / PLD_MAX_POINTS)


@functools.lru_cache(maxsize=256)  # one per (z, q): clients with different dataset sizes have different q
def _base_pld(key: str, relation: Neighbouring, discretization: float) -> _PLD.PrivacyLossDistribution:
    """PLD of one Poisson-sampled Gaussian (the costly part, ~0.3 s): built once per event and reused."""
    ev = event_from_dict(json.loads(key))
    return _PLD.from_gaussian_mechanism(
        standard_deviation=ev.event.noise_multiplier,
        value_discretization_interval=pld_grid(
            ev.event.noise_multiplier, discretization, ev.sampling_probability
        ),
        sampling_prob=ev.sampling_probability,
        neighboring_relation=relation.to_dpa(),
    )


#: the most grid points a self-composition may reach (its support grows with the rounds: z = 0.3 at
#: q = 0.1 over 10,000 rounds reached 4 million points and 2.8 s)
PLD_MAX_COMPOSED_POINTS = 500_000
#: the most self-compositions of one event PLD answers (dp_accounting's dense self-composition took 1.2 s
#: at 10^6 rounds of z = 5, q = 0.001 and 65 s at 10^7); beyond, a typed refusal that names RDP
PLD_MAX_ROUNDS = 1_000_000
#: the fewest grid points a base PLD may be coarsened to for a long composition; below it, a typed refusal
PLD_MIN_BASE_POINTS = 1_000


def _composed_width(pld: _PLD.PrivacyLossDistribution, count: int) -> float:
    """Predicted width of the privacy-loss support of `count` self-compositions: count * mean plus 8
    standard deviations each side (dp_accounting truncates tails of mass 1e-15), from the remove pmf."""
    pmf = getattr(pld, "_pmf_remove", None)
    if pmf is not None and not hasattr(pmf, "_probs") and hasattr(pmf, "to_dense_pmf"):
        pmf = pmf.to_dense_pmf()  # a small (sparse) base: its moments all the same
    probs = getattr(pmf, "_probs", None)
    if probs is None:  # a sparse or changed pmf: no prediction, no coarsening
        return 0.0
    grid = float(pmf._discretization)  # type: ignore[union-attr]
    losses = (np.arange(len(probs)) + int(pmf._lower_loss)) * grid  # type: ignore[union-attr]
    mass = float(probs.sum())
    if mass <= 0:
        return 0.0
    mean = float(probs @ losses) / mass
    var = max(float(probs @ (losses - mean) ** 2) / mass, 0.0)
    return abs(mean) * count + 16.0 * math.sqrt(var * count) + float(losses[-1] - losses[0])


def _composition_grid(key: str, count: int, relation: Neighbouring, discretization: float) -> float:
    """The grid on which `count` self-compositions of `key`'s PLD stay bounded: the requested one, coarser
    where the loss range (PLD_MAX_POINTS) or the composed support (PLD_MAX_COMPOSED_POINTS) needs it;
    a typed refusal beyond PLD_MAX_ROUNDS or where the base would keep under PLD_MIN_BASE_POINTS points."""
    if count > PLD_MAX_ROUNDS:
        raise InvalidPrivacyParameterError(
            f"PLD composes at most {PLD_MAX_ROUNDS:,} rounds of one mechanism in bounded time, asked for "
            f"{count:,}: ask method='rdp', which is looser but costs the same at any number of rounds"
        )
    ev = event_from_dict(json.loads(key))
    grid = pld_grid(ev.event.noise_multiplier, discretization, ev.sampling_probability)
    width = _composed_width(_base_pld(key, relation, grid), count)
    if width / grid <= PLD_MAX_COMPOSED_POINTS:
        return grid
    coarse = width / PLD_MAX_COMPOSED_POINTS
    span = privacy_loss_span(ev.event.noise_multiplier, ev.sampling_probability)
    if span / coarse < PLD_MIN_BASE_POINTS:
        raise InvalidPrivacyParameterError(
            f"PLD cannot compose {count} rounds of {_describe(ev)} in bounded time and memory (the "
            f"privacy loss spreads over ~{width:.3g} nats, epsilon is in the thousands or more): ask "
            "method='rdp', which is looser but costs the same at any number of rounds"
        )
    return coarse


def _describe(ev: dpa.DpEvent) -> str:
    if isinstance(ev, dpa.PoissonSampledDpEvent) and isinstance(ev.event, dpa.GaussianDpEvent):
        return f"a Gaussian of multiplier {ev.event.noise_multiplier} sampled at {ev.sampling_probability}"
    return type(ev).__name__


def _is_sampled_gaussian(key: str) -> bool:
    ev = event_from_dict(json.loads(key))
    return (
        isinstance(ev, dpa.PoissonSampledDpEvent)
        and isinstance(ev.event, dpa.GaussianDpEvent)
        and 0 < ev.sampling_probability
        and ev.event.noise_multiplier > 0
    )


class _ComposedPLD:
    """Adapter giving a composed PLD the accountant interface (get_epsilon / get_delta)."""

    def __init__(self, pld: _PLD.PrivacyLossDistribution) -> None:
        self._pld = pld

    def get_epsilon(self, target_delta: float) -> float:
        return self._pld.get_epsilon_for_delta(target_delta)

    def get_delta(self, target_epsilon: float) -> float:
        return self._pld.get_delta_for_epsilon(target_epsilon)


def _is_plain_gaussian(key: str) -> bool:
    ev = event_from_dict(json.loads(key))
    return isinstance(ev, dpa.GaussianDpEvent) and ev.noise_multiplier > 0


class _AnalyticGaussian:
    """A ledger of unsampled Gaussians: T of multiplier z compose exactly into one Gaussian of multiplier
    (sum_i T_i / z_i^2)^(-1/2) (the privacy loss is Gaussian), whose privacy profile dp_accounting gives in
    closed form (`GaussianPrivacyLoss`, Balle and Wang 2018): exact, and independent of the ledger's
    length (the server-side ledger of every client-level run is one)."""

    def __init__(self, sigma: float) -> None:
        from dp_accounting.pld.privacy_loss_mechanism import GaussianPrivacyLoss

        self._loss = GaussianPrivacyLoss(sigma, sensitivity=1.0)

    def get_delta(self, target_epsilon: float) -> float:
        return float(self._loss.get_delta_for_epsilon(target_epsilon))

    def get_epsilon(self, target_delta: float) -> float:
        if self.get_delta(0.0) <= target_delta:
            return 0.0
        lo, hi = 0.0, 1.0
        while self.get_delta(hi) > target_delta:
            lo, hi = hi, 2.0 * hi
        for _ in range(100):  # delta(eps) is decreasing: bisect, and report the upper end (never below)
            mid = 0.5 * (lo + hi)
            if self.get_delta(mid) > target_delta:
                lo = mid
            else:
                hi = mid
            if hi - lo <= 1e-12 * max(1.0, hi):
                break
        return hi


@functools.lru_cache(maxsize=256)
def _base_rdp(key: str, relation: Neighbouring) -> tuple[np.ndarray, np.ndarray]:
    """(orders, RDP curve) of one event on dp_accounting's default orders, built once and reused: RDP
    composes by addition (the RdpAccountant adds count * curve), and some curves are costly to build
    (sampling without replacement: ~0.3 s, once per round without this cache)."""
    acc = _rdp.RdpAccountant(neighboring_relation=relation.to_dpa())
    acc.compose(event_from_dict(json.loads(key)), 1)
    orders, rdp = np.asarray(acc.orders, dtype=np.float64), acc.rdp
    orders.setflags(write=False)
    rdp.setflags(write=False)
    return orders, rdp


class _ComposedRDP:
    """A composed RDP curve with the accountant interface; the conversions are dp_accounting's own."""

    def __init__(self, orders: np.ndarray, rdp: np.ndarray) -> None:
        self._orders, self._rdp = orders, rdp

    def get_epsilon(self, target_delta: float) -> float:
        return _rdp.compute_epsilon(self._orders, self._rdp, target_delta)[0]

    def get_delta(self, target_epsilon: float) -> float:
        return _rdp.compute_delta(self._orders, self._rdp, target_epsilon)[0]


@functools.lru_cache(maxsize=4)  # each entry holds a composed PLD (a few MB at 1,000 rounds)
def _cached_accountant(
    groups: tuple[tuple[str, int], ...], method: str, relation: Neighbouring, discretization: float
) -> dpa.PrivacyAccountant | _ComposedPLD | _ComposedRDP:
    """Same numbers as dp_accounting's PLD and RDP accountants, but each event's base PLD or RDP curve
    is built once and cached (RDP composes exactly by count * curve)."""
    if (
        method == "pld"
        and relation == Neighbouring.ADD_OR_REMOVE  # under replace dp_accounting doubles the sensitivity
        and all(_is_plain_gaussian(k) for k, _ in groups)
    ):
        mu2 = sum(count / event_from_dict(json.loads(k)).noise_multiplier ** 2 for k, count in groups)
        return _AnalyticGaussian(mu2**-0.5)
    if method == "pld" and all(_is_sampled_gaussian(k) for k, _ in groups):
        # one self-composition per group, as dp_accounting does: composing round by round onto a
        # remembered PLD would be faster but truncates the tails once per round, so the infinity mass
        # (and epsilon at small delta) would drift up with the ledger's history (review)
        # one grid for every group (dp_accounting composes PLDs of one discretization only)
        grid = max(_composition_grid(key, count, relation, discretization) for key, count in groups)
        pld = None
        for key, count in groups:
            part = _base_pld(key, relation, grid).self_compose(count)
            pld = part if pld is None else pld.compose(part)
        return _ComposedPLD(pld)
    if method == "rdp":
        orders, total = None, None
        for key, count in groups:
            orders, curve = _base_rdp(key, relation)
            total = count * curve if total is None else total + count * curve
        if orders is not None and total is not None:
            return _ComposedRDP(orders, total)
    return _compose(groups, method, relation, discretization)


def _resolve(groups: tuple[tuple[str, int], ...], method: Method, relation: Neighbouring) -> str:
    if method not in ("pld", "rdp", "auto"):
        raise InvalidPrivacyParameterError(f"method must be 'pld', 'rdp' or 'auto', found {method!r}")
    if method == "auto":
        return "pld" if _supports(groups, "pld", relation) else "rdp"
    if not _supports(groups, method, relation):
        raise InvalidPrivacyParameterError(
            f"method={method!r} cannot compose this ledger under {relation.value} neighbours "
            f"(events: {[json.loads(k)['type'] for k, _ in groups]}); use method='auto'"
        )
    return method


@contextlib.contextmanager
def _bounded(method: str) -> Iterator[None]:
    """A PLD too large for memory (tiny noise over very many rounds) is a typed refusal, not a crash."""
    try:
        yield
    except MemoryError:
        raise InvalidPrivacyParameterError(
            f"the {method.upper()} for this query does not fit in memory (very little noise over very many "
            "rounds); ask with method='rdp', which is looser but bounded"
        ) from None


@contextlib.contextmanager
def quiet_rdp() -> Iterator[None]:
    """dp_accounting logs a warning for every fractional RDP order it skips (they do not converge at
    large q / small z and are excluded from the minimum, which stays valid); keep them off the console."""
    log = logging.getLogger("absl")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


@functools.lru_cache(maxsize=4096)  # floats only: can_spend, commit and epsilon of one round share a key
def _epsilon(
    groups: tuple[tuple[str, int], ...],
    delta: float,
    method: Method,
    relation: Neighbouring,
    discretization: float,
) -> float:
    if not groups:
        return 0.0
    m = _resolve(groups, method, relation)
    parts = _quick_parts(groups, relation) if m == "pld" else None
    if parts is not None:  # the common ledger: quick_epsilon's certified bound, not the fixed grid
        return _quick_groups(parts, delta, QUICK_TOLERANCE)[0]
    with quiet_rdp(), _bounded(m):
        return float(_cached_accountant(groups, m, relation, discretization).get_epsilon(delta))


@functools.lru_cache(maxsize=4096)
def _delta(
    groups: tuple[tuple[str, int], ...],
    epsilon: float,
    method: Method,
    relation: Neighbouring,
    discretization: float,
) -> float:
    if not groups:
        return 0.0
    m = _resolve(groups, method, relation)
    with quiet_rdp(), _bounded(m):
        return float(_cached_accountant(groups, m, relation, discretization).get_delta(epsilon))


# ---------------------------------------------------------------- the ledger


@dataclass(frozen=True)
class LedgerEntry:
    """One committed charge: the event, how many times it ran, and where it came from."""

    event: dpa.DpEvent
    count: int = 1
    label: str = ""
    round_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": event_to_dict(self.event),
            "count": self.count,
            "label": self.label,
            "round_id": self.round_id,
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> LedgerEntry:
        return LedgerEntry(
            event=event_from_dict(data["event"]),
            count=int(data["count"]),
            label=str(data.get("label", "")),
            round_id=data.get("round_id"),
        )


@dataclass(frozen=True)
class PrivacyReport:
    """epsilon at delta by both accountants; `epsilon` is the reported one (PLD unless unsupported)."""

    delta: float
    epsilon: float
    method: str
    epsilon_pld: float | None
    epsilon_rdp: float | None


class PrivacyAccountant:
    """Ledger of DpEvents with two-phase charging and an optional hard budget.

    Use: `if acc.can_spend(ev): run round; acc.commit(ev, round_id=r)`. A round that fails is simply
    not committed. With max_epsilon set, commit() raises BudgetExceededError instead of overspending.
    """

    def __init__(
        self,
        *,
        max_epsilon: float | None = None,
        delta: float | None = None,
        neighbouring: Neighbouring | str = Neighbouring.ADD_OR_REMOVE,
        pld_discretization: float = DEFAULT_PLD_DISCRETIZATION,
    ) -> None:
        if max_epsilon is not None:
            check_epsilon(max_epsilon, "max_epsilon")
            if delta is None:
                raise InvalidPrivacyParameterError(f"max_epsilon={max_epsilon!r} needs a delta, found None")
        self.max_epsilon = None if max_epsilon is None else float(max_epsilon)
        self.delta = None if delta is None else check_delta(delta)
        try:
            self.neighbouring = Neighbouring(neighbouring)
        except ValueError as err:
            raise InvalidPrivacyParameterError(
                f"neighbouring must be 'add_or_remove' or 'replace', found {neighbouring!r}"
            ) from err
        self.pld_discretization = check_positive("pld_discretization", pld_discretization)
        self._entries: list[LedgerEntry] = []

    # -- ledger
    @property
    def entries(self) -> tuple[LedgerEntry, ...]:
        return tuple(self._entries)

    def _groups(self, extra: tuple[dpa.DpEvent, int] | None = None) -> tuple[tuple[str, int], ...]:
        counts: Counter[str] = Counter()
        for e in self._entries:
            _flatten(e.event, e.count, counts)
        if extra is not None:
            _flatten(extra[0], extra[1], counts)
        return tuple(sorted(counts.items()))

    def _delta_or_default(self, delta: float | None) -> float:
        if delta is None:
            if self.delta is None:
                raise InvalidPrivacyParameterError(
                    "delta must be given (the accountant has none), found None"
                )
            return self.delta
        return check_delta(delta)

    # -- queries
    def epsilon(self, delta: float | None = None, *, method: Method = "auto") -> float:
        """epsilon(delta) of everything committed; method 'auto' = PLD when it supports every event."""
        d = self._delta_or_default(delta)
        return _epsilon(self._groups(), d, method, self.neighbouring, self.pld_discretization)

    def delta_for(self, epsilon: float, *, method: Method = "auto") -> float:
        """delta(epsilon) of everything committed."""
        eps = check_epsilon(epsilon)
        return _delta(self._groups(), eps, method, self.neighbouring, self.pld_discretization)

    def report(self, delta: float | None = None) -> PrivacyReport:
        """Both accountants side by side; PLD is reported, RDP is the cross-check (RDP >= PLD)."""
        d = self._delta_or_default(delta)
        g = self._groups()
        rel, disc = self.neighbouring, self.pld_discretization
        pld = _epsilon(g, d, "pld", rel, disc) if not g or _supports(g, "pld", rel) else None
        rdp = _epsilon(g, d, "rdp", rel, disc) if not g or _supports(g, "rdp", rel) else None
        method = "pld" if pld is not None else "rdp"
        eps = pld if pld is not None else rdp
        if eps is None:
            raise InvalidPrivacyParameterError(f"no accountant can compose this ledger: {self._groups()}")
        return PrivacyReport(delta=d, epsilon=eps, method=method, epsilon_pld=pld, epsilon_rdp=rdp)

    def projected_epsilon(
        self, event: dpa.DpEvent, delta: float | None = None, *, count: int = 1, method: Method = "auto"
    ) -> float:
        """epsilon if `event` were committed `count` more times (nothing is charged)."""
        d = self._delta_or_default(delta)
        c = check_count("count", count)
        g = self._groups((event, c))
        return _epsilon(g, d, method, self.neighbouring, self.pld_discretization)

    def can_spend(
        self,
        event: dpa.DpEvent,
        max_epsilon: float | None = None,
        delta: float | None = None,
        *,
        count: int = 1,
    ) -> bool:
        """Phase one: would committing `event` keep epsilon <= max_epsilon? Charges nothing."""
        cap = self.max_epsilon if max_epsilon is None else check_epsilon(max_epsilon, "max_epsilon")
        if cap is None:
            raise InvalidPrivacyParameterError(
                "can_spend needs max_epsilon (argument or accountant), found None"
            )
        return self.projected_epsilon(event, delta, count=count) <= cap

    def commit(
        self, event: dpa.DpEvent, *, label: str = "", round_id: int | None = None, count: int = 1
    ) -> LedgerEntry:
        """Phase two: record the event. Raises BudgetExceededError (ledger unchanged) past max_epsilon."""
        entry = LedgerEntry(event=event, count=check_count("count", count), label=label, round_id=round_id)
        event_to_dict(event)  # rejects non-DpEvents before anything is recorded
        _flatten(event, entry.count, Counter())  # and zero or negative repeat counts inside one
        if self.max_epsilon is not None:
            projected = self.projected_epsilon(event, count=entry.count)
            if projected > self.max_epsilon:
                raise BudgetExceededError(
                    f"committing {label or type(event).__name__} (round {round_id}) would bring epsilon to "
                    f"{projected:.4f} > max_epsilon={self.max_epsilon} at delta={self.delta}"
                )
        self._entries.append(entry)
        return entry

    # -- persistence
    def to_json(self) -> str:
        """The whole state as canonical JSON (floats round-trip exactly)."""
        return json.dumps(
            {
                "version": _JSON_VERSION,
                "max_epsilon": self.max_epsilon,
                "delta": self.delta,
                "neighbouring": self.neighbouring.value,
                "pld_discretization": self.pld_discretization,
                "entries": [e.to_dict() for e in self._entries],
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> PrivacyAccountant:
        """Rebuild an accountant saved by to_json (e.g. from a checkpoint)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise InvalidPrivacyParameterError(f"accountant JSON does not parse: {err}") from err
        if not isinstance(data, dict) or data.get("version") != _JSON_VERSION:
            found = data.get("version") if isinstance(data, dict) else data
            raise InvalidPrivacyParameterError(
                f"accountant JSON version must be {_JSON_VERSION}, found {found!r}"
            )
        try:
            acc = cls(
                max_epsilon=data["max_epsilon"],
                delta=data["delta"],
                neighbouring=data["neighbouring"],
                pld_discretization=data["pld_discretization"],
            )
            acc._entries = [LedgerEntry.from_dict(e) for e in data["entries"]]
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, InvalidPrivacyParameterError):
                raise
            raise InvalidPrivacyParameterError(f"accountant JSON is malformed: {err!r}") from err
        return acc

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrivacyAccountant) and self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]


class ClientLedgers:
    """Per-client accountants for sample-level DP (each client's local DP-SGD is its own ledger)."""

    def __init__(self, *, delta: float, pld_discretization: float = DEFAULT_PLD_DISCRETIZATION) -> None:
        self.delta = check_delta(delta)
        self.pld_discretization = check_positive("pld_discretization", pld_discretization)
        self._ledgers: dict[str, PrivacyAccountant] = {}

    def ledger(self, client_id: str) -> PrivacyAccountant:
        """The client's accountant (created empty on first use)."""
        key = str(client_id)
        if key not in self._ledgers:
            self._ledgers[key] = PrivacyAccountant(
                delta=self.delta, pld_discretization=self.pld_discretization
            )
        return self._ledgers[key]

    def commit(
        self, client_id: str, event: dpa.DpEvent, *, label: str = "", round_id: int | None = None
    ) -> None:
        self.ledger(client_id).commit(event, label=label, round_id=round_id)

    def projected_epsilon(self, client_id: str, event: dpa.DpEvent) -> float:
        """epsilon of the client's ledger if `event` were committed; a query never creates a ledger."""
        acc = self._ledgers.get(str(client_id))
        if acc is None:
            acc = PrivacyAccountant(delta=self.delta, pld_discretization=self.pld_discretization)
        return acc.projected_epsilon(event)

    def epsilon(self, client_id: str) -> float:
        """epsilon of the client's ledger (0 for a client never charged); a query never creates a ledger."""
        acc = self._ledgers.get(str(client_id))
        return acc.epsilon() if acc is not None else 0.0

    def epsilons(self) -> dict[str, float]:
        """epsilon per client (identical ledgers share one cached computation)."""
        return {cid: acc.epsilon() for cid, acc in sorted(self._ledgers.items())}

    def max_epsilon(self) -> float:
        """The worst client's epsilon: the sample-level guarantee of the whole run."""
        return max(self.epsilons().values(), default=0.0)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": _JSON_VERSION,
                "delta": self.delta,
                "pld_discretization": self.pld_discretization,
                "clients": {cid: json.loads(acc.to_json()) for cid, acc in sorted(self._ledgers.items())},
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> ClientLedgers:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != _JSON_VERSION:
            raise InvalidPrivacyParameterError(f"client ledgers JSON version must be {_JSON_VERSION}")
        out = cls(delta=data["delta"], pld_discretization=data["pld_discretization"])
        out._ledgers = {cid: PrivacyAccountant.from_json(json.dumps(v)) for cid, v in data["clients"].items()}
        return out


# ---------------------------------------------------------------- plain functions for the CLI


def epsilon_for(
    noise_multiplier: float,
    sampling_rate: float,
    rounds: int,
    delta: float,
    *,
    method: Literal["pld", "rdp"] = "pld",
    pld_discretization: float = DEFAULT_PLD_DISCRETIZATION,
) -> float:
    """epsilon after `rounds` Poisson-sampled Gaussian rounds (z, q) at delta."""
    ev = _events.poisson_round(noise_multiplier, sampling_rate)
    n = check_count("rounds", rounds)
    d = check_delta(delta)
    return _epsilon(((_event_key(ev), n),), d, method, Neighbouring.ADD_OR_REMOVE, pld_discretization)


def delta_for(
    noise_multiplier: float,
    sampling_rate: float,
    rounds: int,
    epsilon: float,
    *,
    method: Literal["pld", "rdp"] = "pld",
    pld_discretization: float = DEFAULT_PLD_DISCRETIZATION,
) -> float:
    """delta after `rounds` Poisson-sampled Gaussian rounds (z, q) at epsilon."""
    ev = _events.poisson_round(noise_multiplier, sampling_rate)
    n = check_count("rounds", rounds)
    eps = check_epsilon(epsilon)
    return _delta(((_event_key(ev), n),), eps, method, Neighbouring.ADD_OR_REMOVE, pld_discretization)


def rounds_within(
    noise_multiplier: float,
    sampling_rate: float,
    max_epsilon: float,
    delta: float,
    *,
    max_rounds: int = 100_000,
) -> int:
    """Largest number of rounds whose PLD epsilon stays <= max_epsilon (0 if even one round exceeds it)."""
    check_rate("sampling_rate", sampling_rate)
    cap = check_epsilon(max_epsilon, "max_epsilon")
    hi = check_count("max_rounds", max_rounds)
    if epsilon_for(noise_multiplier, sampling_rate, 1, delta) > cap:
        return 0
    lo = 1
    if epsilon_for(noise_multiplier, sampling_rate, hi, delta) <= cap:
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if epsilon_for(noise_multiplier, sampling_rate, mid, delta) <= cap:
            lo = mid
        else:
            hi = mid
    return lo


def clear_caches() -> None:
    """Forget every cached PLD, RDP curve and epsilon (for benchmarks that time a cold query)."""
    for cached in (
        _epsilon,
        _delta,
        _cached_accountant,
        _base_pld,
        _base_rdp,
        _quick_base,
        _pld_epsilon_parts,
        _quick_groups,
        _quick_start,
        privacy_loss_span,
    ):
        cached.cache_clear()


# ---------------------------------------------------------------- the quick certified bound

#: quick_epsilon's default: at most this far above the fine-grid PLD (relative)
QUICK_TOLERANCE = 0.005
#: quick_epsilon's first grid cuts the privacy-loss range into this many points
_QUICK_START_POINTS = 2_000


@functools.lru_cache(maxsize=256)  # one per (z, q, grid): a ledger's ladder reuses its few grids every round
def _quick_base(z: float, q: float, grid: float) -> _PLD.PrivacyLossDistribution:
    """Pessimistic PLD of one Poisson-sampled Gaussian on `grid` (add/remove): built once per grid, so a
    growing ledger pays only its self-composition each round (the base was ~60% of a cold query)."""
    return _PLD.from_gaussian_mechanism(
        standard_deviation=z, value_discretization_interval=grid, sampling_prob=q
    )


Parts = tuple[tuple[float, float, int], ...]


@functools.lru_cache(maxsize=4096)
def _pld_epsilon_parts(parts: Parts, delta: float, grid: float) -> float:
    """epsilon of the composition of `count` rounds of each (z, q, count) in `parts`, every one a
    pessimistic PLD on `grid` (dp_accounting: self-composition per part, then composition): an upper
    bound on any grid."""
    pld = None
    for z, q, count in parts:
        part = _quick_base(z, q, grid).self_compose(count)
        pld = part if pld is None else pld.compose(part)
    if pld is None:
        raise InvalidPrivacyParameterError("a PLD needs at least one (z, q, count) part, found none")
    return float(pld.get_epsilon_for_delta(delta))


def pld_epsilon_on(z: float, q: float, rounds: int, delta: float, grid: float) -> float:
    """epsilon of `rounds` Poisson-sampled Gaussian rounds by dp_accounting's pessimistic PLD on `grid`
    exactly as given (an upper bound at any grid; quick_epsilon and calibration choose the grid)."""
    with _bounded("pld"):
        return _pld_epsilon_parts(((z, q, rounds),), delta, grid)


def _quick_parts(groups: tuple[tuple[str, int], ...], relation: Neighbouring) -> Parts | None:
    """The ledger as (z, q, count) parts when every event is a Poisson-sampled Gaussian under add/remove
    neighbours (the ledgers quick_epsilon's bound covers), identical (z, q) merged; else None."""
    if relation != Neighbouring.ADD_OR_REMOVE:
        return None
    counts: Counter[tuple[float, float]] = Counter()
    for key, count in groups:
        if not _is_sampled_gaussian(key):
            return None
        ev = event_from_dict(json.loads(key))
        counts[(float(ev.event.noise_multiplier), float(ev.sampling_probability))] += count
    return tuple((z, q, c) for (z, q), c in sorted(counts.items()))


def _parts_width(parts: Parts, grid: float) -> float:
    """Predicted width (nats) of the composed privacy-loss support of `parts` on `grid`."""
    return sum(_composed_width(_quick_base(z, q, grid), c) for z, q, c in parts)


def quick_epsilon(
    noise_multiplier: float,
    sampling_rate: float,
    rounds: int,
    delta: float,
    *,
    tolerance: float = QUICK_TOLERANCE,
) -> float:
    """epsilon of `rounds` Poisson-sampled Gaussian rounds (z, q) at delta: a certified upper bound (PLD with
    pessimistic connect-the-dots discretization, Doroshenko et al. PETS 2022: never below the true
    epsilon) on a grid chosen for this query, within `tolerance` (0.5%) of the fine-grid PLD.

    The grid starts at 2,000 points of the privacy-loss range and halves. The discretization error of
    the composed epsilon shrinks with the square of the grid, so eps(g) - eps(g/2) estimates three times
    the error left at g/2 (Richardson); the first grid whose estimate is below 0.4 * tolerance is
    reported (far from the square law, on grids too coarse, the gap is large and refining goes on).
    Typically 0.05-0.1 s where the 1e-4 grid takes 0.4-1 s (benchmarks/dp_bench.py;
    tests/dp/test_quick_epsilon.py holds it within 0.5% above a
    fine grid and never below it across a grid of (q, z, T)). With the default tolerance it is the
    number `epsilon_for(method="pld")` and the ledgers report."""
    z = check_positive("noise_multiplier", noise_multiplier)
    q = check_rate("sampling_rate", sampling_rate)
    n = check_count("rounds", rounds)
    d = check_delta(delta)
    tol = check_positive("tolerance", tolerance)
    if q == 1.0:  # no sampling: the closed form is exact and instant
        return epsilon_for(z, q, n, d)
    return quick_epsilon_and_grid(z, q, n, d, tol)[0]


def quick_epsilon_and_grid(
    z: float, q: float, n: int, d: float, tol: float = QUICK_TOLERANCE
) -> tuple[float, float]:
    """quick_epsilon's value and the grid it settled on (validated arguments, q < 1)."""
    return _quick_groups(((z, q, n),), d, tol)


@functools.lru_cache(maxsize=4096)
def _quick_start(parts: Parts) -> tuple[float, float]:
    """(first grid, finest grid) of quick_epsilon's ladder for `parts`: 2,000 points of the widest loss
    range, coarser where the composition would pass PLD_MAX_COMPOSED_POINTS points (a typed refusal
    naming RDP where the base would then keep under PLD_MIN_BASE_POINTS points); the finest is no finer
    than pld_grid(z, 1e-5, q) and keeps the composition (its width predicted on the first grid) within
    PLD_MAX_COMPOSED_POINTS. Every rung of the ladder is the first grid halved k times (exact in floating
    point), so calibration can evaluate a rung at any z and the ladder finds it cached."""
    span = max(privacy_loss_span(z, q) for z, q, _ in parts)
    finest = max(max(pld_grid(z, DEFAULT_PLD_DISCRETIZATION / 10, q) for z, q, _ in parts), 1e-6)
    grid = max(span / _QUICK_START_POINTS, finest)
    with _bounded("pld"):
        width = _parts_width(parts, grid)
        if width / grid > PLD_MAX_COMPOSED_POINTS:
            grid = width / PLD_MAX_COMPOSED_POINTS
            if span / grid < PLD_MIN_BASE_POINTS:
                z, q, n = max(parts, key=lambda p: _composed_width(_quick_base(p[0], p[1], grid), p[2]))
                raise InvalidPrivacyParameterError(
                    f"PLD cannot compose {n} rounds of a Gaussian of multiplier {z} sampled at {q} in "
                    f"bounded time and memory (the privacy loss spreads over ~{width:.3g} nats, epsilon "
                    "is in the thousands or more): ask method='rdp', which is looser but costs the same "
                    "at any number of rounds"
                )
    return grid, max(finest, width / PLD_MAX_COMPOSED_POINTS)


def quick_rung(z: float, q: float, n: int, rung: int) -> float:
    """The grid of quick_epsilon's ladder for (z, q, n) after `rung` halvings (validated arguments), or the
    ladder's finest grid where it stops halving earlier."""
    parts = ((z, q, n),)
    grid, finest = _quick_start(parts)
    for _ in range(rung):
        if grid / 2 < finest:
            break
        grid /= 2
    return grid


@functools.lru_cache(maxsize=4096)
def _quick_groups(parts: Parts, d: float, tol: float) -> tuple[float, float]:
    """quick_epsilon's ladder for a ledger of Poisson-sampled Gaussian parts (z, q, count), composed on one
    grid per step (dp_accounting composes PLDs of one discretization only): (epsilon, grid).

    Bounded like the fixed-grid path: at most PLD_MAX_ROUNDS rounds of a part; a grid no finer than
    pld_grid(z, 1e-5, q) (so no base beyond PLD_MAX_POINTS points); no composition beyond
    PLD_MAX_COMPOSED_POINTS points (the grid coarsens to fit, and where the base would then keep under
    PLD_MIN_BASE_POINTS points, a typed refusal naming RDP). Where refining stops at those bounds, the
    value is still an upper bound, only possibly more than `tol` above the fine PLD (epsilon is then in
    the hundreds or more)."""
    for _, _, n in parts:
        if n > PLD_MAX_ROUNDS:
            raise InvalidPrivacyParameterError(
                f"PLD composes at most {PLD_MAX_ROUNDS:,} rounds of one mechanism in bounded time, asked "
                f"for {n:,}: ask method='rdp', which is looser but costs the same at any number of rounds"
            )
    grid, finest = _quick_start(parts)
    with _bounded("pld"):
        values: list[float] = []
        while True:
            values.append(_pld_epsilon_parts(parts, d, grid))
            if len(values) >= 2:
                estimate = (values[-2] - values[-1]) / 3.0  # the error left at this grid (square law)
                if estimate <= 0.4 * tol * values[-1]:
                    return values[-1], grid
            if grid / 2 < finest:
                return values[-1], grid  # the finest grid allowed: still an upper bound
            grid /= 2
