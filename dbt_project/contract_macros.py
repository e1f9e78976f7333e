"""dbt's view of the data contract: ``macros/contract.sql``, generated from ``iot_core.contract``.

dbt cannot import Python, so the values the stage checks and the dbt tests need (measure names,
units and ranges, the other ranges and choices, the earliest time, the future tolerance, which
device kinds may send which collection, bucket spans, the oldest age) are written into a macro
file, committed with the project. Regenerate it after changing the contract::

    .venv/bin/python -m dbt_project.contract_macros --write

``tests/iot_core/test_contract_drift.py`` fails while the file and the contract disagree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from iot_core import contract as spec

MACRO_FILE = Path(__file__).resolve().parent / "macros" / "contract.sql"


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _ranges() -> dict[str, tuple[str, str]]:
    """Every bounded field as ``collection.field[.nested]`` -> (min, max) SQL literals."""
    out = {}
    for c in spec.COLLECTIONS.values():
        stack = [(f"{c.name}.{f.name}", f) for f in c.fields]
        while stack:
            path, f = stack.pop(0)
            if f.minimum is not None or f.maximum is not None:
                out[path] = (_number(f.minimum), _number(f.maximum))
            stack += [(f"{path}.{x.name}", x) for x in f.fields]
    for m in spec.MEASURES:
        out[f"air_quality.readings.{m.name}"] = (_number(m.minimum), _number(m.maximum))
    return dict(sorted(out.items()))


def _choices() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"air_quality.measure_name": list(spec.MEASURE_NAMES)}
    for c in spec.COLLECTIONS.values():
        stack = [(f"{c.name}.{f.name}", f) for f in c.fields]
        while stack:
            path, f = stack.pop(0)
            if f.choices:
                out[path] = list(f.choices)
            stack += [(f"{path}.{x.name}", x) for x in f.fields]
    return dict(sorted(out.items()))


def _plain(literal: str) -> int | float:
    return int(literal) if "." not in literal and "e" not in literal else float(literal)


def _jinja(value) -> str:
    """A Python value as a Jinja literal (dicts, lists, strings, numbers)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_jinja(k)}: {_jinja(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_jinja(v) for v in value) + "]"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value)


def render() -> str:
    measures = ",\n        ".join(
        f"({_sql_text(m.name)}, {i}, {_sql_text(m.unit)}, {_number(m.minimum)}::double precision, "
        f"{_number(m.maximum)}::double precision, {_sql_text(m.description)})"
        for i, m in enumerate(spec.MEASURES, start=1))
    senders = {c.name: list(c.sender_kinds) for c in spec.COLLECTIONS.values() if c.sender_kinds}
    spans = {c.name: int(c.bucket_span.total_seconds()) for c in spec.COLLECTIONS.values() if c.bucket_span}
    ranges = {k: [_plain(lo), _plain(hi)] for k, (lo, hi) in _ranges().items()}
    return f"""{{#- GENERATED from iot_core/contract.py by `python -m dbt_project.contract_macros --write`:
    do not edit by hand. tests/iot_core/test_contract_drift.py fails while this file and the contract
    disagree. What each value means: iot_core/contract.py and docs/contracts.md. -#}}

{{#- The earliest acceptable time (a SQL timestamptz literal). -#}}
{{% macro contract_min_ts() -%}}
timestamptz '{spec.MIN_TS.isoformat()}'
{{%- endmacro %}}

{{#- How far after its receipt a measurement time may lie (a SQL interval literal). -#}}
{{% macro contract_future_tolerance() -%}}
interval '{int(spec.FUTURE_TOLERANCE.total_seconds())} seconds'
{{%- endmacro %}}

{{#- The oldest plausible age in years. -#}}
{{% macro contract_max_age_years() -%}}
{spec.MAX_AGE_YEARS}
{{%- endmacro %}}

{{#- How far a sleep's reported duration may differ from end_ts - start_ts, in milliseconds. -#}}
{{% macro contract_sleep_duration_slack_ms() -%}}
{int(spec.SLEEP_DURATION_SLACK.total_seconds() * 1000)}
{{%- endmacro %}}

{{#- The air-quality measures in payload order, with unit and valid range (a FROM item named alias). -#}}
{{% macro contract_measures(alias='contract_measures') -%}}
(values
        {measures}
) as {{{{ alias }}}}(measure_name, position, unit, min_value, max_value, description)
{{%- endmacro %}}

{{#- The measure names in payload order (a list). -#}}
{{% macro contract_measure_names() -%}}
{{{{ return({_jinja(list(spec.MEASURE_NAMES))}) }}}}
{{%- endmacro %}}

{{#- [min, max] of a bounded field, by path: contract_range('heart_rates.metrics.bpm'). -#}}
{{% macro contract_range(path) -%}}
{{{{ return({_jinja(ranges)}[path]) }}}}
{{%- endmacro %}}

{{#- The allowed values of a field with choices, by path: contract_choices('devices.kind'). -#}}
{{% macro contract_choices(path) -%}}
{{{{ return({_jinja(_choices())}[path]) }}}}
{{%- endmacro %}}

{{#- The device kinds that may send a collection (a list). -#}}
{{% macro contract_sender_kinds(collection) -%}}
{{{{ return({_jinja(senders)}[collection]) }}}}
{{%- endmacro %}}

{{#- The longest span of a bucket of a collection, in seconds. -#}}
{{% macro contract_bucket_span_seconds(collection) -%}}
{{{{ return({_jinja(spans)}[collection]) }}}}
{{%- endmacro %}}

{{#- A SQL list literal of strings: ('a', 'b'). -#}}
{{% macro contract_sql_list(values) -%}}
({{% for v in values %}}'{{{{ v }}}}'{{{{ ", " if not loop.last }}}}{{% endfor %}})
{{%- endmacro %}}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {MACRO_FILE.name} (default: print it)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the file differs from the contract")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        same = MACRO_FILE.exists() and MACRO_FILE.read_text() == text
        print("up to date" if same else f"{MACRO_FILE} differs from iot_core/contract.py: run --write")
        return 0 if same else 1
    if args.write:
        MACRO_FILE.write_text(text)
        print(f"wrote {MACRO_FILE}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
