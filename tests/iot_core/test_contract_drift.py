"""The contract-drift test: every layer agrees with the one data contract (iot_core/contract.py).

The extract (per-document contract and both vectorised fast paths), the API's payload model,
dbt (generated macros, the stage SQL and its tests), the Great Expectations suite, the other
places that list the measures, and docs/contracts.md. Before this, the rules existed three or
four times and had drifted (co2 max 40,000 vs 10,000, bpm min 20 vs 25, age max 130 vs 120,
UTC offsets ±23:59 vs ±15:59). Pure Python and file reads: no servers.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bson
import pytest
import yaml
from bson.codec_options import CodecOptions

from dlt_pipelines import contract as extract
from dlt_pipelines import tables
from dlt_pipelines.bucket_fastpath import split_buckets
from dlt_pipelines.fastpath import split_air_quality
from iot_core import contract as spec
from iot_core.settings import PROJECT_ROOT

NOW = datetime.now(UTC).replace(microsecond=0)
CTX = extract.Context(now=NOW, known_devices={"aq-1": "air_quality", "w-1": "watch", "p-1": "phone"},
                      naive_zone=None)
START = NOW - timedelta(hours=6)
OPTIONS = CodecOptions(tz_aware=True)


def valid(collection: str) -> dict:
    """A valid document of each collection (every bounded field at an ordinary value)."""
    docs = {
        "air_quality": {"_id": "aq:1", "devid": "aq-1", "ts": START.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "readings": [50.0, 21.5, 40.0, 101.3, 0.5, 600.0, 3.0], "_ingested_at": NOW},
        "heart_rates": {"_id": "hr:1", "device_id": "w-1", "created_at": START, "ended_at": START + timedelta(hours=4),
                        "metrics": [{"ts": START + timedelta(minutes=1), "bpm": 60, "confidence": 2}],
                        "_ingested_at": NOW},
        "steps": {"_id": "st:1", "device_id": "p-1", "created_at": START, "ended_at": START + timedelta(minutes=15),
                  "metrics": [{"ts": START + timedelta(minutes=1), "steps": 10}], "_ingested_at": NOW},
        "sleeps": {"_id": "sl:1", "device_id": "w-1", "created_at": START, "ended_at": START + timedelta(minutes=15),
                   "metrics": [{"start_ts": START - timedelta(hours=7), "end_ts": START + timedelta(minutes=5),
                                "duration": int(timedelta(hours=7, minutes=5).total_seconds() * 1000)}],
                   "_ingested_at": NOW},
        "users": {"_id": "u-1", "user_id": "u-1", "age": 40, "height": 170, "gender": "other",
                  "email": "u@example.org", "dob": datetime(NOW.year - 40, 1, 1, tzinfo=UTC),
                  "created_at": NOW - timedelta(days=10), "devices": ["w-1"], "share_with_research_asof": None,
                  "share_with_public_asof": None, "share_with_friends_asof": None, "_ingested_at": NOW},
        "devices": {"_id": "d-1", "device_id": "d-1", "kind": "air_quality", "owner_user_id": None,
                    "location": {"lat": 1.0, "long": 2.0, "description": "x", "building": "A", "floor": 1,
                                 "room": "1"},
                    "manufacturer": {"name": "Acme", "website": None}, "model": "m", "mac": "00:11",
                    "installed_at": NOW - timedelta(days=5),
                    "history": [{"ts": NOW - timedelta(days=5), "action": "INSTALLED", "technician_id": 1,
                                 "notes": ""}],
                    "active": True, "_ingested_at": NOW},
    }
    return copy.deepcopy(docs[collection])


def bounded_fields() -> list[tuple[str, list[str], spec.Field]]:
    """(collection, path inside a document, field) of every bounded field, measures included."""
    out = []
    for c in spec.COLLECTIONS.values():
        stack = [([f.name], f) for f in c.fields]
        while stack:
            path, f = stack.pop()
            if f.minimum is not None or f.maximum is not None:
                out.append((c.name, path, f))
            stack += [([*path, x.name], x) for x in f.fields]
    return out


def with_value(doc: dict, path: list[str], value) -> dict:
    """``doc`` with the field at ``path`` set; lists (metrics, history) are entered at item 0."""
    node = doc
    for name in path[:-1]:
        node = node[name]
        if isinstance(node, list):
            node = node[0]
    node[path[-1]] = value
    if path == ["age"]:  # keep the date of birth consistent with the age
        doc["dob"] = datetime(NOW.year - int(value) - 1, NOW.month, 1, tzinfo=UTC) + timedelta(days=45)
    if path == ["metrics", "duration"] and isinstance(value, int) and value >= 0:  # and the sleep's start
        node["start_ts"] = node["end_ts"] - timedelta(milliseconds=value)
    return doc


def accepted(collection: str, doc: dict) -> bool:
    try:
        extract.flatten(collection, doc, CTX)
    except extract.BadDocument:
        return False
    return True


def reason(collection: str, doc: dict) -> str:
    with pytest.raises(extract.BadDocument) as exc:
        extract.flatten(collection, doc, CTX)
    return exc.value.kind


FIELDS = bounded_fields()
MEASURE_CASES = [(i, m) for i, m in enumerate(spec.MEASURES)]


def test_the_valid_documents_are_valid():
    for collection in spec.COLLECTIONS:
        assert accepted(collection, valid(collection)), collection


@pytest.mark.parametrize("collection, path, field", FIELDS, ids=[f"{c}.{'.'.join(p)}" for c, p, _ in FIELDS])
def test_the_extract_enforces_every_bound_of_the_contract(collection, path, field):
    integral = field.type == "int"
    step = 1 if integral else 0.001
    for inside in (field.minimum, field.maximum):
        if collection == "users" and path == ["age"] and inside > spec.MAX_AGE_YEARS - 1:
            inside = spec.MAX_AGE_YEARS  # a dob 130 years back is still allowed
        value = int(inside) if integral else float(inside)
        assert accepted(collection, with_value(valid(collection), path, value)), (path, value)
    for outside in (field.minimum - step, field.maximum + step):
        value = int(outside) if integral else float(outside)
        kind = reason(collection, with_value(valid(collection), path, value))
        assert kind in ("out_of_range", "integer_overflow"), (path, value, kind)


@pytest.mark.parametrize("i, measure", MEASURE_CASES, ids=[m.name for _, m in MEASURE_CASES])
def test_every_measure_range_holds_in_the_extract_and_its_fast_paths(i, measure):
    docs = []
    for n, value in enumerate((measure.minimum, measure.maximum, measure.minimum - 0.001, measure.maximum + 0.001)):
        doc = valid("air_quality")
        doc["_id"] = f"aq:{measure.name}:{n}"
        doc["readings"][i] = float(value)
        docs.append(doc)
    assert [accepted("air_quality", d) for d in docs] == [True, True, False, False]
    # the vectorised path takes exactly the accepted ones, the row-wise fast path too
    table, others = split_air_quality(b"".join(bson.encode(d) for d in docs), tables.PARENT_SCHEMAS["air_quality"],
                                      CTX, NOW + timedelta(seconds=1))
    assert table.column("_id").to_pylist() == [docs[0]["_id"], docs[1]["_id"]]
    assert len(others) == 2
    from dlt_pipelines.reader import typical_air_quality
    assert [typical_air_quality(bson.decode(bson.encode(d), OPTIONS), CTX) is not None for d in docs] == \
        [True, True, False, False]


@pytest.mark.parametrize("collection, value_field", [("heart_rates", "bpm"), ("steps", "steps")])
def test_the_bucket_fast_path_takes_the_contracts_bounds(collection, value_field):
    field = spec.field_at(f"{collection}.metrics.{value_field}")
    docs = []
    for n, value in enumerate((field.minimum, field.maximum, field.minimum - 1, field.maximum + 1)):
        doc = valid(collection)
        doc["_id"] = f"{collection}:{n}"
        doc["metrics"][0][value_field] = int(value)
        docs.append(doc)
    assert [accepted(collection, d) for d in docs] == [True, True, False, False]
    parts = list(split_buckets(b"".join(bson.encode(d) for d in docs), collection, CTX, NOW + timedelta(seconds=1)))
    assert [i for p in parts for i in p.rows.column("_id").to_pylist()] == [docs[0]["_id"], docs[1]["_id"]]


def test_the_extract_takes_exactly_the_contracts_choices_fields_and_senders():
    for path in ("devices.kind", "devices.history.action", "users.gender"):
        collection, *inner = path.split(".")
        for choice in spec.field_at(path).choices:
            assert accepted(collection, with_value(valid(collection), inner, choice)), (path, choice)
        assert reason(collection, with_value(valid(collection), inner, "something-else")) == "out_of_range"
    for collection, c in spec.COLLECTIONS.items():
        extra = valid(collection) | {"not_in_the_contract": 1}
        assert not accepted(collection, extra)
        if c.device_field:
            for kind in spec.DEVICE_KINDS:
                device = {"air_quality": "aq-1", "watch": "w-1", "phone": "p-1"}[kind]
                doc = valid(collection) | {c.device_field: device}
                assert accepted(collection, doc) == (kind in c.sender_kinds), (collection, kind)


def test_time_roles_follow_the_contract():
    future = NOW + spec.FUTURE_TOLERANCE + timedelta(minutes=1)
    for consent in spec.CONSENT_FIELDS:   # valid-from dates may lie in the future
        assert accepted("users", valid("users") | {consent: NOW + timedelta(days=400)})
    assert reason("users", valid("users") | {"created_at": future}) == "ts_far_future"
    assert reason("users", valid("users") | {"dob": NOW + timedelta(days=1)}) == "dob_in_future"
    edge = valid("air_quality") | {"ts": (NOW + spec.FUTURE_TOLERANCE).strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert accepted("air_quality", edge)
    assert reason("air_quality", valid("air_quality") | {"ts": future.isoformat()}) == "ts_far_future"
    assert reason("air_quality", valid("air_quality") | {"ts": "1999-12-31T23:59:59Z"}) == "ts_before_2000"
    for collection in ("heart_rates", "steps", "sleeps"):
        c = spec.COLLECTIONS[collection]
        doc = valid(collection)
        assert accepted(collection, doc | {"ended_at": doc["created_at"] + c.bucket_span})
        assert reason(collection, doc | {"ended_at": doc["created_at"] + c.bucket_span + timedelta(seconds=1)}) \
            == "bucket_too_long"


def test_the_extract_tables_and_other_measure_lists_follow_the_contract():
    from exports.sensor_csv import MEASURES as CSV_MEASURES
    from generators.air_quality import READINGS

    names = list(spec.MEASURE_NAMES)
    columns = tables.PARENT_SCHEMAS["air_quality"].names
    assert [c for c in columns if c in names] == names
    assert list(extract.AIR_QUALITY_MEASURES) == names
    assert list(CSV_MEASURES) == names
    assert list(READINGS) == names


def test_the_api_payload_model_follows_the_contract():
    from api.app import DevicePayload

    schema = DevicePayload.model_json_schema()["properties"]
    assert schema["readings"]["minItems"] == schema["readings"]["maxItems"] == len(spec.MEASURES)
    assert schema["devid"]["maxLength"] == spec.MAX_IDENTIFIER_LENGTH
    for m in spec.MEASURES:
        assert f"{m.name} ({m.unit}, {m.minimum:g} to {m.maximum:g})" in schema["readings"]["description"]
    for fmt in ("iso8601", "http_date", "unix_seconds", "unix_millis"):
        assert spec.TIMESTAMP_FORMATS[fmt] in schema["ts"]["description"]


def test_the_gx_suite_follows_the_contract():
    from quality.checkpoint import SUITES

    checks = {(t, c.kind, c.column): c.args for t, (_, cs) in SUITES.items() for c in cs}
    for m in spec.MEASURES:
        assert checks[("air_quality", "between", m.name)] == {"min_value": m.minimum, "max_value": m.maximum}
    for table, column, path in (("heart_rates__metrics", "bpm", "heart_rates.metrics.bpm"),
                                ("heart_rates__metrics", "confidence", "heart_rates.metrics.confidence"),
                                ("steps__metrics", "steps", "steps.metrics.steps"),
                                ("sleeps__metrics", "duration", "sleeps.metrics.duration"),
                                ("users", "age", "users.age"), ("users", "height", "users.height")):
        lo, hi = spec.field_at(path).bounds
        assert checks[(table, "between", column)] == {"min_value": lo, "max_value": hi}, path
    assert checks[("devices", "in_set", "kind")]["value_set"] == list(spec.DEVICE_KINDS)
    assert checks[("users", "in_set", "gender")]["value_set"] == list(spec.GENDERS)


DBT = PROJECT_ROOT / "dbt_project"


def test_dbts_contract_macros_are_generated_from_the_contract():
    from dbt_project.contract_macros import MACRO_FILE, render

    assert MACRO_FILE.read_text() == render(), "run: python -m dbt_project.contract_macros --write"


def _sql_without_comments(path: Path) -> str:
    text = re.sub(r"\{#.*?#\}", "", path.read_text(), flags=re.S)
    return re.sub(r"--[^\n]*", "", text)


def test_the_stage_sql_and_its_tests_hold_no_contract_value_of_their_own():
    """Stage reads every bound, choice and time limit from the generated macros: none of the
    contract's values appears as a literal in the stage SQL or in the stage tests' arguments."""
    bounds = {int(v) for _, _, f in FIELDS for v in f.bounds if v not in (0, 1, 3)}
    bounds |= {int(v) for m in spec.MEASURES for v in (m.minimum, m.maximum) if v not in (0, 1, 3)}
    bounds |= {120, 25, 10_000, 60}   # the drifted values of before, and the old tolerance in minutes
    bounds -= {1000}                   # voc's maximum, but also the milliseconds in a second
    files = [p for p in (DBT / "models" / "staging").rglob("*.sql")] + \
        [p for p in (DBT / "models" / "intermediate").rglob("*.sql")] + \
        [DBT / "macros" / n for n in ("air_quality_checked.sql", "age_group.sql", "registry.sql")]
    for path in files:
        literals = {int(n) for n in re.findall(r"(?<![\w.'])-?\d+(?![\w.'])", _sql_without_comments(path))}
        if path.name == "age_group.sql":
            literals -= {18, 25, 35, 45, 55, 65}   # the seed 001 age buckets
        assert not literals & bounds, (path.name, literals & bounds)
    for kind in ("watch", "phone"):  # which kinds send what ("air_quality" is also a collection name)
        for path in files:
            assert f"'{kind}'" not in _sql_without_comments(path), (path.name, kind)
    models = yaml.safe_load((DBT / "models" / "staging" / "raw" / "_raw__models.yml").read_text())
    for model in models["models"]:
        for column in model.get("columns", []):
            for test in column.get("data_tests", []):
                name = test if isinstance(test, str) else next(iter(test))
                assert name != "value_in_range", (model["name"], column["name"])
                if name == "accepted_values":
                    assert column["name"] == "age_group", (model["name"], column["name"])


def test_docs_state_the_contracts_values():
    docs = (PROJECT_ROOT / "docs" / "contracts.md").read_text()
    for m in spec.MEASURES:
        assert f"| `{m.name}` | {m.unit} | {m.minimum:,g} | {m.maximum:,g} |" in docs, m.name
    assert f"{spec.MAX_AGE_YEARS}" in docs and "iot_core/contract.py" in docs


def test_the_drift_test_catches_a_layer_that_drifts(monkeypatch):
    """Not vacuous: the stage's former co2 maximum in the extract, or the former bpm minimum in
    the bucket fast path, makes the tests above fail."""
    co2 = spec.MEASURE_NAMES.index("co2")
    monkeypatch.setitem(extract.AIR_QUALITY_RANGES, "co2", (0.0, 10_000.0))
    with pytest.raises(AssertionError):
        test_every_measure_range_holds_in_the_extract_and_its_fast_paths(co2, spec.MEASURES[co2])
    monkeypatch.undo()
    monkeypatch.setattr(extract, "BPM_RANGE", (25, 250))
    with pytest.raises(AssertionError):
        test_the_bucket_fast_path_takes_the_contracts_bounds("heart_rates", "bpm")
