"""What a curator reads on the sampling and synthesis pages: each knob and metric in words
(with its one name, used by the engine, the CLI and the stored config, in the help),
discipline shares that always add up to 100 %, and the difficulty table as targets.

>>> knob_label("w_cov")
'Coverage: favour KPs not yet visited'
>>> metric_value("kp_coverage", 0.4963), metric_delta("kp_coverage", 0.4963, 0.7466)
('49.6%', '-25.0 pts vs uniform')
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

__all__ = ["KNOB_WORDS", "knob_label", "knob_help", "METRIC_WORDS", "metric_value", "metric_delta", "rebalance",
           "difficulty_targets"]


# Each knob's words on the sliders: (label, what moving it does). The knob's one name
# (engine, CLI flag, stored config, export) closes the help text.
KNOB_WORDS: dict[str, tuple[str, str]] = {
    "w_pop": ("Popularity: favour KPs many seeds name",
              "Up: paths prefer frequent KPs (well linked, many seeds to bundle). Down: rare KPs get their turn."),
    "w_cov": ("Coverage: favour KPs not yet visited",
              "Up: each path goes where earlier paths have not been, so more KPs get covered."),
    "w_diff": ("Difficulty fit: favour KPs near the target difficulty",
               "Up: paths keep to KPs whose seeds are about as hard as the target difficulty below."),
    "alpha": ("Link pull: follow strong links",
              "Up: a step prefers the neighbour that most seeds share with the current KP. 0: link strength "
              "does not matter."),
    "tau": ("Randomness",
            "Low: always take the best-valued KP (greedy, repetitive). High: close to a uniform random walk."),
    "gamma": ("Coverage decay: how fast a visited KP loses appeal",
              "Up: a KP visited once is already far less attractive. Down: KPs are revisited more before "
              "coverage stops favouring them."),
    "min_len": ("Shortest path (KPs)", "Each path has at least this many KPs (fewer at a dead end)."),
    "max_len": ("Longest path (KPs)", "Each path has at most this many KPs; lengths are drawn evenly in between."),
    "difficulty_target": ("Target difficulty (1 easy – 5 hard)",
                          "The difficulty that the difficulty-fit term rewards."),
    "w_link": ("Linkage: favour KPs that bring in a new seed",
               "Up: the next KP is one a seed not yet in the bundle names, so each bundle joins several seeds "
               "that share KPs. 0: off (more coverage, looser bundles)."),
}


def knob_label(name: str) -> str:
    return KNOB_WORDS.get(name, (name, ""))[0]


def knob_help(name: str, engine_help: str = "") -> str:
    """What moving the knob does, then its name and meaning in the engine."""
    words = KNOB_WORDS.get(name, ("", ""))[1]
    return f"{words}\n\n`{name}` (CLI `--{name.replace('_', '-')}`): {engine_help}".strip()


# name -> (words, exact definition, which way is better: "up", "down" or "" , shown as "%", "int" or "num")
METRIC_WORDS: dict[str, tuple[str, str, str, str]] = {
    "n_paths": ("Paths", "paths sampled", "", "int"),
    "mean_path_length": ("KPs per path", "mean number of KPs on a path", "", "num"),
    "kps_visited": ("KPs visited", "distinct KPs on at least one path", "up", "int"),
    "kp_coverage": ("KP coverage", "share of all KPs of the graph visited by at least one path", "up", "%"),
    "popularity_weighted_coverage": ("Links covered", "share of seed–KP links whose KP some path visited "
                                     "(coverage weighted by how many seeds name each KP)", "up", "%"),
    "visit_entropy": ("Evenness of visits", "entropy of the visit counts divided by log(number of KPs): 1 when "
                      "every KP is visited equally often, 0 when one KP gets every visit", "up", "num"),
    "popularity_rank_correlation": ("Popularity bias", "Spearman rank correlation between a KP's visits and the "
                                    "number of seeds naming it: lower = less drawn to popular KPs", "down", "num"),
    "discipline_tv_distance": ("Off target", "total-variation distance between the realised and "
                               "the target discipline shares of paths: 0 = on target, 1 = disjoint", "down", "%"),
    "mean_seeds_per_path": ("Seeds per bundle", "mean number of seeds given together to the model per path",
                            "up", "num"),
    "mean_link_strength": ("Link strength", "path KPs named per chosen seed, averaged: higher = bundles whose "
                           "seeds cover more of the path each", "up", "num"),
    "bundle_share_2plus": ("Bundles of 2+ seeds", "share of bundles with at least 2 seeds", "up", "%"),
    "bundle_share_3plus": ("Bundles of 3+ seeds", "share of bundles with at least 3 seeds", "up", "%"),
    "bundles_below_min_seeds": ("Short bundles", "bundles with fewer seeds than asked for, because "
                                "fewer seeds name the path's KPs", "down", "int"),
    "mean_shared_kps": ("Shared KPs", "per bundle, the path KPs named by two or more of its seeds "
                        "(concept KPs only, not everyday words), averaged", "up", "num"),
}


def metric_value(name: str, value: Any) -> str:
    """A metric as a curator reads it: percentages, whole numbers, or 3 significant digits."""
    kind = METRIC_WORDS.get(name, ("", "", "", "num"))[3]
    if not isinstance(value, (int, float)):
        return "—"
    if kind == "%":
        return f"{value:.1%}"
    if kind == "int":
        return f"{int(value):,}"
    return f"{value:.3g}"


def metric_delta(name: str, value: Any, baseline: Any) -> str | None:
    """The difference to the uniform walk, in the metric's own unit (percentage points for shares)."""
    if not isinstance(value, (int, float)) or not isinstance(baseline, (int, float)):
        return None
    kind = METRIC_WORDS.get(name, ("", "", "", "num"))[3]
    d = value - baseline
    if kind == "%":
        return f"{d * 100:+.1f} pts vs uniform"
    if kind == "int":
        return f"{int(round(d)):+,} vs uniform"
    return f"{d:+.3g} vs uniform"


