"""The error budget: what an availability target allows, and what a run's outage used.

The roadmap frames uptime as revenue; a team reads a chaos run's outage best as a share of
the downtime its target allows, and as money. A month is 30 days and a year 365.25 days, as
SLO calculators usually count them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.errors import ConfigError

MONTH_S = 30 * 86_400
YEAR_S = 365.25 * 86_400


@dataclass(frozen=True)
class ErrorBudget:
    """An availability target and the price of a minute of downtime."""

    availability_target_pct: float = 99.99
    cost_per_minute: float = 0.0
    currency: str = "USD"

    def __post_init__(self) -> None:
        target = self.availability_target_pct
        if not (math.isfinite(target) and 0 < target < 100):
            raise ConfigError(
                "availability_target_pct", target, "choose a percentage above 0 and below 100"
            )
        if not (math.isfinite(self.cost_per_minute) and self.cost_per_minute >= 0):
            raise ConfigError("cost_per_minute", self.cost_per_minute, "choose a price >= 0")
        if not self.currency or len(self.currency) > 8:
            raise ConfigError("currency", self.currency, "give a short code such as USD")

    def allowed_s(self, period_s: float) -> float:
        """Downtime the target allows over ``period_s`` seconds."""
        return period_s * (100 - self.availability_target_pct) / 100


@dataclass(frozen=True)
class BudgetUse:
    """What one run's client-visible downtime cost against the budget."""

    availability_target_pct: float
    allowed_per_month_s: float
    allowed_per_year_s: float
    downtime_s: float
    month_budget_used_pct: float
    cost: float
    currency: str
    cost_per_minute: float


def budget_use(budget: ErrorBudget, downtime_s: float) -> BudgetUse:
    """The share of a month's budget ``downtime_s`` uses, and its cost."""
    month = budget.allowed_s(MONTH_S)
    return BudgetUse(
        availability_target_pct=budget.availability_target_pct,
        allowed_per_month_s=month,
        allowed_per_year_s=budget.allowed_s(YEAR_S),
        downtime_s=downtime_s,
        month_budget_used_pct=100 * downtime_s / month,
        cost=downtime_s / 60 * budget.cost_per_minute,
        currency=budget.currency,
        cost_per_minute=budget.cost_per_minute,
    )
