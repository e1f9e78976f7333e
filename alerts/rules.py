"""Alert rules: the rule file's format, its validation and each rule's version hash.

A rule file is YAML with one key, ``rules``: a list of rules (docs/alerts.md has the format with
examples). Loading checks every rule and reports *all* problems at once, each with the file, line
and rule id, so a bad edit is fixed in one pass instead of one error per run. The measure names
are checked against the data contract's list (``alerts.measures``) when it is given.

Pure Python (no database): the DAG, ``iot alerts test`` and the Grafana generator load rules the
same way.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from iot_core.settings import PROJECT_ROOT, Settings, get_settings

DEFAULT_RULES_FILE = PROJECT_ROOT / "alerts" / "rules.yml"

KINDS = ("threshold", "rate", "no_data", "anomaly", "forecast")
SEVERITIES = ("critical", "warning", "info")
RULE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# label names the platform sets itself on every notification
RESERVED_LABELS = frozenset({"alertname", "rule_id", "device_id", "severity", "kind", "measure",
                             "building", "floor", "room"})
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)([smhd]))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

# keys every rule accepts, and the kind-specific ones (with their defaults)
COMMON_KEYS = {"id", "kind", "severity", "labels", "description", "scope", "for", "keep_firing_for", "enabled"}
KIND_KEYS = {
    "threshold": {"measure", "above", "below", "hysteresis", "max_gap"},
    "rate": {"measure", "above", "below", "hysteresis", "over", "max_gap"},
    "anomaly": {"measure", "z", "window", "min_points", "min_deviation", "hysteresis", "max_gap"},
    "no_data": {"measure"},
    "forecast": {"measure", "above", "below", "hysteresis", "within", "max_gap"},
}
SCOPE_KEYS = {"kind": "kinds", "building": "buildings", "floor": "floors", "room": "rooms", "devices": "devices"}


class RuleError(ValueError):
    """A rule file that cannot be used; ``problems`` lists every reason (one line each)."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s) in the alert rules:\n"
                         + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Scope:
    """Which devices a rule watches (``stage.dim_devices``); an empty tuple means any."""

    kinds: tuple[str, ...] = ()
    buildings: tuple[str, ...] = ()
    floors: tuple[str, ...] = ()
    rooms: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()

    @property
    def is_everything(self) -> bool:
        return not (self.kinds or self.buildings or self.floors or self.rooms or self.devices)

    def describe(self) -> str:
        parts = [f"{name} in {list(values)}" for name, values in asdict(self).items() if values]
        return " and ".join(parts) if parts else "every device"


