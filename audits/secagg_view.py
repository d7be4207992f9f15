"""What the server saw in a secure-aggregation round, checked from the round's transcript.

For every masked input y_u (stage "masked_input", client -> server) of `secagg.aggregate(...,
record_transcript=True)`:

* uniform on Z_{2^32}: a chi-square test on the bytes of y_u (256 bins; 16 bins of the top nibble when
  the vector is too short for 256) and one on the 32 bit positions (ones per position ~ Bin(d, 1/2));
* independent of the input x_u: Pearson correlation of y_u and x_u (as numbers; |r| sqrt(d) ~ N(0, 1)),
  and a chi-square independence test of their top nibbles (16 x 16 table);
* only the sum decodes: y_u differs from x_u almost everywhere, the plain sum of the masked vectors is
  not the sum of the inputs (the self masks only cancel after the unmask stage), and the round's result
  is the inputs' sum mod 2^32.

Each test's p-value is reported; the verdict rejects at family level ``alpha`` (Bonferroni over all
tests of the round). Only the public API is used (`secagg.aggregate`, `AggregateResult.transcript`,
`secagg.messages.decode`); unknown transcript fields and message types are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import chi2, chi2_contingency, norm

from audits.errors import AuditError

__all__ = [
    "bit_uniformity_pvalue",
    "byte_uniformity_pvalue",
    "independence_pvalues",
    "masked_inputs",
    "secagg_view",
]


def masked_inputs(transcript: Sequence[Any]) -> dict[int, np.ndarray]:
    """client id -> the masked uint32 vector it sent, decoded from the transcript's raw bytes."""
    from secagg import messages

    out: dict[int, np.ndarray] = {}
    for entry in transcript:
        if getattr(entry, "stage", None) != "masked_input" or getattr(entry, "direction", None) != "up":
            continue
        msg = messages.decode(entry.payload)
        masked = getattr(msg, "masked", None)
        if masked is None:
            continue
        out[int(getattr(msg, "sender", entry.client))] = np.asarray(masked, dtype=np.uint32)
    return out


def byte_uniformity_pvalue(vec: np.ndarray) -> float:
    """Chi-square p-value of the byte histogram against uniform (top nibbles when bytes are too few)."""
    b = np.ascontiguousarray(vec, dtype="<u4").view(np.uint8)
    bins = 256
    if b.size / 256 < 5:
        b, bins = b >> 4, 16
    if b.size / bins < 5:
        raise AuditError(f"a vector of {vec.size} entries is too short for a uniformity test")
    counts = np.bincount(b, minlength=bins)
    exp = b.size / bins
    stat = float(np.sum((counts - exp) ** 2) / exp)
    return float(chi2.sf(stat, bins - 1))


def bit_uniformity_pvalue(vec: np.ndarray) -> float:
    """Chi-square p-value of the 32 bit positions' counts of ones against Bin(d, 1/2) each."""
    v = np.asarray(vec, dtype=np.uint32)
    ones = np.array([np.count_nonzero((v >> np.uint32(k)) & np.uint32(1)) for k in range(32)], float)
    d = v.size
    stat = float(np.sum((ones - d / 2) ** 2 / (d / 4)))
    return float(chi2.sf(stat, 32))


def independence_pvalues(masked: np.ndarray, inputs: np.ndarray) -> dict[str, float | None]:
    """p-values for "masked and input are independent": correlation and a top-nibble contingency test
    (None where the input is constant: nothing to correlate with)."""
    y = np.asarray(masked, dtype=np.uint32).astype(np.float64)
    x = np.asarray(inputs, dtype=np.uint32).astype(np.float64)
    if x.shape != y.shape:
        raise AuditError(f"masked vector {y.shape} and input {x.shape} differ in shape")
    if np.std(x) == 0 or np.std(y) == 0:
        return {"correlation": None, "correlation_p": None, "contingency_p": None}
    r = float(np.corrcoef(x, y)[0, 1])
    p_corr = float(2 * norm.sf(abs(r) * np.sqrt(x.size)))
    xi = (np.asarray(inputs, dtype=np.uint32) >> np.uint32(28)).astype(np.int64)
    yi = (np.asarray(masked, dtype=np.uint32) >> np.uint32(28)).astype(np.int64)
    table = np.zeros((16, 16))
    np.add.at(table, (xi, yi), 1)
    table = table[table.sum(1) > 0][:, table.sum(0) > 0]
    p_cont = float(chi2_contingency(table)[1]) if min(table.shape) > 1 else None
    return {"correlation": r, "correlation_p": p_corr, "contingency_p": p_cont}


def secagg_view(
    result: Any, inputs: Mapping[int, np.ndarray] | Sequence[np.ndarray], *, alpha: float = 0.01
) -> dict[str, Any]:
    """Check one round (an `AggregateResult` with its transcript) against the clients' uint32 inputs."""
    xs = dict(inputs) if isinstance(inputs, Mapping) else dict(enumerate(inputs))
    transcript = getattr(result, "transcript", None)
    if not transcript:
        raise AuditError("the round has no transcript: run secagg.aggregate(..., record_transcript=True)")
    masked = masked_inputs(transcript)
    if not masked:
        raise AuditError("the transcript holds no masked input")
    clients: dict[str, Any] = {}
    pvals: list[float] = []
    for cid, y in sorted(masked.items()):
        x = np.asarray(xs[cid], dtype=np.uint32)
        row: dict[str, Any] = {
            "byte_uniformity_p": byte_uniformity_pvalue(y),
            "bit_uniformity_p": bit_uniformity_pvalue(y),
            **independence_pvalues(y, x),
            "fraction_equal_to_input": float(np.mean(y == x)),
        }
        pvals += [row[k] for k in ("byte_uniformity_p", "bit_uniformity_p", "correlation_p", "contingency_p")
                  if row[k] is not None]  # fmt: skip
        clients[str(cid)] = row
    survivors = tuple(getattr(result, "survivors", tuple(masked)))
    true_sum = np.zeros_like(next(iter(masked.values())))
    for cid in survivors:
        true_sum = true_sum + np.asarray(xs[cid], dtype=np.uint32)  # wraps mod 2^32
    masked_sum = np.zeros_like(true_sum)
    for cid in survivors:
        masked_sum = masked_sum + masked[cid]
    decoded = np.asarray(result.sum, dtype=np.uint32)
    min_p = min(pvals) if pvals else 1.0
    n_tests = max(1, len(pvals))
    only_sum = bool(np.array_equal(decoded, true_sum)) and not np.array_equal(masked_sum, true_sum)
    looks_uniform = min_p * n_tests > alpha
    return {
        "clients": clients,
        "tests": n_tests,
        "min_p_value": min_p,
        "alpha": alpha,
        "correction": "bonferroni over every test of the round",
        "masked_vectors_look_uniform_and_independent": looks_uniform,
        "max_fraction_equal_to_input": max(r["fraction_equal_to_input"] for r in clients.values()),
        "sum_of_masked_vectors_equals_sum": bool(np.array_equal(masked_sum, true_sum)),
        "decoded_sum_correct": bool(np.array_equal(decoded, true_sum)),
        "only_the_sum_decodes": only_sum,
        "passed": looks_uniform and only_sum,
    }
