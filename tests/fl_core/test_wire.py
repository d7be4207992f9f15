"""Wire format: exact round trip, and every malformed message is rejected with a typed error."""

from __future__ import annotations

import numpy as np
import pytest

from fl_core.errors import UpdateRejectedError
from fl_core.types import ClientUpdate, RoundConfig
from fl_core.wire import decode_global, decode_update, encode_global, encode_update


def test_global_round_trip() -> None:
    w = np.random.default_rng(0).standard_normal(50).astype(np.float32)
    cfg = RoundConfig(round=3, lr=0.1, extra={"proximal_mu": 0.5})
    w2, cfg2 = decode_global(encode_global(w, cfg))
    np.testing.assert_array_equal(w, w2)
    assert cfg2 == cfg


def test_update_round_trip_and_size_is_what_is_counted() -> None:
    d = np.arange(10, dtype=np.float32)
    u = ClientUpdate(7, d, 12, {"train_loss": 0.25}, 0.5)
    data = encode_update(u, 4)
    assert len(data) > 4 * d.size  # the payload is really in the bytes
    u2 = decode_update(data, expected_round=4, expected_size=10)
    np.testing.assert_array_equal(u2.delta, d)
    assert (u2.client_id, u2.num_examples, dict(u2.metrics)) == (7, 12, {"train_loss": 0.25})


def _update_bytes(delta: np.ndarray, n: int = 5) -> bytes:
    return encode_update(ClientUpdate(1, delta.astype(np.float32), n), 1)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b[:-3],  # truncated
        lambda b: b[:10],  # header only
        lambda b: b"XXXX" + b[4:],  # wrong magic
        lambda b: b[:4] + b"\x09" + b[5:],  # wrong version
        lambda b: b + b"\x00",  # trailing garbage
    ],
)
def test_malformed_update_rejected(mutate) -> None:
    with pytest.raises(UpdateRejectedError):
        decode_update(mutate(_update_bytes(np.ones(4))), expected_round=1, expected_size=4)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_update_rejected(bad: float) -> None:
    delta = np.ones(4)
    delta[2] = bad
    with pytest.raises(UpdateRejectedError, match="non-finite"):
        decode_update(_update_bytes(delta), expected_round=1, expected_size=4)


def test_wrong_round_size_and_weight_rejected() -> None:
    data = _update_bytes(np.ones(4))
    with pytest.raises(UpdateRejectedError, match="round"):
        decode_update(data, expected_round=2, expected_size=4)
    with pytest.raises(UpdateRejectedError, match="expected 5"):
        decode_update(data, expected_round=1, expected_size=5)
    with pytest.raises(UpdateRejectedError, match="num_examples"):
        decode_update(_update_bytes(np.ones(4), n=0), expected_round=1, expected_size=4)


@pytest.mark.parametrize("bits", [16, 8])
def test_quantized_upload_is_smaller_bounded_and_unbiased(bits: int) -> None:
    rng = np.random.default_rng(0)
    d = rng.standard_normal(20_000).astype(np.float32)
    full = encode_update(ClientUpdate(1, d, 5), 1)
    small = encode_update(ClientUpdate(1, d, 5), 1, bits=bits, rng=rng)
    assert len(small) < len(full) * (bits / 32) + 200
    got = decode_update(small, expected_round=1, expected_size=d.size).delta
    scale = float(np.max(np.abs(d))) / (2 ** (bits - 1) - 1)
    err = got.astype(np.float64) - d
    assert np.max(np.abs(err)) <= scale * (1 + 1e-6)
    assert abs(err.mean()) < 4 * scale / np.sqrt(d.size)  # stochastic rounding is unbiased
    assert np.any(err != 0)


def test_bad_upload_bits_rejected() -> None:
    with pytest.raises(UpdateRejectedError, match="upload bits"):
        encode_update(ClientUpdate(1, np.ones(3, np.float32), 5), 1, bits=12)
