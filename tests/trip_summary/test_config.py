"""aggregations.json: the seed's format is accepted, and every malformed case fails with a clear reason."""

from __future__ import annotations

import copy
import json

import pytest

from trips.config import ConfigError, load_config, parse_config
from trips.lakegen import seed_config

VALID = seed_config(["2A896980", "2F6913DB", "18D508A1"])


def test_seed_format_parses():
    config = parse_config(VALID)
    assert config.devices == ["2A896980", "2F6913DB", "18D508A1"]
    cluster = config.cluster_of("2F6913DB")
    assert cluster.name == "cluster1" and cluster.trip_message == "CAN2_gnss_speed"
    assert [a.aggregation for a in cluster.aggregations] == ["avg", "max", "avg"]
    assert cluster.aggregations[2].signals == ("AccelerationX", "AccelerationY", "AccelerationZ")


def _broken(edit) -> dict:
    raw = copy.deepcopy(VALID)
    edit(raw)
    return raw


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda r: r["cluster_details"][0]["cluster1"]["aggregations"][0].update(aggregation="median"),
     "unknown aggregation 'median'"),
    (lambda r: r["device_clusters"].append({"devices": ["2F6913DB"], "cluster": "cluster2"}),
     "device '2F6913DB' is in two clusters"),
    (lambda r: r["device_clusters"].append({"devices": ["12345678"], "cluster": "cluster2"}),
     "cluster 'cluster2' (devices 12345678) has no entry in cluster_details"),
    (lambda r: r.pop("device_clusters"), "missing key 'device_clusters'"),
    (lambda r: r["cluster_details"][0]["cluster1"].pop("trip_identifier"), "missing key 'trip_identifier'"),
    (lambda r: r["cluster_details"][0]["cluster1"]["aggregations"][1].pop("message"), "missing key 'message'"),
    (lambda r: r["cluster_details"][0]["cluster1"]["aggregations"][1].update(signal="Altitude"),
     "signal: expected list"),
    (lambda r: r["cluster_details"][0]["cluster1"]["aggregations"][1].update(signal=[]),
     "expected a non-empty list"),
    (lambda r: r["cluster_details"].append({"cluster9": {}}), "cluster 'cluster9' is not in device_clusters"),
])
def test_malformed_config_is_refused_with_reason(edit, reason):
    with pytest.raises(ConfigError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_config(_broken(edit))


def test_load_config_names_the_file(tmp_path):
    path = tmp_path / "aggregations.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="aggregations.json: not valid JSON"):
        load_config(path)
    path.write_text(json.dumps(VALID))
    assert load_config(path).devices == VALID["device_clusters"][0]["devices"]
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.json")
