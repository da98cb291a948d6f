"""A benchmark's figures, the limit it is compared with, and the ratio."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Figure:
    value: float
    unit: str


@dataclass(frozen=True)
class Result:
    """`ratio` = `value of figures[primary]` / `limit.value` (or inverted where lower is
    better, as `higher_is_better` says); `goal` is the ratio we aim for, when there is one."""

    name: str
    figures: dict[str, Figure]
    limit_name: str
    limit: Figure
    primary: str
    higher_is_better: bool = True
    goal: float | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        value = self.figures[self.primary].value
        if self.higher_is_better:
            return value / self.limit.value if self.limit.value else float("inf")
        return self.limit.value / value if value else float("inf")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ratio"] = round(self.ratio, 4)
        return out

    def describe(self) -> str:
        lines = [f"{self.name}"]
        for key, fig in self.figures.items():
            lines.append(f"  {key:<34} {fig.value:>14,.2f} {fig.unit}")
        lines.append(
            f"  {'limit: ' + self.limit_name:<34} {self.limit.value:>14,.2f} {self.limit.unit}"
        )
        goal = f" (goal {self.goal:g})" if self.goal is not None else ""
        lines.append(f"  {'ratio':<34} {self.ratio:>14.3f}{goal}")
        if self.notes:
            lines.append(f"  {self.notes}")
        return "\n".join(lines)
