"""Reading stage.iaq_minutely for the forecasting (ml.dataset) on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ml_testdata import reset_iaq_minutely

from iot_core.connections import pg_connect

END = datetime(2026, 11, 23, tzinfo=UTC)


def test_only_observed_minutes_are_read(services):
    from ml.dataset import load_observations

    rows = [(END - timedelta(minutes=m), "d", float(m), m % 2 == 1) for m in range(10)]   # odd: interpolated
    rows += [(END - timedelta(minutes=3), "e", None, False)]
    reset_iaq_minutely(rows)
    with pg_connect("transformer") as conn:
        obs = load_observations(conn, since=END - timedelta(hours=1), until=END + timedelta(minutes=1))
    assert list(obs) == ["d"] and sorted(obs["d"][1].tolist()) == [0.0, 2.0, 4.0, 6.0, 8.0]


def test_a_large_fleet_is_sampled_for_training_and_the_same_devices_every_time(services):
    from ml.dataset import devices_to_train_on

    rows = [(END - timedelta(minutes=m), f"aq-{d:02d}", 100.0, False) for d in range(10) for m in range(100)]
    reset_iaq_minutely(rows)
    with pg_connect("transformer") as conn:
        since, until = END - timedelta(days=1), END + timedelta(minutes=1)
        everything, fleet = devices_to_train_on(conn, since, until, max_windows=600)
        sample, _ = devices_to_train_on(conn, since, until, max_windows=150)
        again, _ = devices_to_train_on(conn, since, until, max_windows=150)
    assert everything is None and fleet == 10            # 1,000 readings <= 2 x 600: all devices
    assert len(sample) == 3 and sample == again           # 3 x 100 readings >= 2 x 150
