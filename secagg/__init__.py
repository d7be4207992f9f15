"""secagg: SecAgg+ secure aggregation (Bonawitz et al. 2017; Bell et al. 2020) on numpy + cryptography.

The server only ever sees masked vectors and the sum of at least `min_survivors` clients. Float API
(what the federated core calls each round; concatenate update, example count and metrics into one vector):

    total, result = secagg.secure_sum(vectors, clip_range=1.0, dropouts={3: "masked_input"})
    # total: float64 sum of the survivors' clipped vectors, |error| <= result.max_abs_error per entry
    # result.survivors, result.bytes_up/down[c][stage], result.client_cpu_s[c], result.server_cpu_s

Integer API: `aggregate(uint32_vectors, config, dropouts=...)` -> AggregateResult (sum mod 2^32 + the
server's transcript). Sans-IO sessions for other transports: `ClientSession`, `ServerSession`, `messages`.
"""

from secagg import messages
from secagg.client import ClientSession
from secagg.config import SecAggConfig
from secagg.encoding import FixedPointEncoding, max_bits_for
from secagg.errors import (
    DropoutThresholdError,
    InconsistentSharesError,
    InvalidMessageError,
    InvalidStateError,
    SecAggConfigError,
    SecAggError,
    StageError,
    SumOutOfRangeError,
    ThresholdError,
    UnsafeRequestError,
)
from secagg.params import Parameters, choose_parameters
from secagg.server import ServerSession
from secagg.transport.memory import AggregateResult, TranscriptEntry, aggregate, check_sum, secure_sum

__all__ = [
    "AggregateResult",
    "ClientSession",
    "DropoutThresholdError",
    "FixedPointEncoding",
    "InconsistentSharesError",
    "InvalidMessageError",
    "InvalidStateError",
    "Parameters",
    "SecAggConfig",
    "SecAggConfigError",
    "SecAggError",
    "ServerSession",
    "StageError",
    "SumOutOfRangeError",
    "ThresholdError",
    "TranscriptEntry",
    "UnsafeRequestError",
    "aggregate",
    "check_sum",
    "choose_parameters",
    "max_bits_for",
    "messages",
    "secure_sum",
]
