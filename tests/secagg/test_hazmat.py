"""Known-answer tests (NIST / RFC vectors) and properties of the secagg primitives."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from secagg.errors import InvalidMessageError, SecAggConfigError, ThresholdError
from secagg.hazmat import aead, kex, prg, shamir

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def _load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text())


def test_aes128_ctr_nist_sp800_38a_vector_through_prg_buffer():
    v = _load("aes128_ctr_sp800_38a.json")
    pt = bytes.fromhex(v["plaintext"])
    buf = prg.PrgBuffer(len(pt) // 4)
    ks = buf.expand(bytes.fromhex(v["key"]), bytes.fromhex(v["initial_counter"]))
    ct = bytes(a ^ b for a, b in zip(ks.tobytes(), pt, strict=False))
    assert ct.hex() == v["ciphertext"]


def test_prg_words_are_little_endian_keystream_and_buffer_is_reused():
    key = bytes(range(16))
    a = prg.expand(key, 1000)
    buf = prg.PrgBuffer(1000)
    b = buf.expand(key)
    assert np.array_equal(a, b) and a.dtype == np.uint32
    # A prefix of a longer stream equals the shorter stream (CTR keystream, no per-length tweak).
    assert np.array_equal(prg.expand(key, 10), a[:10])
    c = buf.expand(bytes(16))
    assert c is buf.words and not np.array_equal(c, a)


def test_prg_masks_look_uniform_on_z_2_32():
    words = prg.expand(secrets.token_bytes(16), 200_000).astype(np.float64)
    # mean of U[0, 2^32) is 2^31 with sd 2^32/sqrt(12 n); 6 sd tolerance
    sd = 2.0**32 / np.sqrt(12 * words.size)
    assert abs(words.mean() - 2.0**31) < 6 * sd
    top = (words // 2.0**28).astype(int)  # 16 bins of the top nibble
    counts = np.bincount(top, minlength=16)
    chi2 = ((counts - words.size / 16) ** 2 / (words.size / 16)).sum()
    assert chi2 < 60  # chi2(15) exceeds 60 with probability < 1e-6


@pytest.mark.parametrize("bad", [b"", bytes(15), bytes(17)])
def test_prg_rejects_bad_key_lengths(bad):
    with pytest.raises(SecAggConfigError):
        prg.PrgBuffer(4).expand(bad)


def test_prg_rejects_bad_counter_block_and_length():
    with pytest.raises(SecAggConfigError):
        prg.PrgBuffer(4).expand(bytes(16), bytes(8))
    with pytest.raises(SecAggConfigError):
        prg.PrgBuffer(-1)


def test_x25519_rfc7748_vector():
    v = _load("x25519_rfc7748.json")
    alice = X25519PrivateKey.from_private_bytes(bytes.fromhex(v["alice_private"]))
    bob = X25519PrivateKey.from_private_bytes(bytes.fromhex(v["bob_private"]))
    assert kex.KeyPair(alice).public_bytes.hex() == v["alice_public"]
    assert kex.KeyPair(bob).public_bytes.hex() == v["bob_public"]
    shared = alice.exchange(kex.load_public(bytes.fromhex(v["bob_public"])))
    assert shared.hex() == v["shared_secret"]
    assert bob.exchange(kex.load_public(bytes.fromhex(v["alice_public"]))).hex() == v["shared_secret"]


def test_hkdf_sha256_rfc5869_vectors():
    for case in _load("hkdf_sha256_rfc5869.json")["cases"]:
        okm = kex.hkdf_sha256(
            bytes.fromhex(case["ikm"]),
            bytes.fromhex(case["info"]),
            case["length"],
            salt=bytes.fromhex(case["salt"]) or None,
        )
        assert okm.hex() == case["okm"], case["name"]


def test_agree_is_symmetric_and_binds_round_model_pair_and_purpose():
    a, b = kex.KeyPair(), kex.KeyPair()
    info = kex.pair_info(kex.PURPOSE_MASK_SEED, b"r1", b"m" * 32, 3, 7)
    assert info == kex.pair_info(kex.PURPOSE_MASK_SEED, b"r1", b"m" * 32, 7, 3)
    k_ab = kex.agree(a.private, kex.load_public(b.public_bytes), info)
    k_ba = kex.agree(b.private, kex.load_public(a.public_bytes), info)
    assert k_ab == k_ba and len(k_ab) == 16
    others = [
        kex.pair_info(kex.PURPOSE_SHARE_KEY, b"r1", b"m" * 32, 3, 7),
        kex.pair_info(kex.PURPOSE_MASK_SEED, b"r2", b"m" * 32, 3, 7),
        kex.pair_info(kex.PURPOSE_MASK_SEED, b"r1", b"n" * 32, 3, 7),
        kex.pair_info(kex.PURPOSE_MASK_SEED, b"r1", b"m" * 32, 3, 8),
    ]
    keys = {kex.agree(a.private, kex.load_public(b.public_bytes), i) for i in others}
    assert k_ab not in keys and len(keys) == 4
    with pytest.raises(SecAggConfigError):
        kex.pair_info(b"other", b"r", b"", 1, 2)


def test_agree_rejects_low_order_point_and_bad_lengths():
    with pytest.raises(InvalidMessageError):
        kex.agree(kex.KeyPair().private, kex.load_public(bytes(32)), b"i")
    with pytest.raises(InvalidMessageError):
        kex.load_public(bytes(31))
    with pytest.raises(InvalidMessageError):
        kex.load_private(bytes(33))


def test_aead_round_trip_and_binding():
    key = secrets.token_bytes(32)
    aad = aead.associated_data(b"round", 1, 2)
    sealed = aead.seal(key, b"share", aad)
    assert aead.open_sealed(key, sealed, aad) == b"share"
    for wrong in (aead.associated_data(b"round", 2, 1), aead.associated_data(b"other", 1, 2)):
        with pytest.raises(InvalidMessageError):
            aead.open_sealed(key, sealed, wrong)
    flipped = bytearray(sealed)
    flipped[-1] ^= 1
    with pytest.raises(InvalidMessageError):
        aead.open_sealed(key, bytes(flipped), aad)
    with pytest.raises(InvalidMessageError):
        aead.open_sealed(key, sealed[:20], aad)
    with pytest.raises(SecAggConfigError):
        aead.seal(bytes(5), b"x", aad)


def test_shamir_prime_is_above_every_32_byte_secret():
    assert shamir.PRIME > 2**256
    assert pow(3, shamir.PRIME - 1, shamir.PRIME) == 1  # Fermat witness (the prime is also checked below)
    assert all(shamir.PRIME % q for q in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31))


@settings(max_examples=25, deadline=None)
@given(
    secret=st.integers(min_value=0, max_value=2**256 - 1),
    n=st.integers(min_value=1, max_value=12),
    data=st.data(),
)
def test_shamir_any_t_shares_reconstruct(secret, n, data):
    t = data.draw(st.integers(min_value=1, max_value=n))
    xs = data.draw(st.lists(st.integers(1, 2**32), min_size=n, max_size=n, unique=True))
    ys = shamir.split(secret, t, xs)
    subset = data.draw(st.lists(st.sampled_from(range(n)), min_size=t, max_size=n, unique=True))
    assert shamir.reconstruct([(xs[i], ys[i]) for i in subset], t) == secret
    assert shamir.share_from_bytes(shamir.share_to_bytes(ys[0])) == ys[0]


def _interpolate_at(points, x, p=shamir.PRIME):
    acc = 0
    for i, (xi, yi) in enumerate(points):
        num, den = 1, 1
        for j, (xj, _) in enumerate(points):
            if j != i:
                num, den = num * (x - xj) % p, den * (xi - xj) % p
        acc += yi * num * pow(den, -1, p)
    return acc % p


def test_shamir_t_minus_1_shares_are_consistent_with_every_secret():
    # Structural: for t-1 shares and ANY candidate secret c there is a completion (a t-th share) that
    # reconstructs to c, so t-1 shares cannot determine the secret.
    t, xs = 4, [5, 9, 11, 20, 33]
    ys = shamir.split(12345, t, xs)
    known = list(zip(xs[: t - 1], ys[: t - 1], strict=False))
    completions = set()
    for candidate in (0, 1, 12345, 2**255):
        y_t = _interpolate_at([(0, candidate)] + known, xs[t - 1])
        completions.add(y_t)
        assert shamir.reconstruct(known + [(xs[t - 1], y_t)], t) == candidate
    assert len(completions) == 4 and ys[t - 1] in completions
    with pytest.raises(ThresholdError):
        shamir.reconstruct(known, t)


def test_shamir_single_share_is_uniform_whatever_the_secret():
    # Small field so the distribution can be checked exactly: a share of a t>=2 sharing is uniform.
    p, samples = 11, 3300
    for secret in (0, 7):
        counts = np.bincount(
            [shamir.split(secret, 2, [3, 4], prime=p)[0] for _ in range(samples)], minlength=p
        )
        chi2 = ((counts - samples / p) ** 2 / (samples / p)).sum()
        assert chi2 < 40  # chi2(10) > 40 with probability < 2e-5


def test_shamir_rejects_bad_arguments():
    with pytest.raises(SecAggConfigError):
        shamir.split(-1, 2, [1, 2])
    with pytest.raises(SecAggConfigError):
        shamir.split(shamir.PRIME, 2, [1, 2])
    with pytest.raises(SecAggConfigError):
        shamir.split(5, 3, [1, 2])
    with pytest.raises(SecAggConfigError):
        shamir.split(5, 0, [1, 2])
    with pytest.raises(SecAggConfigError):
        shamir.split(5, 2, [1, 1])
    with pytest.raises(SecAggConfigError):
        shamir.split(5, 2, [0, 1])
    with pytest.raises(InvalidMessageError):
        shamir.share_from_bytes(bytes(32))
    with pytest.raises(InvalidMessageError):
        shamir.share_from_bytes((shamir.PRIME).to_bytes(33, "little"))


def test_lagrange_coefficients_are_cached():
    shamir.lagrange_at_zero.cache_clear()
    ys = shamir.split(99, 3, [1, 2, 3])
    for _ in range(3):
        assert shamir.reconstruct(list(zip([1, 2, 3], ys, strict=False)), 3) == 99
    info = shamir.lagrange_at_zero.cache_info()
    assert info.hits == 2 and info.misses == 1


@settings(max_examples=40, deadline=None)
@given(data=st.data(), universe=st.booleans())
def test_checked_reconstruction_detects_and_names_an_altered_share(data, universe):
    """Issue 13 finding 2: every subset of >= t shares gives the secret, verified iff more than t; one
    altered share among m > t is always detected, and named when m >= t + 2 (with or without the
    per-k weight table)."""
    from secagg.errors import InconsistentSharesError

    k = data.draw(st.integers(2, 24))
    t = data.draw(st.integers(1, k))
    secret = data.draw(st.integers(0, 2**256 - 1))
    xs = (
        list(range(1, k + 1))
        if universe
        else sorted(data.draw(st.sets(st.integers(1, 2**32), min_size=k, max_size=k)))
    )
    ys = shamir.split(secret, t, xs)
    chosen = sorted(data.draw(st.sets(st.integers(0, k - 1), min_size=t, max_size=k)))
    pts = [(xs[i], ys[i]) for i in chosen]
    uni = k if universe else None
    assert shamir.reconstruct_checked(pts, t, universe=uni) == (secret, len(pts) > t)
    if len(pts) == t:
        return
    bad = data.draw(st.integers(0, len(pts) - 1))
    delta = data.draw(st.sampled_from([1, 2**64, shamir.PRIME - 1]))
    altered = list(pts)
    altered[bad] = (pts[bad][0], (pts[bad][1] + delta) % shamir.PRIME)
    with pytest.raises(InconsistentSharesError) as info:
        shamir.reconstruct_checked(altered, t, universe=uni)
    if len(pts) >= t + 2:
        assert info.value.suspects == (pts[bad][0],)
    else:
        assert pts[bad][0] in info.value.suspects
    with pytest.raises(ThresholdError):
        shamir.reconstruct_checked(pts[: t - 1], t, universe=uni)
