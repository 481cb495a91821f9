"""Availability metrics from drill records or incident logs: TTF, TTR, TBF, their means, the nines,
downtime budgets and a chi-square interval for MTBF. Formulas and conventions: docs/metrics.md."""