@dataclass(frozen=True)
class Rule:
    """One validated rule. Durations are in seconds; limits in the measure's unit (``rate``: per
    minute; ``anomaly``: robust z-score)."""

    id: str
    kind: str
    measure: str | None
    severity: str = "warning"
    above: float | None = None
    below: float | None = None
    hysteresis: float = 0.0
    for_s: float = 0.0
    keep_firing_s: float = 0.0
    max_gap_s: float = 300.0
    over_s: float = 60.0          # rate
    window_s: float = 3600.0      # anomaly
    z: float = 3.5                # anomaly
    min_points: int = 10          # anomaly
    min_deviation: float = 0.0    # anomaly
    within_s: float = 900.0       # forecast
    labels: tuple[tuple[str, str], ...] = ()
    description: str = ""
    scope: Scope = field(default_factory=Scope)
    enabled: bool = True
    line: int | None = None       # where it starts in its file (for messages)

    @property
    def direction(self) -> str:
        return "below" if self.below is not None else "above"

    @property
    def limit(self) -> float | None:
        if self.kind == "anomaly":
            return self.z
        if self.kind == "no_data":
            return self.for_s / 60.0
        return self.below if self.below is not None else self.above

    def definition(self) -> dict[str, Any]:
        """The rule as stored in ``ops.alert_rules`` (everything that changes what it does)."""
        d = asdict(self)
        d.pop("line")
        d["labels"] = dict(self.labels)
        d["scope"] = {k: list(v) for k, v in asdict(self.scope).items()}
        return d

    @property
    def version(self) -> str:
        """Hash of the definition: changes exactly when the rule's behaviour does."""
        return hashlib.sha256(json.dumps(self.definition(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    source: str

    @property
    def version(self) -> str:
        """Hash of the whole file's rules (order-independent)."""
        joined = ",".join(sorted(f"{r.id}:{r.version}" for r in self.rules))
        return hashlib.sha256(joined.encode()).hexdigest()[:16]

    @property
    def enabled(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.enabled)

    def measures(self) -> set[str]:
        return {r.measure for r in self.rules if r.measure}


# ---------------------------------------------------------------- durations
def parse_duration(value: Any, key: str) -> float:
    """``"30s"``, ``"10m"``, ``"1h30m"``, ``"2d"`` -> seconds. A bare number is refused (no unit)."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"'{key}' is {value!r}: a duration needs a unit, e.g. '30s', '10m', '1h'")
    text = value.strip()
    if not _DURATION.fullmatch(text):
        raise ValueError(f"'{key}' is {value!r}: not a duration (use e.g. '30s', '10m', '1h30m', '2d')")
    return float(sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text)))


def format_duration(seconds: float) -> str:
    if seconds and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


# ---------------------------------------------------------------- YAML with line numbers
class _LineDict(dict):
    line: int | None = None


class _Loader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys (PyYAML keeps the last one silently) and records
    the line of every mapping."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> _LineDict:
    loader.flatten_mapping(node)
    out = _LineDict()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {key_node.start_mark.line + 1})", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=deep)
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# ---------------------------------------------------------------- one rule
def _number(raw: Mapping, key: str, problems: list[str], where: str, minimum: float | None = None,
            integral: bool = False) -> float | None:
    if key not in raw or raw[key] is None:
        return None
    v = raw[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or (integral and not float(v).is_integer()):
        problems.append(f"{where}: '{key}' is {v!r}, expected {'an integer' if integral else 'a number'}")
        return None
    if v != v or v in (float("inf"), float("-inf")):
        problems.append(f"{where}: '{key}' is {v!r}, expected a finite number")
        return None
    if minimum is not None and v < minimum:
        problems.append(f"{where}: '{key}' is {v!r}, must be at least {minimum:g}")
        return None
    return float(v)


def _duration(raw: Mapping, key: str, default: float, problems: list[str], where: str,
              positive: bool = False) -> float:
    if key not in raw:
        return default
    try:
        seconds = parse_duration(raw[key], key)
    except ValueError as e:
        problems.append(f"{where}: {e}")
        return default
    if positive and seconds <= 0:
        problems.append(f"{where}: '{key}' must be longer than 0s")
    return seconds


def _names(value: Any, key: str, problems: list[str], where: str) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, str | int) or (isinstance(v, str) and not v.strip()):
            problems.append(f"{where}: scope '{key}' has {v!r}, expected a name or a list of names")
            continue
        out.append(str(v).strip())
    if not out and not problems:
        problems.append(f"{where}: scope '{key}' is empty (leave the key out to mean any)")
    return tuple(dict.fromkeys(out))


def _scope(raw: Any, problems: list[str], where: str) -> Scope:
    if raw is None:
        return Scope()
    if not isinstance(raw, dict):
        problems.append(f"{where}: 'scope' must be a mapping of {sorted(SCOPE_KEYS)}")
        return Scope()
    unknown = set(raw) - set(SCOPE_KEYS)
    if unknown:
        problems.append(f"{where}: unknown scope key(s) {sorted(map(str, unknown))} (known: {sorted(SCOPE_KEYS)})")
    return Scope(**{SCOPE_KEYS[k]: _names(v, k, problems, where) for k, v in raw.items() if k in SCOPE_KEYS})


def _labels(raw: Any, problems: list[str], where: str) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        problems.append(f"{where}: 'labels' must be a mapping of name: value")
        return ()
    out = []
    for k, v in raw.items():
        if not isinstance(k, str) or not LABEL_NAME.fullmatch(k):
            problems.append(f"{where}: label name {k!r} is not valid (letters, digits, '_'; not starting with a digit)")
        elif k in RESERVED_LABELS:
            problems.append(f"{where}: label {k!r} is set by the platform (reserved: {sorted(RESERVED_LABELS)})")
        elif isinstance(v, dict | list) or v is None:
            problems.append(f"{where}: label {k!r} must have a plain value, not {v!r}")
        else:
            out.append((k, str(v)))
    return tuple(sorted(out))


def parse_rule(raw: Any, index: int, source: str, problems: list[str]) -> Rule | None:
    """One rule from its YAML mapping; appends every problem found to ``problems``."""
    line = getattr(raw, "line", None)
    at = f"{source}:{line}" if line else source
    if not isinstance(raw, dict):
        problems.append(f"{at}: rule {index + 1} must be a mapping with at least 'id' and 'kind', got {raw!r}")
        return None
    rule_id = raw.get("id")
    where = f"{at}: rule {index + 1}" + (f" ({rule_id})" if isinstance(rule_id, str) else "")
    before = len(problems)
    if not isinstance(rule_id, str) or not RULE_ID.fullmatch(rule_id):
        problems.append(f"{where}: 'id' is {rule_id!r}: expected lower-case letters, digits, '.', '_', '-' "
                        "(at most 63, starting with a letter or digit)")
    kind = raw.get("kind")
    if kind not in KINDS:
        problems.append(f"{where}: 'kind' is {kind!r}, expected one of {list(KINDS)}")
        return None
    unknown = set(raw) - COMMON_KEYS - KIND_KEYS[kind]
    if unknown:
        problems.append(f"{where}: unknown key(s) {sorted(map(str, unknown))} for a {kind} rule "
                        f"(allowed: {sorted(COMMON_KEYS | KIND_KEYS[kind])})")
    severity = raw.get("severity", "warning")
    if severity not in SEVERITIES:
        problems.append(f"{where}: 'severity' is {severity!r}, expected one of {list(SEVERITIES)}")
    measure = raw.get("measure")
    if measure is not None and (not isinstance(measure, str) or not measure):
        problems.append(f"{where}: 'measure' is {measure!r}, expected a measure name")
        measure = None
    if measure is None and kind != "no_data":
        problems.append(f"{where}: a {kind} rule needs 'measure'")
    above = _number(raw, "above", problems, where)
    below = _number(raw, "below", problems, where)
    if kind in ("threshold", "rate", "forecast") and (above is None) == (below is None):
        problems.append(f"{where}: a {kind} rule needs exactly one of 'above' and 'below'")
    hysteresis = _number(raw, "hysteresis", problems, where, minimum=0) or 0.0
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"{where}: 'enabled' is {enabled!r}, expected true or false")
    description = raw.get("description", "")
    if not isinstance(description, str):
        problems.append(f"{where}: 'description' must be text")
        description = ""
    values: dict[str, Any] = {
        "for_s": _duration(raw, "for", 0.0, problems, where, positive=kind == "no_data"),
        "keep_firing_s": _duration(raw, "keep_firing_for", 0.0, problems, where),
        "max_gap_s": _duration(raw, "max_gap", 300.0, problems, where, positive=True),
    }
    if kind == "no_data" and "for" not in raw:
        problems.append(f"{where}: a no_data rule needs 'for' (how long a device may be silent, e.g. '10m')")
    if kind == "rate":
        values["over_s"] = _duration(raw, "over", 60.0, problems, where, positive=True)
    if kind == "anomaly":
        values["window_s"] = _duration(raw, "window", 3600.0, problems, where, positive=True)
        values["z"] = _number(raw, "z", problems, where, minimum=0.5) or 3.5
        values["min_points"] = int(_number(raw, "min_points", problems, where, minimum=3, integral=True) or 10)
        values["min_deviation"] = _number(raw, "min_deviation", problems, where, minimum=0) or 0.0
        if "hysteresis" not in raw:
            hysteresis = 0.5
        elif hysteresis >= values["z"]:
            problems.append(f"{where}: 'hysteresis' ({hysteresis:g}) must be smaller than 'z' ({values['z']:g})")
    if kind == "forecast":
        values["within_s"] = _duration(raw, "within", 900.0, problems, where, positive=True)
        if values["within_s"] % 60:
            problems.append(f"{where}: 'within' must be whole minutes (forecasts are per minute)")
    scope = _scope(raw.get("scope"), problems, where)
    labels = _labels(raw.get("labels"), problems, where)
    if len(problems) > before:
        return None
    return Rule(id=rule_id, kind=kind, measure=measure, severity=severity, above=above, below=below,
                hysteresis=hysteresis, labels=labels, description=description.strip(), scope=scope,
                enabled=enabled, line=line, **values)


# ---------------------------------------------------------------- files
def rules_file(settings: Settings | None = None) -> Path:
    """The rule file in use: ``ALERT_RULES_FILE`` (relative paths from the project root) or the
    shipped ``alerts/rules.yml``."""
    s = settings or get_settings()
    if not s.alert_rules_file:
        return DEFAULT_RULES_FILE
    path = Path(s.alert_rules_file)
    return path if path.is_absolute() else PROJECT_ROOT / path


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """Parse and check a rule file's text (structure only; :func:`check_measures` checks names)."""
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise RuleError(source, [f"{where}: not valid YAML: {getattr(e, 'problem', None) or e}"]) from None
    if not isinstance(doc, dict) or "rules" not in doc:
        raise RuleError(source, [f"{source}: expected a mapping with a 'rules' list at the top"])
    problems: list[str] = []
    extra = set(doc) - {"rules"}
    if extra:
        problems.append(f"{source}: unknown top-level key(s) {sorted(map(str, extra))} (only 'rules')")
    raw_rules = doc["rules"]
    if not isinstance(raw_rules, list):
        got = "a mapping" if isinstance(raw_rules, dict) else type(raw_rules).__name__
        raise RuleError(source, [f"{source}: 'rules' must be a list of rules, got {got}"])
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_rules):
        rule = parse_rule(raw, i, source, problems)
        rule_id = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(rule_id, str):
            if rule_id in seen:
                problems.append(f"{source}:{getattr(raw, 'line', '?')}: duplicate id {rule_id!r} "
                                f"(rules {seen[rule_id] + 1} and {i + 1})")
            else:
                seen[rule_id] = i
        if rule is not None:
            rules.append(rule)
    if problems:
        raise RuleError(source, problems)
    return RuleSet(tuple(rules), source)


def check_measures(ruleset: RuleSet, measures: Iterable[str], forecast_measures: Iterable[str] = (),
                   forecast_horizon_minutes: int | None = None) -> None:
    """Every rule's measure is one the data contract knows; a forecast rule's is one the forecast
    writes, and its ``within`` fits the forecast's horizon."""
    known = sorted(measures)
    forecastable = sorted(forecast_measures)
    problems = []
    for r in ruleset.rules:
        at = f"{ruleset.source}:{r.line}" if r.line else ruleset.source
        if r.measure is not None and r.measure not in known:
            problems.append(f"{at}: rule {r.id}: unknown measure {r.measure!r} (known: {', '.join(known)})")
        elif r.kind == "forecast" and r.measure not in forecastable:
            problems.append(f"{at}: rule {r.id}: no forecast of {r.measure!r} exists "
                            f"(the forecast writes: {', '.join(forecastable) or 'nothing'})")
        elif (r.kind == "forecast" and forecast_horizon_minutes is not None
              and r.within_s > forecast_horizon_minutes * 60):
            problems.append(f"{at}: rule {r.id}: 'within' is {format_duration(r.within_s)}, beyond the "
                            f"forecast's horizon of {forecast_horizon_minutes}m")
    if problems:
        raise RuleError(ruleset.source, problems)


def load_rules(path: Path | str | None = None, measures: Iterable[str] | None = None,
               forecast_measures: Iterable[str] = (), forecast_horizon_minutes: int | None = None,
               settings: Settings | None = None) -> RuleSet:
    """Read and check a rule file (default: :func:`rules_file`); measure names too when given."""
    path = Path(path) if path is not None else rules_file(settings)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RuleError(str(path), [f"{path}: cannot read the rule file ({e.strerror or e})"]) from None
    try:
        shown = str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        shown = str(path)
    ruleset = parse_rules(text, shown)
    if measures is not None:
        check_measures(ruleset, measures, forecast_measures, forecast_horizon_minutes)
    return ruleset