def rebalance(shares: Mapping[str, float], changed: str, value: float, step: float = 0.1) -> dict[str, float]:
    """Shares (in %) that add up to 100 after ``changed`` was set to ``value``: the others
    take the rest in proportion to what they had (evenly when they had nothing), rounded
    to ``step``, the rounding left over given to the largest of them.

    >>> rebalance({"a": 50.0, "b": 30.0, "c": 20.0}, "a", 80.0)
    {'a': 80.0, 'b': 12.0, 'c': 8.0}
    """
    value = min(max(float(value), 0.0), 100.0)
    others = [d for d in shares if d != changed]
    out = {changed: value}
    if not others:
        return {changed: 100.0}
    rest = 100.0 - value
    before = sum(max(float(shares[d]), 0.0) for d in others)
    for d in others:
        part = rest * max(float(shares[d]), 0.0) / before if before > 0 else rest / len(others)
        out[d] = round(round(part / step) * step, 6)
    left = round(100.0 - sum(out.values()), 6)
    if left:
        top = max(others, key=lambda d: (out[d], d))
        if out[top] + left >= 0:
            out[top] = round(out[top] + left, 6)
    return {d: out[d] for d in shares}


def difficulty_targets(rows: Sequence[Mapping[str, Any]], default_name: str) -> Any:
    """:class:`~linkqa_core.difficulty.targets.DifficultyTargets` from the page's table:
    one row per discipline with a percentage per level ("1" … "5"); the row named
    ``default_name`` is the default, and a discipline whose row equals it uses it."""
    from linkqa_core.difficulty.targets import LEVELS, DifficultyTargets

    def mix(row: Mapping[str, Any]) -> dict[int, float]:
        out = {}
        for lvl in LEVELS:
            v = row.get(str(lvl))
            out[lvl] = 0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
        return out

    default = next((mix(r) for r in rows if r.get("discipline") == default_name), None)
    if default is None:
        raise InputError(f"the difficulty table has no '{default_name}' row")
    per = {r["discipline"]: mix(r) for r in rows if r.get("discipline") != default_name and mix(r) != default}
    return DifficultyTargets(default=default, per_discipline=per)
