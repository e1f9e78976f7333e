"""The trip-summary configuration (seed 003's ``aggregations.json``) and the job's environment settings.

The file format is exactly the seed's::

    {"device_clusters": [{"devices": ["2A896980", ...], "cluster": "cluster1"}, ...],
     "cluster_details": [{"cluster1": {"trip_identifier": {"message": "CAN2_gnss_speed", "signal": ["Speed"]},
                                       "aggregations": [{"message": "...", "signal": ["..."],
                                                         "aggregation": "avg"}, ...]}}]}

The seed's script silently skips what it does not understand (an unknown aggregation gives no rows,
a device listed twice lands in the last cluster, a cluster without details is ignored). Here every
such case is a :class:`ConfigError` naming the offending entry, so a typo cannot drop a day's data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

AGGREGATIONS = ("avg", "max", "min", "sum")

# Environment settings of the trip job (read here, not in iot_core, so the domain package stays
# self-contained; the lead may mirror them in iot_core.settings / .env).


class ConfigError(ValueError):
    """The aggregations.json file is malformed; the message says where and why."""


@dataclass(frozen=True)
class Aggregation:
    message: str
    signals: tuple[str, ...]
    aggregation: str  # one of AGGREGATIONS


@dataclass(frozen=True)
class Cluster:
    name: str
    devices: tuple[str, ...]
    trip_message: str
    trip_signals: tuple[str, ...]
    aggregations: tuple[Aggregation, ...]

    def messages(self) -> list[str]:
        """Messages this cluster aggregates, in first-use order."""
        return list(dict.fromkeys(a.message for a in self.aggregations))


@dataclass(frozen=True)
class TripConfig:
    clusters: tuple[Cluster, ...]

    @property
    def devices(self) -> list[str]:
        """Every configured device in file order (the order of the output rows)."""
        return [d for c in self.clusters for d in c.devices]

    def cluster_of(self, device: str) -> Cluster:
        for c in self.clusters:
            if device in c.devices:
                return c
        raise KeyError(device)


def _require(mapping, key: str, where: str, kind: type):
    if not isinstance(mapping, dict):
        raise ConfigError(f"{where}: expected an object, got {type(mapping).__name__}")
    if key not in mapping:
        raise ConfigError(f"{where}: missing key {key!r}")
    value = mapping[key]
    if not isinstance(value, kind):
        raise ConfigError(f"{where}.{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _str_list(value, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: expected a non-empty list of names, got {value!r}")
    return tuple(value)


def parse_config(raw: dict) -> TripConfig:
    """Validate the parsed JSON and return a :class:`TripConfig` (raises :class:`ConfigError`)."""
    clusters_raw = _require(raw, "device_clusters", "config", list)
    details_raw = _require(raw, "cluster_details", "config", list)

    device_owner: dict[str, str] = {}
    cluster_devices: dict[str, tuple[str, ...]] = {}
    for i, entry in enumerate(clusters_raw):
        where = f"device_clusters[{i}]"
        name = _require(entry, "cluster", where, str)
        devices = _str_list(_require(entry, "devices", where, list), f"{where}.devices")
        if name in cluster_devices:
            raise ConfigError(f"{where}: cluster {name!r} is listed twice in device_clusters")
        for device in devices:
            if device in device_owner:
                raise ConfigError(f"{where}: device {device!r} is in two clusters "
                                  f"({device_owner[device]!r} and {name!r})")
            device_owner[device] = name
        cluster_devices[name] = devices

    details: dict[str, dict] = {}
    for i, entry in enumerate(details_raw):
        if not isinstance(entry, dict) or not entry:
            raise ConfigError(f"cluster_details[{i}]: expected an object {{cluster name: details}}")
        for name, detail in entry.items():
            if name in details:
                raise ConfigError(f"cluster_details[{i}]: cluster {name!r} has details twice")
            if name not in cluster_devices:
                raise ConfigError(f"cluster_details[{i}]: cluster {name!r} is not in device_clusters")
            details[name] = detail

    clusters = []
    for name, devices in cluster_devices.items():
        if name not in details:
            raise ConfigError(f"cluster {name!r} (devices {', '.join(devices)}) has no entry in cluster_details")
        where = f"cluster_details.{name}"
        detail = details[name]
        ident = _require(detail, "trip_identifier", where, dict)
        trip_message = _require(ident, "message", f"{where}.trip_identifier", str)
        trip_signals = _str_list(_require(ident, "signal", f"{where}.trip_identifier", list),
                                 f"{where}.trip_identifier.signal")
        aggs_raw = _require(detail, "aggregations", where, list)
        if not aggs_raw:
            raise ConfigError(f"{where}.aggregations: empty (nothing to summarise)")
        aggs = []
        for j, agg in enumerate(aggs_raw):
            awhere = f"{where}.aggregations[{j}]"
            kind = _require(agg, "aggregation", awhere, str)
            if kind not in AGGREGATIONS:
                raise ConfigError(f"{awhere}: unknown aggregation {kind!r} (use one of {', '.join(AGGREGATIONS)})")
            aggs.append(Aggregation(
                message=_require(agg, "message", awhere, str),
                signals=_str_list(_require(agg, "signal", awhere, list), f"{awhere}.signal"),
                aggregation=kind,
            ))
        clusters.append(Cluster(name, devices, trip_message, trip_signals, tuple(aggs)))
    return TripConfig(tuple(clusters))


def load_config(path: str | os.PathLike) -> TripConfig:
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    try:
        return parse_config(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _settings():
    from iot_core.settings import get_settings  # the one reader of .env and the environment

    return get_settings()


def configured_lake_root(default: str | None = None) -> str | None:
    return _settings().trips_lake_root or default


def configured_config_path(default: str | None = None) -> str | None:
    return _settings().trips_config or default


def configured_s3_endpoint() -> str | None:
    return _settings().trips_s3_endpoint or None


def configured_gap_minutes() -> float:
    return _settings().trips_gap_minutes


def configured_shard_size() -> int:
    return _settings().trips_shard_size


def configured_s3_concurrency() -> int:
    return _settings().trips_s3_concurrency


def configured_s3_cache_mb() -> int:
    return _settings().trips_s3_cache_mb
