"""The real recorded series of ``../shared/data`` (README there) as frames of readings
``(time, device_id, value)``: what the walk-forward backtest (ml.backtest) takes, exactly as
`iot backtest --csv` gets them from a user's file. Every reading is passed on as recorded; the
backtest's own preprocessing (ml.series) averages per minute and fills short gaps."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

SHARED_DATA = Path(os.environ.get("IOT_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared")) / "data"


@dataclass(frozen=True)
class RealDataset:
    name: str
    folder: str
    measure: str
    unit: str
    cadence: str
    load: Callable[[Path], pd.DataFrame]
    note: str = ""


def _frame(time, device, value) -> pd.DataFrame:
    return pd.DataFrame({"time": time, "device_id": device, "value": pd.to_numeric(value, errors="coerce")})


def room_occupancy_co2(folder: Path) -> pd.DataFrame:
    raw = pd.read_csv(folder / "Occupancy_Estimation.csv")
    # local wall-clock times without an offset (the UCI set does not state one): read as UTC
    return _frame(pd.to_datetime(raw["Date"] + " " + raw["Time"], utc=True), "room-occupancy-s5", raw["S5_CO2"])


def livingston_co2(folder: Path) -> pd.DataFrame:
    raw = pd.read_csv(folder / "office_livingstone_aq_1.csv")
    co2 = next(c for c in raw.columns if c.lower().startswith("co2"))
    return _frame(pd.to_datetime(raw["timestamp"], utc=True), "livingston-office", raw[co2])


_CLIMATE_COLUMNS = ["eid", "abs_ms", "rel_s", "node", "temp", "relh", "l1", "l2", "occ", "act", "door", "win"]


def _room_climate(folder: Path, column: str) -> pd.DataFrame:
    parts = [pd.read_csv(f, header=None, names=_CLIMATE_COLUMNS, sep=r",\s*", engine="python")
             for f in sorted(folder.glob("room_climate-location_A-measurement*.csv"))]
    raw = pd.concat(parts, ignore_index=True)
    return _frame(pd.to_datetime(raw["abs_ms"], unit="ms", utc=True), "node-" + raw["node"].astype(str), raw[column])


def room_climate_temperature(folder: Path) -> pd.DataFrame:
    return _room_climate(folder, "temp")


def room_climate_humidity(folder: Path) -> pd.DataFrame:
    return _room_climate(folder, "relh")


def fitbit_heart_rate(folder: Path) -> pd.DataFrame:
    parts = []
    for f in sorted(folder.glob("heartrate_seconds_*.csv")):
        raw = pd.read_csv(f)
        # US 12-hour local times without an offset: read as UTC
        time = pd.to_datetime(raw["Time"], format="%m/%d/%Y %I:%M:%S %p", utc=True)
        parts.append(_frame(time, "fitbit-" + raw["Id"].astype(str), raw["Value"]))
    return pd.concat(parts, ignore_index=True)


DATASETS: dict[str, RealDataset] = {d.name: d for d in (
    RealDataset("room_occupancy_co2", "room_occupancy_estimation", "CO2", "ppm", "30 s",
                room_occupancy_co2, "UCI room occupancy, node S5; 7 days in two spans (Dec 22-26, Jan 10-11)"),
    RealDataset("livingston_office_co2", "office_co2_livingston", "CO2", "ppm", "irregular 5-15 min",
                livingston_co2, "LoRaWAN uplinks, gaps up to 9 h; 5 months"),
    RealDataset("room_climate_temperature", "room_climate", "temperature", "°C", "~4 s per node",
                room_climate_temperature, "4 nodes, 6 sessions of 40 min to 2.7 h over 2 days"),
    RealDataset("room_climate_humidity", "room_climate", "relative humidity", "%", "~4 s per node",
                room_climate_humidity, "4 nodes, 6 sessions of 40 min to 2.7 h over 2 days"),
    RealDataset("fitbit_heart_rate", "fitbit_heartrate", "heart rate", "bpm", "~5 s",
                fitbit_heart_rate, "2 users, 2-3 days each; not an indoor measure (a wearable)"),
)}


def load(name: str, root: Path = SHARED_DATA) -> pd.DataFrame:
    ds = DATASETS[name]
    folder = root / ds.folder
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset {name}: folder {folder} not found (set IOT_SHARED_DIR)")
    return ds.load(folder)
