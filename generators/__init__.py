"""Device simulators: wearables (seed 001), indoor air quality (seed 000) and the device registry.

Pure functions produce documents for a time range (deterministic per seed, device and day);
:mod:`generators.writer`, :mod:`generators.backfill` and :mod:`generators.stream` write them
to MongoDB. Field names and types follow docs/contracts.md §1.

    from generators import build_fleet, documents
    fleet = build_fleet(users=10, sensors=5, seed=42, anchor=start)
    docs = documents(fleet, "air_quality", start, end, bad_rate=0.01)
"""

from generators.air_quality import READINGS
from generators.backfill import backfill, backfill_days, catch_up
from generators.bad_data import BAD_KINDS, MARKER
from generators.catalog import MEASUREMENTS, documents, key_epoch
from generators.devices import Fleet, build_fleet, device_documents, user_documents
from generators.stream import stream
from generators.writer import REJECTED_COLLECTION, MongoWriter, WriteStats

COLLECTIONS = ("users", "devices", *MEASUREMENTS)

__all__ = [
    "BAD_KINDS", "COLLECTIONS", "MARKER", "MEASUREMENTS", "READINGS", "REJECTED_COLLECTION", "Fleet",
    "MongoWriter", "WriteStats", "backfill", "backfill_days", "build_fleet", "catch_up", "device_documents", "documents",
    "key_epoch", "stream", "user_documents",
]
