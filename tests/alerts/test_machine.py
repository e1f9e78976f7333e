"""The vectorised state machine: evaluating observations in one pass or one at a time (as
successive passes do) gives the same alerts, for every device at once."""

from __future__ import annotations

import numpy as np
import pytest

from alerts import machine


def random_observations(rng, devices: int, per_device: int) -> machine.Observations:
    device = np.repeat(np.arange(devices), per_device)
    time = np.concatenate([np.cumsum(rng.choice([60.0, 60.0, 60.0, 400.0], per_device)) for _ in range(devices)])
    value = rng.normal(0, 1, devices * per_device) + np.repeat(rng.normal(0, 1, devices), per_device)
    breach, clear = value > 0.5, value < 0.0
    order = rng.permutation(len(device))      # arrival order does not matter within a pass
    return machine.Observations(device[order], time[order], time[order], breach[order], clear[order],
                                value[order], np.zeros(len(device))[order])


def transitions_by_device(tr: machine.Transitions) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = {}
    for d, what, at in zip(tr.device.tolist(), tr.what.tolist(), tr.at.tolist(), strict=True):
        out.setdefault(d, []).append((what, at))
    return out


@pytest.mark.parametrize("for_s, keep_s, gap_s", [(0, 0, np.inf), (180, 0, 300), (120, 120, 300)])
def test_one_pass_equals_many(for_s, keep_s, gap_s):
    rng = np.random.default_rng(int(for_s + keep_s))
    obs = random_observations(rng, devices=40, per_device=60)
    together = machine.States.empty(40)
    all_at_once = transitions_by_device(machine.run(together, obs, for_s, keep_s, gap_s))

    apart = machine.States.empty(40)
    one_by_one: dict[int, list[tuple]] = {}
    order = np.lexsort((obs.time, obs.device))
    for k in np.argsort(obs.time[order], kind="stable"):   # in time order, one observation per call
        i = order[k:k + 1]
        single = machine.Observations(obs.device[i], obs.time[i], obs.event_time[i], obs.breach[i], obs.clear[i],
                                      obs.value[i], obs.detail[i])
        for d, items in transitions_by_device(machine.run(apart, single, for_s, keep_s, gap_s)).items():
            one_by_one.setdefault(d, []).extend(items)
    assert all_at_once == one_by_one
    assert sum(len(v) for v in all_at_once.values()) > 40      # the scenario exercises the machine
    np.testing.assert_array_equal(together.phase, apart.phase)


def test_transitions_in_order():
    obs = machine.Observations(np.zeros(6, int), np.arange(6) * 60.0, np.arange(6) * 60.0,
                               np.array([1, 1, 1, 0, 0, 0], bool), np.array([0, 0, 0, 0, 1, 1], bool),
                               np.arange(6.0), np.zeros(6))
    states = machine.States.empty(1)
    tr = machine.run(states, obs, for_s=120, keep_firing_s=60)
    # breach at 0, held 2 minutes at 120 -> fire; 180 is in the band; clear from 240, held 60 s at 300
    assert list(zip(tr.what.tolist(), tr.at.tolist(), strict=True)) == [("start", 0.0), ("fire", 120.0),
                                                                         ("resolve", 300.0)]
    assert states.phase.tolist() == [machine.INACTIVE]
