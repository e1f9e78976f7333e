"""UCB1 arithmetic (ml.bandit): pure functions, no services."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml.bandit import ArmStats, choose, reward_from_errors, ucb_score


def test_unplayed_arms_are_tried_first_in_order():
    arms = [ArmStats("a", plays=5, rewarded=5, reward_sum=4.9), ArmStats("b"), ArmStats("c")]
    index, scores = choose(arms)
    assert index == 1 and math.isinf(scores[1]) and math.isinf(scores[2])
    arms[1] = ArmStats("b", plays=1, rewarded=1, reward_sum=0.0)
    assert choose(arms)[0] == 2


def test_score_is_mean_plus_exploration_bonus():
    arm = ArmStats("a", plays=4, rewarded=4, reward_sum=2.0)
    assert ucb_score(arm, total_plays=16) == pytest.approx(0.5 + math.sqrt(2 * math.log(16) / 4))


def test_pending_plays_count_for_exploration_and_score_optimistically():
    # played twice, no reward yet: mean is the optimistic 1, bonus uses the 2 plays
    pending = ArmStats("p", plays=2, rewarded=0, reward_sum=0.0)
    assert ucb_score(pending, 10) == pytest.approx(1 + math.sqrt(2 * math.log(10) / 2))


def test_ties_go_to_the_earlier_arm_so_reruns_choose_the_same():
    arms = [ArmStats("a", 3, 3, 1.5), ArmStats("b", 3, 3, 1.5)]
    assert choose(arms)[0] == 0
    with pytest.raises(ValueError):
        choose([])


def test_converges_to_the_best_arm_on_a_synthetic_bandit():
    rng = np.random.default_rng(7)
    means = [0.45, 0.5, 0.7, 0.55]          # arm 2 is best
    plays, sums = [0] * 4, [0.0] * 4
    for _ in range(3000):
        arms = [ArmStats(str(i), plays[i], plays[i], sums[i]) for i in range(4)]
        i, _ = choose(arms)
        plays[i] += 1
        sums[i] += float(rng.random() < means[i])
    assert max(range(4), key=plays.__getitem__) == 2
    assert plays[2] / sum(plays) > 0.7
    assert min(plays) > 0   # every arm was explored


def test_reward_is_relative_to_persistence():
    assert reward_from_errors(2.0, 2.0) == 0.5
    assert reward_from_errors(0.0, 3.0) == 1.0
    assert reward_from_errors(0.0, 0.0) == 0.5
    assert reward_from_errors(1.0, 3.0) > reward_from_errors(3.0, 3.0) > reward_from_errors(9.0, 3.0) > 0
    with pytest.raises(ValueError):
        reward_from_errors(float("nan"), 1.0)
