"""Encoding round trip and error bound, parameter choice bounds, and a negative test per bad config value."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secagg import FixedPointEncoding, SecAggConfig, SecAggConfigError, choose_parameters, max_bits_for
from secagg.graph import cohort_seed, in_neighbours, out_neighbours
from secagg.params import binomial_tail_ge, hypergeom_tail_ge, log2_disconnect


@pytest.mark.parametrize("n,bits", [(1, 32), (2, 31), (3, 30), (4, 30), (100, 25), (1000, 22), (1025, 21)])
def test_bits_leave_room_for_the_sum_of_n(n, bits):
    assert max_bits_for(n) == bits
    enc = FixedPointEncoding(1.0, bits)
    assert n * enc.max_level <= 2**31 - 1 and enc.max_clients() >= n


def test_extreme_inputs_of_n_clients_sum_without_wrapping():
    n = 1000
    enc = FixedPointEncoding.for_clients(n, 2.0)
    rng = np.random.default_rng(1)
    for sign in (1.0, -1.0):
        x = np.full(8, sign * 5.0)  # clipped to +-2
        total = np.zeros(8, dtype=np.uint32)
        for _ in range(n):
            total += enc.encode(x, rng)
        assert np.allclose(enc.decode_sum(total), sign * 2.0 * n, atol=enc.max_sum_error(n))


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 60),
    clip=st.floats(1e-3, 1e3),
    seed=st.integers(0, 2**32 - 1),
    bits_drop=st.integers(0, 10),
)
def test_decoded_sum_is_within_the_stated_bound(n, clip, seed, bits_drop):
    rng = np.random.default_rng(seed)
    bits = max(2, max_bits_for(n) - bits_drop)
    enc = FixedPointEncoding.for_clients(n, clip, bits)
    xs = rng.uniform(-1.5 * clip, 1.5 * clip, size=(n, 64))
    total = np.zeros(64, dtype=np.uint32)
    for x in xs:
        total += enc.encode(x, rng)
    err = np.abs(enc.decode_sum(total) - np.clip(xs, -clip, clip).sum(0))
    assert err.max() <= enc.max_sum_error(n) * (1 + 1e-9)


def test_stochastic_rounding_is_unbiased():
    enc = FixedPointEncoding(1.0, 4)  # scale 7: coarse grid, so a bias would show
    rng = np.random.default_rng(3)
    x = np.full(200_000, 0.3)
    mean = enc.decode_sum(enc.encode(x, rng)).mean()
    assert abs(mean - 0.3) < 4 * (0.5 / 7) / math.sqrt(x.size)
    # deterministic rounding would give 2/7 = 0.2857: that is 40 sd away


def test_encoding_uses_the_explicit_generator_only():
    enc = FixedPointEncoding(1.0, 16)
    x = np.linspace(-1, 1, 100)
    a = enc.encode(x, np.random.default_rng(7))
    b = enc.encode(x, np.random.default_rng(7))
    assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"clip_range": 0.0, "bits": 16},
        {"clip_range": -1.0, "bits": 16},
        {"clip_range": float("inf"), "bits": 16},
        {"clip_range": float("nan"), "bits": 16},
        {"clip_range": True, "bits": 16},
        {"clip_range": 1.0, "bits": 1},
        {"clip_range": 1.0, "bits": 33},
        {"clip_range": 1.0, "bits": 16.0},
    ],
)
def test_encoding_rejects_bad_values(kwargs):
    with pytest.raises(SecAggConfigError):
        FixedPointEncoding(**kwargs)


def test_encoding_rejects_bad_inputs():
    enc = FixedPointEncoding(1.0, 16)
    rng = np.random.default_rng(0)
    with pytest.raises(SecAggConfigError):
        FixedPointEncoding.for_clients(100, 1.0, bits=26)  # the sum of 100 could wrap
    with pytest.raises(SecAggConfigError):
        max_bits_for(0)
    with pytest.raises(SecAggConfigError):
        enc.encode(np.zeros((2, 2)), rng)
    with pytest.raises(SecAggConfigError):
        enc.encode(np.array([np.nan]), rng)
    with pytest.raises(SecAggConfigError):
        enc.encode(np.zeros(3), None)  # type: ignore[arg-type]
    with pytest.raises(SecAggConfigError):
        enc.decode_sum(np.zeros(3, dtype=np.int64))


def test_tails_match_known_values():
    assert binomial_tail_ge(10, 0.5, 10) == pytest.approx(2.0**-10)
    assert binomial_tail_ge(4, 0.5, 2) == pytest.approx(11 / 16)
    assert hypergeom_tail_ge(10, 3, 3, 3) == pytest.approx(1 / math.comb(10, 3))
    assert hypergeom_tail_ge(10, 0, 5, 1) == 0.0


@pytest.mark.parametrize("n", [10, 30, 100, 1000, 10_000])
@pytest.mark.parametrize("delta,gamma,semi", [(0.1, 0.05, False), (0.05, 0.05, True), (0.2, 0.1, False)])
def test_chosen_k_t_meet_the_stated_bounds(n, delta, gamma, semi):
    try:
        p = choose_parameters(n, dropout_rate=delta, corrupt_fraction=gamma, semi_malicious=semi)
    except SecAggConfigError as exc:
        assert n <= 30 and "no safe threshold" in str(exc)
        return
    k, t = p.neighbours, p.threshold
    assert 1 <= t <= k <= n - 1
    c = math.floor(gamma * n)
    if not p.tail_bounds:  # small cohorts cannot meet sigma = 40 / eta = 20: the deterministic rule
        assert n <= 30 and p.complete and k == n - 1
        assert t == max(1, math.floor((1 - delta) * k + 1e-9))  # tolerates delta (n - 1) dropped neighbours
        assert (2 * t - k if semi else t) > c  # the tolerated colluders cannot meet t
        return
    t_sec = 2 * t - k if semi else t
    assert n * hypergeom_tail_ge(n - 1, c, k, t_sec) <= 2.0**-40
    assert n * binomial_tail_ge(k, delta, k - t + 1) <= 2.0**-20
    if not p.complete:
        bad = c + math.ceil(delta * n)
        assert log2_disconnect(n, k, bad) == p.log2_disconnect <= -40
    if semi:
        assert t > (k + gamma * k) / 2  # the production rule of DESIGN 4b follows from the tails
    assert p.log2_security_failure <= -40 and p.log2_correctness_failure <= -20


def test_k_grows_logarithmically_in_n():
    ks = [choose_parameters(n).neighbours for n in (1000, 10_000, 100_000, 1_000_000)]
    assert ks == sorted(ks) and ks[-1] - ks[0] <= 16 and ks[-1] < 64


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"dropout_rate": 0.5, "corrupt_fraction": 0.5}, "gamma \\+ delta"),
        ({"dropout_rate": 0.4, "corrupt_fraction": 0.2, "semi_malicious": True}, "semi-malicious"),
        ({"dropout_rate": -0.1}, "dropout_rate"),
        ({"dropout_rate": 1.0}, "dropout_rate"),
        ({"corrupt_fraction": 1.5}, "corrupt_fraction"),
        ({"sigma": 0}, "sigma"),
    ],
)
def test_choose_parameters_rejects_infeasible_or_bad_values(kwargs, match):
    with pytest.raises(SecAggConfigError, match=match):
        choose_parameters(100, **kwargs)
    with pytest.raises(SecAggConfigError):
        choose_parameters(1)


def _cfg(**over):
    base = dict(client_ids=tuple(range(10)), vector_length=4, threshold=3, neighbours=4)
    base.update(over)
    return SecAggConfig(**base)


@pytest.mark.parametrize(
    "over",
    [
        {"client_ids": (0,)},
        {"client_ids": (1, 1, 2)},
        {"client_ids": (2, 1, 3)},
        {"client_ids": (-1, 0, 1)},
        {"client_ids": (0, 2**32 - 1)},
        {"client_ids": [0, 1, 2]},
        {"client_ids": (0, 1.0)},
        {"vector_length": 0},
        {"vector_length": 2**28 + 1},
        {"vector_length": 3.0},
        {"neighbours": 0},
        {"neighbours": 10},
        {"threshold": 0},
        {"threshold": 5},
        {"threshold": True},
        {"round_id": "r"},
        {"round_id": bytes(65)},
        {"model_hash": bytes(65)},
        {"min_survivors": 2},
        {"min_survivors": 11},
    ],
)
def test_config_rejects_each_bad_value(over):
    with pytest.raises(SecAggConfigError):
        _cfg(**over)


def test_config_defaults_and_create():
    cfg = _cfg()
    assert cfg.min_survivors == 3 and not cfg.complete_graph and cfg.n == 10
    full = _cfg(neighbours=9)
    assert full.complete_graph
    made = SecAggConfig.create(range(100), 10)
    p = choose_parameters(100)
    assert (made.neighbours, made.threshold) == (p.neighbours, p.threshold)
    assert len(made.round_id) == 16 and made.round_id != SecAggConfig.create(range(100), 10).round_id


def _union_bound_by_hand(n: int, k: int, bad: int) -> float:
    """The connectivity union bound of `params` with exact integers (small n only)."""
    h, total = n - bad, math.comb(n - 1, k)
    p = 0.0
    for a in range(1, h // 2 + 1):
        p += (
            math.comb(h, a)
            * (math.comb(a - 1 + bad, k) / total) ** a
            * (math.comb(n - 1 - a, k) / total) ** (h - a)
        )
    return math.log2(p) if p else -math.inf


@pytest.mark.parametrize("n,k,bad", [(12, 3, 2), (30, 6, 5), (60, 8, 12), (100, 17, 15)])
def test_the_disconnection_bound_matches_exact_integers(n, k, bad):
    assert log2_disconnect(n, k, bad) == pytest.approx(_union_bound_by_hand(n, k, bad), abs=1e-6)
    assert log2_disconnect(n, k + 1, bad) < log2_disconnect(n, k, bad)  # more holders, harder to cut


def test_holders_are_k_distinct_others_drawn_from_the_clients_own_keys():
    ids = tuple(range(50))
    base = cohort_seed(b"r", b"m", ids)
    keys = {i: (bytes([i]) * 32, bytes([i + 100]) * 32) for i in ids}
    outs = {u: out_neighbours(ids, 8, base, u, *keys[u]) for u in ids}
    assert all(len(v) == 8 and u not in v and list(v) == sorted(set(v)) for u, v in outs.items())
    ins = in_neighbours(outs)
    assert sum(map(len, ins.values())) == 50 * 8 and all(u in outs[v] for u, vs in ins.items() for v in vs)
    # one client's keys decide its own holders only; the round (cohort seed) changes them all
    other = out_neighbours(ids, 8, base, 17, bytes([1]) * 32, bytes([2]) * 32)
    assert other != outs[17] and out_neighbours(ids, 8, base, 18, *keys[18]) == outs[18]
    assert out_neighbours(ids, 8, cohort_seed(b"r2", b"m", ids), 17, *keys[17]) != outs[17]
    assert out_neighbours(ids[:5], 8, base, 0, *keys[0]) == (1, 2, 3, 4)  # complete graph
    with pytest.raises(SecAggConfigError):
        out_neighbours(ids, 8, base, 99, *keys[0])
    # uniform: over many key pairs each other client is drawn about k / (n - 1) of the time
    counts = np.zeros(50)
    for i in range(2000):
        for v in out_neighbours(ids, 8, base, 0, i.to_bytes(32, "little"), bytes(32)):
            counts[v] += 1
    assert counts[0] == 0
    expected = 2000 * 8 / 49
    assert np.abs(counts[1:] - expected).max() < 5 * math.sqrt(expected)
