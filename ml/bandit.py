"""UCB1 (Auer et al., 2002) over the registered forecast candidates: pure arithmetic, no I/O.

Rewards must lie in [0, 1]. Feedback is delayed (the actuals arrive 15 minutes after a choice),
so an arm's *plays* count every choice made (rewarded or still pending) while its *mean* uses the
rewarded plays only; an arm that was played but has no reward yet is scored optimistically with
the maximum reward 1, which is what UCB1 does for arms it knows nothing about.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ArmStats:
    name: str
    plays: int = 0            # choices made, rewarded or pending
    rewarded: int = 0         # choices whose reward has arrived
    reward_sum: float = 0.0   # sum of those rewards

    @property
    def mean_reward(self) -> float:
        return self.reward_sum / self.rewarded if self.rewarded else 1.0


def ucb_score(arm: ArmStats, total_plays: int, exploration: float = 2.0) -> float:
    """mean + sqrt(exploration * ln(N) / n); infinite for an arm never played."""
    if arm.plays == 0:
        return math.inf
    return arm.mean_reward + math.sqrt(exploration * math.log(max(total_plays, 1)) / arm.plays)


def choose(arms: list[ArmStats], exploration: float = 2.0) -> tuple[int, list[float]]:
    """Index of the arm to play and every arm's score. Unplayed arms first, in the order given;
    ties go to the earlier arm so the choice is deterministic (re-runs choose the same)."""
    if not arms:
        raise ValueError("UCB1 needs at least one arm")
    total = sum(a.plays for a in arms)
    scores = [ucb_score(a, total, exploration) for a in arms]
    best = max(range(len(arms)), key=lambda i: (scores[i], -i))
    return best, scores


def reward_from_errors(model_mae: float, persistence_mae: float) -> float:
    """Map a realised error to a reward in [0, 1]: 0.5 = as good as persistence, 1 = perfect,
    towards 0 = far worse. Scale-free, so devices and weeks with different IAQ levels compare."""
    if model_mae < 0 or persistence_mae < 0 or math.isnan(model_mae) or math.isnan(persistence_mae):
        raise ValueError(f"errors must be non-negative numbers, got {model_mae!r}, {persistence_mae!r}")
    if model_mae + persistence_mae == 0:
        return 0.5
    return persistence_mae / (model_mae + persistence_mae)
