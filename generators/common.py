"""Helpers shared by the simulators: deterministic random streams and time arithmetic.

Every random draw comes from a generator keyed by ``(seed, device, window, purpose)``, so a
document depends only on those and never on how a run was chunked, resumed or restarted.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import numpy as np

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTES_PER_DAY = 1440
SECONDS_PER_DAY = 86_400


def rng_for(seed: int, *key: object) -> np.random.Generator:
    """An independent, reproducible random stream for ``(seed, *key)``."""
    digest = hashlib.blake2b(repr((int(seed), *key)).encode(), digest_size=16).digest()
    return np.random.default_rng(np.frombuffer(digest, dtype=np.uint32))


def hex_id(seed: int, *key: object, length: int = 8) -> str:
    """A stable pseudo-random hex string (device and user identifiers)."""
    return hashlib.blake2b(repr((int(seed), *key)).encode(), digest_size=16).hexdigest()[:length]


def day_number(moment: datetime) -> int:
    """Days since 1970-01-01 (UTC) of an aware datetime."""
    return int((moment - EPOCH).total_seconds() // SECONDS_PER_DAY)


def day_start(day: int) -> datetime:
    return EPOCH + timedelta(days=day)


def epoch_seconds(moment: datetime) -> int:
    return int((moment - EPOCH).total_seconds())


def ms_to_datetimes(epoch_ms: np.ndarray) -> list[datetime]:
    """Aware UTC datetimes (millisecond precision, like BSON) from epoch milliseconds."""
    return [EPOCH + timedelta(milliseconds=ms) for ms in np.asarray(epoch_ms, dtype=np.int64).tolist()]


def to_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: pass an aware (UTC) datetime")
    return moment.astimezone(UTC)


def days_covering(start: datetime, end: datetime) -> range:
    """Day numbers whose UTC day overlaps ``[start, end)``."""
    if end <= start:
        return range(0)
    last = day_number(end - timedelta(microseconds=1))
    return range(day_number(start), last + 1)


def ema(values: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential moving average (a first-order lag), as a convolution with the truncated
    exponential kernel (weights below 1e-9 dropped); the series starts from its first value."""
    values = np.asarray(values, dtype=float)
    length = int(np.ceil(np.log(1e-9) / np.log(1.0 - alpha))) + 1
    kernel = alpha * (1.0 - alpha) ** np.arange(length)
    padded = np.concatenate([np.full(length - 1, values[0]), values])
    smoothed = np.convolve(padded, kernel, mode="valid")
    return smoothed / kernel.sum()
