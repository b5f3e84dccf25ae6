"""What a study's rows say, compactly: one line per condition and which restoration recovers most.

The numbers a security reader acts on are the errors at the operating point frozen on the
clean faces of the same pairs (``fnmr@best_acc``, ``fmr@best_acc``, ``fmr_change@best_acc``:
see :func:`recogbench.metrics.frozen_operating_points`), not re-tuned accuracy alone. Error
rates at a fixed threshold are binomial proportions over the genuine (FNMR) or impostor (FMR)
pairs; their 95 % intervals here are Wilson score intervals (the threshold is held fixed, so
its own uncertainty is not in them). Accuracy intervals are the rows' bootstrap intervals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ConditionLine", "best_restorations", "condition_lines", "wilson"]

OP = "best_acc"
"""The operating point the summary reports: the clean faces' best-accuracy threshold."""


def _num(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def wilson(rate: float | None, n: Any) -> tuple[float, float] | None:
    """95 % Wilson score interval of a proportion ``rate`` observed over ``n`` trials
    (``rate·n`` is rounded to the count it came from); None when either is unknown."""
    from scipy.stats import binomtest

    n_trials = _num(n)
    if rate is None or n_trials is None or n_trials < 1:
        return None
    n_int = int(n_trials)
    k = int(round(rate * n_int))
    ci = binomtest(k, n_int).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class ConditionLine:
    """One condition as the run's closing table shows it (rates in [0, 1]; None: not measurable)."""

    protocol: str
    occlusion: str
    inpainter: str
    verifier: str
    n_pairs: int
    accuracy: float | None
    accuracy_ci: tuple[float, float] | None
    fnmr: float | None
    fnmr_ci: tuple[float, float] | None
    fmr: float | None
    fmr_ci: tuple[float, float] | None
    fmr_inflation: float | None
    recovery: float | None
    quick_look: bool
    row: Mapping[str, Any]

    @property
    def restored(self) -> bool:
        return self.occlusion != "none" and self.inpainter != "none"


def condition_lines(rows: Sequence[Mapping[str, Any]]) -> list[ConditionLine]:
    """One :class:`ConditionLine` per leaderboard row, in the rows' order."""
    out = []
    for r in rows:
        lo, hi = _num(r.get("accuracy_ci_low")), _num(r.get("accuracy_ci_high"))
        fnmr, fmr = _num(r.get(f"fnmr@{OP}")), _num(r.get(f"fmr@{OP}"))
        out.append(ConditionLine(
            protocol=str(r.get("protocol", "")), occlusion=str(r.get("occlusion", "")),
            inpainter=str(r.get("inpainter", "")), verifier=str(r.get("verifier", "")),
            n_pairs=int(_num(r.get("n_pairs")) or 0), accuracy=_num(r.get("accuracy_mean")),
            accuracy_ci=(lo, hi) if lo is not None and hi is not None else None,
            fnmr=fnmr, fnmr_ci=wilson(fnmr, r.get("n_genuine")),
            fmr=fmr, fmr_ci=wilson(fmr, r.get("n_impostor")),
            fmr_inflation=_num(r.get(f"fmr_change@{OP}")), recovery=_num(r.get("recovery_accuracy")),
            quick_look=bool(_num(r.get("limit")) or 0), row=r,
        ))
    return out


def best_restorations(lines: Sequence[ConditionLine]) -> list[str]:
    """For each occluder (per protocol, verifier) compared with more than one restoration: the
    inpainter with the lowest FNMR at the clean-frozen threshold (ties: higher accuracy, then
    lower FMR), as a sentence with its interval and the unrestored baseline's."""
    groups: dict[tuple[str, str, str], list[ConditionLine]] = {}
    for line in lines:
        if line.occlusion != "none" and not line.quick_look:
            groups.setdefault((line.protocol, line.verifier, line.occlusion), []).append(line)
    out = []
    for (protocol, verifier, occlusion), members in groups.items():
        restored = [m for m in members if m.inpainter != "none" and m.fnmr is not None
                    and not str(m.row.get("reads_clean", "")).lower() == "true"]
        if not restored:
            continue
        best = min(restored, key=lambda m: (m.fnmr, -(m.accuracy or 0.0), m.fmr if m.fmr is not None else 1.0))
        base = next((m for m in members if m.inpainter == "none"), None)
        where = f"{occlusion} ({protocol}, {verifier})"
        if base is not None and base.fnmr is not None and best.fnmr > base.fnmr:
            text = (f"{where}: no restoration beats leaving the face occluded (FNMR {_rate(base.fnmr, base.fnmr_ci)}); "
                    f"the least harmful is {best.inpainter}, FNMR {_rate(best.fnmr, best.fnmr_ci)}")
        else:
            text = f"{where}: {best.inpainter} recovers most, FNMR {_rate(best.fnmr, best.fnmr_ci)}"
            if base is not None and base.fnmr is not None:
                text += f" against {_rate(base.fnmr, base.fnmr_ci)} left occluded"
        ties = [m.inpainter for m in restored if m is not best and m.fnmr == best.fnmr]
        if ties:
            text += f" (tied on FNMR with {', '.join(ties)})"
        if len(restored) > 1 and best.fnmr_ci is not None:
            overlapping = [m.inpainter for m in restored if m is not best and m.fnmr_ci is not None
                           and m.fnmr_ci[0] <= best.fnmr_ci[1]]
            if overlapping:
                text += "; intervals overlap, so the order is not established"
        out.append(text)
    return out


def _rate(value: float | None, ci: tuple[float, float] | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
