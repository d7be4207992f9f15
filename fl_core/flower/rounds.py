"""The per-round objects both sides derive from the same run config and the round's public parameters:
the mechanism (`fl_core.mechanisms`), the packing into one summed vector (`SecureAggregator.pack`), the
fixed-point encoding and the SecAgg+ config. The server and every client compute them independently, so
a client never takes a threshold, a clip range or a noise scale from the server's word."""

from __future__ import annotations

import math

import secagg
from fl_core.aggregators import SecureAggregator, secagg_parameters
from fl_core.errors import ConfigError
from fl_core.flower.protocol import RoundParams
from fl_core.flower.settings import FlowerPrivacy
from fl_core.mechanisms import (
    DiscreteGaussianMechanism,
    Mechanism,
    RoundContext,
    VectorLayout,
    build_mechanism,
)
from fl_core.privacy import PrivacySpec


def build(privacy: FlowerPrivacy, dim: int, n: int, population: int) -> tuple[PrivacySpec, Mechanism]:
    """The round's spec and mechanism; its sampler is how privagg drew the n of `population` nodes."""
    spec = privacy.spec(n, population)
    return spec, build_mechanism(spec, dim=dim, sampler=privacy.sampler(n, population))


def packer(spec: PrivacySpec) -> SecureAggregator:
    return SecureAggregator(
        weight_cap=spec.weight_cap,
        metric_scale=spec.metric_scale,
        dropout_tolerance=spec.dropout_tolerance,
        corrupt_fraction=spec.corrupt_fraction,
    )


def context(p: RoundParams) -> RoundContext:
    return RoundContext(round=p.round, started=p.n, round_id=p.round_id)


def layout(spec: PrivacySpec, mech: Mechanism) -> VectorLayout:
    return packer(spec).layout(mech)


def is_ring(mech: Mechanism) -> bool:
    """The mechanism encodes into the integer ring itself (the distributed discrete Gaussian)."""
    return isinstance(mech, DiscreteGaussianMechanism)


def vector_length(spec: PrivacySpec, mech: Mechanism) -> int:
    return mech.dim if is_ring(mech) else layout(spec, mech).size


def encoding(spec: PrivacySpec, mech: Mechanism, ctx: RoundContext) -> secagg.FixedPointEncoding:
    return secagg.FixedPointEncoding.for_clients(ctx.started, mech.encoding_range(ctx))


def secagg_config(spec: PrivacySpec, mech: Mechanism, p: RoundParams) -> secagg.SecAggConfig:
    """The round's SecAgg+ config, as `fl_core.aggregators.SecureAggregator` builds it: (k, t) from
    `secagg.choose_parameters` for n clients, never fewer survivors than the mechanism's floor."""
    if p.n < 2:
        raise ConfigError(f"secure aggregation over {p.n} client: a sum of one client is its input")
    ctx = context(p)
    try:
        k, t = secagg_parameters(p.n, spec.dropout_tolerance, spec.corrupt_fraction)
    except secagg.SecAggConfigError as exc:
        raise ConfigError(f"secagg: no safe parameters for {p.n} clients per round: {exc}") from None
    floor = max(t, mech.min_survivors(ctx))
    return secagg.SecAggConfig(
        client_ids=tuple(range(p.n)),
        vector_length=vector_length(spec, mech),
        threshold=t,
        neighbours=k,
        round_id=p.round_id,
        model_hash=p.model_hash,
        min_survivors=min(floor, p.n),
        max_corrupt=math.floor(spec.corrupt_fraction * p.n),
    )
