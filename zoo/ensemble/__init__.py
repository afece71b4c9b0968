"""Ensembles across the zoo: a weighted ensemble of a multirun's runs, fitted on their validation
predictions, written as an ordinary run that `zoo predict` scores and `zoo leaderboard` ranks.

members (sealed runs, grouped by dataset and split) → select (greedy selection, cross-fitted
stack, combine) → build (the ensemble's run directory) → scoring (`zoo predict` through every
member's own run) → cli (`zoo ensemble`) / callback (`+ensemble=greedy` at the end of a multirun).
"""

from zoo.ensemble.callback import EnsembleCallback
from zoo.ensemble.members import ENSEMBLE_FILE

__all__ = ["ENSEMBLE_FILE", "EnsembleCallback"]
