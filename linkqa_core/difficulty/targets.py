"""Difficulty levels and the target mix per discipline (DESIGN §7).

>>> DifficultyTargets.parse("default=3:0.3,4:0.4,5:0.3;Mathematics=4:1").for_discipline("Mathematics")
{1: 0.0, 2: 0.0, 3: 0.0, 4: 1.0, 5: 0.0}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..errors import ConfigError
from ..records import Item
from ..taxonomy import DISCIPLINES

__all__ = ["LEVELS", "DEFAULT_MIX", "DifficultyTargets", "level_of", "mix_of", "mix_gap", "needed"]

LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)
DEFAULT_MIX: dict[int, float] = {3: 0.3, 4: 0.4, 5: 0.3}


def level_of(difficulty: float | None) -> int | None:
    """The level 1–5 of a difficulty (halves round up); ``None`` stays ``None``."""
    if difficulty is None:
        return None
    return int(min(5, max(1, math.floor(float(difficulty) + 0.5))))


def _canonical_discipline(name: str) -> str:
    key = " ".join(str(name).split()).lower()
    for d in DISCIPLINES:
        if d.lower() == key:
            return d
    raise ConfigError(f"unknown discipline '{name}' in the difficulty targets; known: {', '.join(DISCIPLINES)}")


def _clean_mix(raw: Mapping[Any, Any], where: str) -> dict[int, float]:
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{where}: give at least one level:share pair, e.g. 3:0.3,4:0.4,5:0.3")
    mix = {lvl: 0.0 for lvl in LEVELS}
    for key, value in raw.items():
        try:
            level = int(str(key).strip())
        except ValueError:
            raise ConfigError(f"{where}: level '{key}' is not a whole number 1-5") from None
        if level not in LEVELS or str(key).strip() not in {str(level), f"{level}.0"}:
            raise ConfigError(f"{where}: level '{key}' is not a whole number 1-5")
        try:
            share = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: the share of level {level} ('{value}') is not a number") from None
        if isinstance(value, bool) or not math.isfinite(share) or share < 0:
            raise ConfigError(f"{where}: the share of level {level} must be 0 or more, got {value!r}")
        mix[level] += share
    total = sum(mix.values())
    if total <= 0:
        raise ConfigError(f"{where}: the shares add up to 0; at least one level needs a share above 0")
    return {lvl: round(mix[lvl] / total, 6) for lvl in LEVELS}


@dataclass(frozen=True)
class DifficultyTargets:
    """Target difficulty mix per discipline, ``{discipline: {level: share}}``.

    ``default`` applies to every discipline not in ``per_discipline``. Shares may be any
    non-negative numbers (``3:30,4:40,5:30`` works); they are normalised to sum to 1.

    >>> DifficultyTargets().for_discipline("Law")
    {1: 0.0, 2: 0.0, 3: 0.3, 4: 0.4, 5: 0.3}
    """

    default: Mapping[int, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    per_discipline: Mapping[str, Mapping[int, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "default", _clean_mix(self.default, "default difficulty mix"))
        per: dict[str, dict[int, float]] = {}
        for name, mix in (self.per_discipline or {}).items():
            canon = _canonical_discipline(name)
            if canon in per:
                raise ConfigError(f"the difficulty targets name '{canon}' twice")
            per[canon] = _clean_mix(mix, f"difficulty mix of {canon}")
        object.__setattr__(self, "per_discipline", per)

    def for_discipline(self, discipline: str | None) -> dict[int, float]:
        """The target mix of a discipline: its own, or the default."""
        key = " ".join(str(discipline or "").split()).lower()
        for name, mix in self.per_discipline.items():
            if name.lower() == key:
                return dict(mix)
        return dict(self.default)

    @classmethod
    def parse(cls, spec: str | None) -> "DifficultyTargets":
        """From ``"default=3:0.3,4:0.4,5:0.3;Mathematics=4:0.5,5:0.5"``.

        Segments are separated by ``;``; a segment without ``name=`` sets the default.
        An empty spec gives the defaults.
        """
        if spec is None or not str(spec).strip():
            return cls()
        default: dict[int, float] | None = None
        per: dict[str, dict[str, str]] = {}
        for segment in str(spec).split(";"):
            segment = segment.strip()
            if not segment:
                continue
            name, sep, body = segment.rpartition("=")
            name = name.strip() if sep else "default"
            pairs: dict[str, str] = {}
            for pair in body.split(","):
                pair = pair.strip()
                if not pair:
                    continue
                level, colon, share = pair.partition(":")
                if not colon:
                    raise ConfigError(f"difficulty targets: '{pair}' in '{segment}' is not level:share (e.g. 4:0.4)")
                if level.strip() in pairs:
                    raise ConfigError(f"difficulty targets: level {level.strip()} appears twice in '{segment}'")
                pairs[level.strip()] = share.strip()
            if name.lower() == "default":
                if default is not None:
                    raise ConfigError("difficulty targets: the default mix is given twice")
                default = _clean_mix(pairs, "default difficulty mix")  # type: ignore[arg-type]
            else:
                canon = _canonical_discipline(name)
                if canon in per:
                    raise ConfigError(f"the difficulty targets name '{canon}' twice")
                per[canon] = pairs
        return cls(default if default is not None else dict(DEFAULT_MIX), per)  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "DifficultyTargets":
        """From ``{"default": {3: 0.3, ...}, "Mathematics": {...}}`` (level keys may be
        strings, as after JSON) or ``{"default": ..., "per_discipline": {...}}``."""
        if not data:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError("difficulty targets must be a mapping of discipline -> {level: share}")
        data = dict(data)
        default = data.pop("default", None)
        per = dict(data.pop("per_discipline", None) or {})
        per.update(data)
        return cls(default if default is not None else dict(DEFAULT_MIX), per)

    def to_dict(self) -> dict[str, dict[int, float]]:
        return {"default": dict(self.default), **{k: dict(v) for k, v in self.per_discipline.items()}}

    def spec(self) -> str:
        """The compact string form that :meth:`parse` reads back."""
        def one(mix: Mapping[int, float]) -> str:
            return ",".join(f"{lvl}:{share:g}" for lvl, share in mix.items() if share > 0)

        return ";".join([f"default={one(self.default)}"]
                        + [f"{k}={one(v)}" for k, v in self.per_discipline.items()])

    def __str__(self) -> str:
        return self.spec()


def needed(counts: Mapping[int, int], target: Mapping[int, float]) -> tuple[int, int]:
    """How many items to lift, and the highest level short of its target share.

    For each level ``k``: the target share at or above ``k`` times the number of items,
    minus the items already at or above ``k``. The largest shortfall is how many items
    (lowest first) need rewriting.
    """
    n = sum(counts.values())
    need, top = 0, 0
    for k in LEVELS:
        want = sum(target.get(lvl, 0.0) for lvl in LEVELS if lvl >= k) * n
        have = sum(counts.get(lvl, 0) for lvl in LEVELS if lvl >= k)
        short = math.ceil(want - have - 1e-9)
        if short > 0:
            need = max(need, short)
            top = k
    return need, top


def mix_gap(mix: Mapping[str, Mapping[int, int]], targets: "DifficultyTargets") -> float:
    """Total-variation distance between realised and target mixes, averaged over
    disciplines weighted by their item counts (0 = on target, 1 = disjoint)."""
    total, acc = 0, 0.0
    for disc, counts in mix.items():
        n = sum(counts.values())
        if not n:
            continue
        target = targets.for_discipline(disc)
        tv = 0.5 * sum(abs(counts.get(lvl, 0) / n - target.get(lvl, 0.0)) for lvl in LEVELS)
        acc += tv * n
        total += n
    return round(acc / total, 4) if total else 0.0



def mix_of(items: Iterable[Item]) -> dict[str, dict[int, int]]:
    """Counts by level 1–5 per discipline (unrated items are not counted), disciplines sorted."""
    out: dict[str, dict[int, int]] = {}
    for it in items:
        if it.difficulty is None:
            continue
        counts = out.setdefault(it.discipline or "Other", {lvl: 0 for lvl in LEVELS})
        counts[level_of(it.difficulty)] += 1  # type: ignore[index]
    return dict(sorted(out.items()))
