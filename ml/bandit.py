"""Choosing the forecast model: sliding-window UCB (Garivier & Moulines, 2011) with rewards settled
per device. Pure arithmetic, no I/O: the forecast cycle (ml.forecasting) and the backtest
(ml.backtest) feed it the same statistics.

* A round is one issue minute; the chosen arm's forecasts are the ones published.
* Every arm forecasts every window (the cycle runs them all; it costs milliseconds), and each
  device's forecasts are scored once *that device's* actuals exist, so every arm's error is
  observed, not only the chosen one's (full-information feedback). This is what lets the
  selection drop an arm as soon as its recent errors say so, and what the realised regret
  against the best arm in hindsight is computed from.
* Reward of an arm over a set of scored forecasts: ``persistence_error / (arm_error +
  persistence_error)`` with both errors summed over the same points, in [0, 1]: 0.5 = as good as
  persistence, 1 = perfect. Summing before dividing keeps it aligned with the MAE it is judged
  by: a flat night where persistence is exact and a model is off by 1 ppm weighs 1 ppm, not as
  much as a failed forecast (which a per-forecast ratio would make of it).
* Non-stationarity: only the forecasts of the last ``window_rounds`` rounds count (sliding window
  over plays, as in SW-UCB), so what was best last week or last night does not outvote what is
  best now. Statistics are kept per candidate across its weekly versions (the window forgets the
  old version soon enough). After the best arm becomes the worst, the choice switches once the
  window's newer half has spoken: within ``window_rounds / 2 + 15`` rounds (15 = the delay until
  actuals exist, for a device reporting every minute) when the two arms swap errors (tested).
* Score of an arm = its reward over the window + ``exploration * sqrt(ln n / N_a)``, with ``N_a``
  its scored forecasts in the window and ``n`` all arms' (the UCB index). With full information
  the ``N_a`` are equal, so the bonus only favours an arm that has fewer scores (e.g. one added
  mid-window).
* Conservative about the baseline (in the spirit of conservative bandits, Wu et al., 2016): an arm
  other than persistence is chosen only while it beats persistence over the window with
  confidence, a one-sided Diebold-Mariano test (Diebold & Mariano, 1995) at 5 % (z = 1.645):
  its summed error is below persistence's by at least ``confidence_z`` standard errors of the
  mean per-forecast difference. The forecasts of consecutive rounds overlap (the 15-minute
  horizons of two windows a minute apart share 14 target minutes), so their differences are
  autocorrelated over about a horizon of clock time: the test's long-run variance counts the
  rounds of 15 minutes as one observation (variance x ``overlap_rounds``, the long-run variance
  of losses that are moving averages over h = 15 steps): 15 when a round is issued every
  minute, 1 when rounds are 15 minutes or more apart (a sensor that reports every 15 minutes
  forecast at its readings: its forecasts share no target), from the window's rounds and the
  minutes they span (``overlap_rounds``). Without it, a streak of a few lucky windows looked
  significant: on the room-climate temperature series the selection ended 11 % above
  persistence at h = 15 (docs/forecasting.md). A model that is better by luck does not
  displace persistence, so the selection cannot do worse than persistence for long.
* An arm without any score in the window is not chosen while another has scores; when none has
  (the first rounds after the first training), the arms are taken in the order given (best
  walk-forward validation error first). Ties go to the earlier arm, so a re-run makes the same
  choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ml.series import HORIZON_MINUTES

DEFAULT_WINDOW_ROUNDS = 480
DEFAULT_EXPLORATION = 0.02
DEFAULT_CONFIDENCE_Z = 1.645       # one-sided 5 %
OVERLAP_ROUNDS = HORIZON_MINUTES   # rounds whose forecasts overlap: one observation for the variance
BASELINE = "persistence"


@dataclass(frozen=True)
class ArmStats:
    name: str
    scored: float = 0.0                  # device forecasts scored in the window
    abs_error: float = 0.0               # their absolute errors, summed
    persistence_abs_error: float = 0.0   # persistence's on the same points
    diff_sq: float = 0.0                 # sum over forecasts of (persistence error - arm error) ** 2

    @property
    def mean_reward(self) -> float | None:
        if not self.scored:
            return None
        total = self.abs_error + self.persistence_abs_error
        return self.persistence_abs_error / total if total > 0 else 0.5

    def beats_persistence(self, z: float, overlap_rounds: float = OVERLAP_ROUNDS) -> bool:
        """Summed error below persistence's by at least z standard errors of the mean per-forecast
        difference, counting ``overlap_rounds`` overlapping forecasts as one observation (exactly
        lower, when the differences do not vary)."""
        if not self.scored:
            return False
        gain = self.persistence_abs_error - self.abs_error
        if gain <= 0:
            return False
        mean = gain / self.scored
        variance = max(self.diff_sq / self.scored - mean * mean, 0.0)
        standard_error = math.sqrt(variance * max(overlap_rounds, 1.0) / self.scored)
        return standard_error == 0 or mean >= z * standard_error


def overlap_rounds(rounds: int, span_minutes: float) -> float:
    """Rounds per horizon of clock time over a window of ``rounds`` rounds issued over
    ``span_minutes`` minutes (first to last, inclusive), between 1 and the horizon: how many
    rounds' forecasts share their target minutes."""
    if rounds <= 1 or span_minutes <= 0:
        return 1.0
    return min(max(rounds * HORIZON_MINUTES / span_minutes, 1.0), float(HORIZON_MINUTES))


def ucb_score(arm: ArmStats, total_scored: float, exploration: float = DEFAULT_EXPLORATION) -> float | None:
    """reward + exploration * sqrt(ln(n) / N_a); None for an arm without a score in the window."""
    if not arm.scored:
        return None
    return arm.mean_reward + exploration * math.sqrt(math.log(max(total_scored, 1.0)) / arm.scored)


def choose(arms: list[ArmStats], exploration: float = DEFAULT_EXPLORATION,
           confidence_z: float | None = DEFAULT_CONFIDENCE_Z,
           overlap: float = OVERLAP_ROUNDS) -> tuple[int, list[float | None]]:
    """Index of the arm to play and every arm's score (None: no score in the window). With
    ``confidence_z`` set and an arm named persistence among ``arms``, the others must beat it
    with that confidence to be eligible, ``overlap`` rounds counting as one observation
    (``overlap_rounds``)."""
    if not arms:
        raise ValueError("the selection needs at least one arm")
    total = sum(a.scored for a in arms)
    scores = [ucb_score(a, total, exploration) for a in arms]
    eligible = [i for i, s in enumerate(scores) if s is not None]
    if not eligible:
        return 0, scores
    baseline = next((i for i, a in enumerate(arms) if a.name == BASELINE), None)
    if confidence_z is not None and baseline in eligible:
        eligible = [i for i in eligible if i == baseline or arms[i].beats_persistence(confidence_z, overlap)]
    best = max(eligible, key=lambda i: (scores[i], -i))
    return best, scores


def reward_from_errors(model_mae: float, persistence_mae: float) -> float:
    """Map a realised error to a reward in [0, 1]: 0.5 = as good as persistence, 1 = perfect,
    towards 0 = far worse. Scale-free, so devices and weeks with different levels compare."""
    if model_mae < 0 or persistence_mae < 0 or math.isnan(model_mae) or math.isnan(persistence_mae):
        raise ValueError(f"errors must be non-negative numbers, got {model_mae!r}, {persistence_mae!r}")
    if model_mae + persistence_mae == 0:
        return 0.5
    return persistence_mae / (model_mae + persistence_mae)
