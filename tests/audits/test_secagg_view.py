"""The secagg view on real rounds (passes) and on transcripts tampered to leak (flagged)."""

import dataclasses

import numpy as np
import pytest

import secagg
from audits.errors import AuditError
from audits.secagg_view import (
    bit_uniformity_pvalue,
    byte_uniformity_pvalue,
    independence_pvalues,
    secagg_view,
)


def _inputs(n=10, d=2000):
    rng = np.random.default_rng(0)
    # structured inputs: a ramp, small values, a constant: all far from uniform
    return [
        (np.arange(d, dtype=np.uint32) * np.uint32(1000 * (i + 1))) if i % 3 == 0
        else rng.integers(0, 50, d).astype(np.uint32) if i % 3 == 1
        else np.full(d, i, np.uint32)
        for i in range(n)
    ]  # fmt: skip


def _tamper(result, make):
    """Replace every masked input in the transcript by make(client id, masked vector)."""
    entries = []
    for e in result.transcript:
        if e.stage == "masked_input" and e.direction == "up":
            msg = secagg.messages.decode(e.payload)
            msg = dataclasses.replace(msg, masked=make(msg.sender, np.asarray(msg.masked)))
            e = dataclasses.replace(e, payload=msg.to_bytes())
        entries.append(e)
    return dataclasses.replace(result, transcript=tuple(entries))


def test_a_real_round_looks_uniform_and_only_the_sum_decodes():
    xs = _inputs()
    res = secagg.aggregate(xs, record_transcript=True, dropouts={4: "unmask"})
    view = secagg_view(res, xs)
    assert view["masked_vectors_look_uniform_and_independent"]
    assert view["decoded_sum_correct"] and not view["sum_of_masked_vectors_equals_sum"]
    assert view["only_the_sum_decodes"] and view["passed"]
    assert view["max_fraction_equal_to_input"] < 0.01
    assert len(view["clients"]) == 10


def test_unmasked_inputs_are_flagged():
    xs = _inputs()
    res = secagg.aggregate(xs, record_transcript=True)
    view = secagg_view(_tamper(res, lambda cid, y: xs[cid]), xs)
    assert not view["masked_vectors_look_uniform_and_independent"]
    assert view["sum_of_masked_vectors_equals_sum"] and not view["only_the_sum_decodes"]
    assert not view["passed"]


def test_a_weak_mask_is_flagged_by_the_independence_tests():
    xs = _inputs()
    rng = np.random.default_rng(1)
    res = secagg.aggregate(xs, record_transcript=True)
    weak = _tamper(res, lambda cid, y: xs[cid] + rng.integers(0, 2**16, y.size).astype(np.uint32))
    assert not secagg_view(weak, xs)["passed"]
    ramp = np.arange(5000, dtype=np.uint32) * np.uint32(800_000)
    p = independence_pvalues(ramp + rng.integers(0, 2**20, 5000).astype(np.uint32), ramp)
    assert p["correlation_p"] < 1e-6 and p["contingency_p"] < 1e-6


def test_uniformity_tests_on_arrays():
    rng = np.random.default_rng(2)
    uniform = rng.integers(0, 2**32, 4000, dtype=np.uint64).astype(np.uint32)
    assert byte_uniformity_pvalue(uniform) > 1e-4 and bit_uniformity_pvalue(uniform) > 1e-4
    top_bit_clear = uniform >> np.uint32(1)
    assert bit_uniformity_pvalue(top_bit_clear) < 1e-10
    small = rng.integers(0, 256, 4000).astype(np.uint32)
    assert byte_uniformity_pvalue(small) < 1e-10
    with pytest.raises(AuditError, match="too short"):
        byte_uniformity_pvalue(np.zeros(10, np.uint32))


def test_a_round_without_transcript_is_refused():
    xs = _inputs(n=4, d=400)
    res = secagg.aggregate(xs, record_transcript=False)
    with pytest.raises(AuditError, match="transcript"):
        secagg_view(res, xs)
