"""Minimal adversarial ε per image, by a batched bisection.

Every image keeps its own interval ``[low, high]``: the attack is known to fail at ``low`` and to succeed
at ``high``. Each round attacks all undecided images at once, each at the midpoint of its own interval,
and halves every interval. The answer is ``high`` once ``high − low ≤ precision``: the smallest budget at
which the attack was *seen* to succeed, at most ``precision`` above the true threshold.

Cost: one attack run at the top of the range (only for images the main attack did not already flip,
whose success there is known), then ``ceil(log2(range / precision))`` runs at most, each on the
undecided images only, with early stopping; a top-K attack tries its runner-ups in turn in each run, as at
the verdict's budget (up to K attacks of an image that holds). A linear scan (IBM ART's ``minimal=True``) needs
``range / precision`` runs for the same precision.

Bisection assumes that success is monotone in ε. That is exact for a linear model and the usual case for
networks; where it is not, the answer is still a budget at which the attack succeeded.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..models.model import WrappedModel
from .goals import Goal
from .loop import Attack


def round_to_precision(value: float, precision: float) -> float:
    """A minimal ε rounded *up* to one more decimal than its precision has (0.0002 → 5 decimals), so
    files carry no float32 noise and the value stays a budget at or above the one that was seen to work."""
    digits = max(0, math.ceil(-math.log10(precision))) + 1
    scale = 10**digits
    return float(math.ceil(value * scale - 1e-6) / scale)


@dataclass
class SearchCost:
    """How much work a search did."""

    attack_runs: int = 0
    image_runs: int = 0
    """Attacks of one image, summed over the runs: unlike ``attack_runs``, the same whatever the batches."""
    forward_passes: int = 0
    backward_passes: int = 0


Tries = Sequence[tuple[Goal, "torch.Tensor | None"]]
"""The goals an attack tries on every row, in order, each with its rows' random starts (None: none): one for
an untargeted or a fixed-target attack, a goal per runner-up for top-K (each reaching any other class)."""


def search_minimal_epsilon(
    attack: Attack,
    model: WrappedModel,
    clean: torch.Tensor,
    tries: Tries,
    *,
    succeeded_at: torch.Tensor,
    epsilon: float,
    epsilon_max: float,
    precision: float,
    names: Sequence[str] | None = None,
) -> tuple[torch.Tensor, SearchCost]:
    """Per image, the smallest ε in (0, epsilon_max] at which ``attack`` succeeds (NaN: none found).

    At each budget an image is attacked as the configured attack attacks it: toward each goal of ``tries``
    in turn until one succeeds (the runner-ups of top-K), so the search finds every flip the verdict
    attack would find at that budget. ``succeeded_at`` (N, bool) is the main attack's outcome at
    ``epsilon``, reused as the first split. The attack's step size is relative to ε, so every budget is
    attacked the way the configured attack would attack it; the search always stops early per image (only
    success matters).
    """
    attack = dataclasses.replace(attack, early_stop=True)
    n = clean.shape[0]
    device = clean.device
    low = torch.zeros(n, device=device, dtype=clean.dtype)
    high = torch.full((n,), epsilon_max, device=device, dtype=clean.dtype)
    found = torch.zeros(n, dtype=torch.bool, device=device)
    cost = SearchCost()
    forward0, backward0 = model.forward_passes, model.backward_passes

    def succeeds(rows: torch.Tensor, budgets: torch.Tensor) -> torch.Tensor:
        success = torch.zeros(rows.numel(), dtype=torch.bool, device=device)
        for goal, noise in tries:
            left = (~success).nonzero().flatten()
            if left.numel() == 0:
                break
            chosen = rows[left]
            cost.attack_runs += 1
            cost.image_runs += chosen.numel()
            result = attack.run(
                model,
                clean[chosen],
                goal.select(chosen),
                budgets[left],
                noise=None if noise is None else noise[chosen],
                names=None if names is None else [names[i] for i in chosen.tolist()],
                repredict_rounded=False,  # only success matters here
            )
            success[left[result.first_success >= 0]] = True
        return success

    if 0 < epsilon <= epsilon_max:
        high = torch.where(succeeded_at, torch.full_like(high, epsilon), high)
        low = torch.where(succeeded_at, low, torch.full_like(low, epsilon))
        found |= succeeded_at
    unknown = (~found).nonzero().flatten()
    if unknown.numel():
        at_top = succeeds(unknown, high[unknown])
        found[unknown[at_top]] = True
    while True:
        open_rows = (found & (high - low > precision)).nonzero().flatten()
        if open_rows.numel() == 0:
            break
        middle = (low[open_rows] + high[open_rows]) / 2
        success = succeeds(open_rows, middle)
        high[open_rows[success]] = middle[success]
        low[open_rows[~success]] = middle[~success]
    cost.forward_passes = model.forward_passes - forward0
    cost.backward_passes = model.backward_passes - backward0
    return torch.where(found, high, torch.full_like(high, float("nan"))), cost
