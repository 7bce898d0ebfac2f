"""Difficulty enhancement (DESIGN §7): reach a target difficulty mix by rewriting items harder.

Per discipline there is a target mix of difficulty levels 1–5
(:class:`DifficultyTargets`, default ``3:0.3, 4:0.4, 5:0.3`` everywhere). :func:`enhance`
rates a run's items, compares each discipline's realised mix with its target, and rewrites
the items that keep it below target -- lowest difficulty first, just as many as the
target's share *at or above* each level asks for -- with one in-depth operation each, in
the spirit of Evol-Instruct:

==========================  ===========================================================
``add_constraint``          add a condition the solver must take into account
``deepen``                  ask for the underlying principle or mechanism
``concretise``              turn the general question into a specific, concrete case
``add_reasoning_steps``     require an intermediate result before the answer
``join_kp``                 bring in a KP of the item's path that it does not use yet
==========================  ===========================================================

Each rewrite is re-rated and checked, then stored as a NEW item (``parent_id`` = the
parent's id, ``operation``, ``slot = "<parent slot>/r<round>"``); the parent becomes
``superseded`` once its child is kept. Elimination -- each child that is dropped is kept
as ``rejected`` with its reason in ``gate_reason``:

- *adds nothing*: word-shingle Jaccard with the parent (question and options) at or above
  ``near_copy`` (0.85): ``"adds nothing: near-copy of parent #12 (Jaccard 0.93)"``;
- *not harder*: the rater does not rate it above its parent: ``"rewrite is not harder (2 -> 2)"``;
- with a model: asked twice without the answer (two variants, two temperatures) the model
  gives different answers, or not the stated one: ``"model cannot answer consistently (...)"``;
- with a model: a judge shown the linked seeds says the answer does not follow from them:
  ``"answer does not follow from the linked seeds (...)"``.

A kept child still under target may be rewritten again in the next round, up to
``max_rounds`` rounds per run (the count is stored in the run's config, so a second call
continues instead of starting over; raise ``max_rounds`` to go further). Everything is
resumable: a parent that already has a child for a round is skipped, and every model
request is cached.

Ratings. The rater is the scale of the mix: with a model, :class:`LLMRater` re-rates every
``generated`` item (cached); offline, items keep the difficulty synthesis gave them and
:class:`OfflineRater` rates only those without one. A child's difficulty is its parent's
plus the rater's difference between child and parent, so parent and child are on one
scale whatever rated the parent.

Without a model the :class:`OfflineRewriter` (``model = "offline-rewriter"``) does the
operations it can do honestly -- ``add_constraint``, ``add_reasoning_steps``, ``join_kp``
-- deterministically, keeping the answer one of the options; ``deepen`` and ``concretise``
need a model. Its rewrites are shallow, and the offline checks (near-copy, not harder)
drop the ones that change nothing.

>>> DifficultyTargets.parse("default=3:0.3,4:0.4,5:0.3;Mathematics=4:1").for_discipline("Mathematics")
{1: 0.0, 2: 0.0, 3: 0.0, 4: 1.0, 5: 0.0}
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence

from ..errors import ConfigError, InputError
from ..kps.names import normalize_kp
from ..quality.gates import jaccard, shingles
from ..records import Seed
from ..store import Store
from ..taxonomy import DISCIPLINES

__all__ = [
    "LEVELS",
    "OPERATIONS",
    "OFFLINE_OPERATIONS",
    "OFFLINE_REWRITER",
    "NEAR_COPY",
    "DEFAULT_MIX",
    "DifficultyTargets",
    "QAItem",
    "Rating",
    "Rater",
    "OfflineRater",
    "LLMRater",
    "OfflineRewriter",
    "EnhanceReport",
    "difficulty_mix",
    "level_of",
    "mix_gap",
    "enhance",
]

LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)
OPERATIONS: tuple[str, ...] = ("add_constraint", "deepen", "concretise", "add_reasoning_steps", "join_kp")
OFFLINE_OPERATIONS: tuple[str, ...] = ("add_constraint", "add_reasoning_steps", "join_kp")
OFFLINE_REWRITER = "offline-rewriter"
NEAR_COPY = 0.85
DEFAULT_MIX: dict[int, float] = {3: 0.3, 4: 0.4, 5: 0.3}
LIVE_STATUSES = ("generated", "accepted")

REASON_NEAR_COPY = "adds nothing (near-copy of parent)"
REASON_NOT_HARDER = "rewrite is not harder"
REASON_INCONSISTENT = "model cannot answer consistently"
REASON_NOT_FROM_SEEDS = "answer does not follow from the linked seeds"
REASON_UNCHECKED = "could not be checked"

Progress = Callable[[int, int, str], None]


# -- levels and targets -------------------------------------------------------------------


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


def _needed(counts: Mapping[int, int], target: Mapping[int, float]) -> tuple[int, int]:
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


def difficulty_mix(store: Store, run_id: int) -> dict[str, dict[int, int]]:
    """Counts by level 1–5 per discipline over a run's live items (``generated`` or
    ``accepted``; not superseded, rejected or failed). Unrated items are not counted."""
    store.get_run(run_id)
    out: dict[str, dict[int, int]] = {}
    rows = store.query(
        "SELECT discipline, difficulty FROM items WHERE run_id = ? AND status IN ('generated', 'accepted')"
        " AND difficulty IS NOT NULL", (run_id,))
    for disc, diff in rows:
        counts = out.setdefault(disc or "Other", {lvl: 0 for lvl in LEVELS})
        counts[level_of(diff)] += 1  # type: ignore[index]
    return dict(sorted(out.items()))


# -- items ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QAItem:
    """A generated item as the raters and rewriters see it."""

    question: str
    answer: str
    options: tuple[str, ...] | None = None
    solution: str = ""
    kps_used: tuple[str, ...] = ()
    discipline: str = "Other"
    difficulty: float | None = None
    id: int | None = None
    slot: str = ""
    path_id: int | None = None
    parent_id: int | None = None
    status: str = "generated"
    seed_ids: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: Any) -> "QAItem":
        def load(text: Any) -> Any:
            try:
                return json.loads(text) if text else None
            except ValueError:
                return None

        options = load(row["options"])
        kps = load(row["kps_used"]) or []
        seeds = load(row["seed_ids"]) or []
        return cls(
            question=row["question"] or "", answer=row["answer"] or "",
            options=tuple(str(o) for o in options) if isinstance(options, list) and options else None,
            solution=row["solution"] or "", kps_used=tuple(str(k) for k in kps) if isinstance(kps, list) else (),
            discipline=row["discipline"] or "Other", difficulty=row["difficulty"], id=row["id"], slot=row["slot"],
            path_id=row["path_id"], parent_id=row["parent_id"], status=row["status"],
            seed_ids=tuple(str(s) for s in seeds) if isinstance(seeds, list) else (),
        )


def _format_item(item: QAItem, *, with_answer: bool = True) -> str:
    lines = [f"Question: {item.question.strip()}"]
    if item.options:
        lines.append("Options:")
        lines += [f"{chr(65 + j)}. {o}" for j, o in enumerate(item.options)]
    if with_answer:
        lines.append(f"Answer: {item.answer}")
    return "\n".join(lines)


def _format_seeds(seeds: Sequence[Seed]) -> str:
    out = []
    for i, s in enumerate(seeds, 1):
        lines = [f"Seed {i} ({s.subject or s.discipline}): {s.question.strip()}"]
        if s.options:
            lines += [f"  {chr(65 + j)}. {o}" for j, o in enumerate(s.options)]
        lines.append(f"  Answer: {s.answer}")
        out.append("\n".join(lines))
    return "\n\n".join(out) or "(none)"


# -- raters ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rating:
    level: int
    why: str = ""


class Rater(Protocol):
    """Rates items 1–5; ``None`` where it could not."""

    name: str

    def rate_many(self, items: Sequence[QAItem], *, run_id: int | None = None,
                  stop_event: threading.Event | None = None) -> list[Optional[Rating]]:
        ...


_NUMBER = re.compile(r"(?<![A-Za-z])\d+(?:[.,]\d+)?")
_PART = re.compile(r"\b(?:part|step)\s*(\d+)\b|\((i{1,3}|iv|v|[a-e])\)", re.I)
_CONSTRAINT = re.compile(
    r"\b(constraint|must|assum(?:e|ing)|given that|only if|provided that|unless|without|at least|at most|exactly)\b",
    re.I)


class OfflineRater:
    """A documented heuristic 1–5 for when no model is set; deterministic, no network.

    Score = 1
    + min(1.5, words in the question / 80)                 (length)
    + 0.25 per KP used beyond the first, at most +1        (knowledge combined)
    + 0.2 per number in the question, at most +1           (calculation)
    + 0.5 per part or step beyond the first, at most +1.5  ("Part 2", "Step 3", "(ii)")
    + 0.25 per constraint word, at most +0.75              ("must", "assume", "only if"...)
    + 0.5 for an open question (no options to eliminate from),
      else 0.25 per option beyond four, at most +0.75;
    rounded half up and clamped to 1–5. It measures load, not insight: a model rates better.
    """

    name = "offline-heuristic"

    def score(self, item: QAItem) -> tuple[float, list[str]]:
        q = item.question or ""
        notes: list[str] = []
        s = 1.0
        words = len(q.split())
        add = min(1.5, words / 80)
        s += add
        notes.append(f"{words} words +{add:.2f}")
        k = len({normalize_kp(x) for x in item.kps_used if str(x).strip()})
        if k >= 2:
            add = min(1.0, 0.25 * (k - 1))
            s += add
            notes.append(f"{k} KPs +{add:.2f}")
        nums = len(_NUMBER.findall(q))
        if nums:
            add = min(1.0, 0.2 * nums)
            s += add
            notes.append(f"{nums} numbers +{add:.2f}")
        parts = {m.group(1) or m.group(2).lower() for m in _PART.finditer(q)}
        if len(parts) >= 2:
            add = min(1.5, 0.5 * (len(parts) - 1))
            s += add
            notes.append(f"{len(parts)} parts/steps +{add:.2f}")
        cons = len(_CONSTRAINT.findall(q))
        if cons:
            add = min(0.75, 0.25 * cons)
            s += add
            notes.append(f"{cons} constraint words +{add:.2f}")
        if not item.options:
            s += 0.5
            notes.append("open question +0.50")
        elif len(item.options) > 4:
            add = min(0.75, 0.25 * (len(item.options) - 4))
            s += add
            notes.append(f"{len(item.options)} options +{add:.2f}")
        return s, notes

    def rate(self, item: QAItem) -> Rating:
        s, notes = self.score(item)
        level = int(min(5, max(1, math.floor(s + 0.5))))
        return Rating(level, f"offline heuristic {s:.2f}: " + ", ".join(notes))

    def rate_many(self, items: Sequence[QAItem], *, run_id: int | None = None,
                  stop_event: threading.Event | None = None) -> list[Optional[Rating]]:
        return [self.rate(it) for it in items]


_RATE_PROMPT = """Rate the difficulty of this {discipline} exam question for a strong undergraduate, 1 to 5:
1 = recall of a single fact; 2 = one concept applied directly; 3 = one concept applied with a few steps;
4 = several concepts combined or multi-step reasoning; 5 = expert level: long reasoning across several concepts.

{item}

Reply with JSON only: {{"difficulty": <1-5>, "why": "<one sentence>"}}"""

RATING_SCHEMA: dict[str, Any] = {
    "name": "difficulty_rating",
    "schema": {"type": "object",
               "properties": {"difficulty": {"type": "integer", "minimum": 1, "maximum": 5},
                              "why": {"type": "string"}},
               "required": ["difficulty", "why"], "additionalProperties": False},
}


def _loads(content: str) -> Any:
    """JSON from a model answer: the whole text, a fenced block, or the outermost braces."""
    text = (content or "").strip()
    candidates = [text]
    m = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if m:
        candidates.append(m.group(1))
    a, b = text.find("{"), text.rfind("}")
    if 0 <= a < b:
        candidates.append(text[a:b + 1])
    for cand in candidates:
        try:
            return json.loads(cand)
        except ValueError:
            continue
    return None


class LLMRater:
    """Asks the model for ``{"difficulty": 1-5, "why": ...}``, one request per item, all
    concurrent through the client (and cached). Give ``client`` (an open
    :class:`~linkqa_core.llm.LLMClient`, not closed here) or ``settings`` (+ ``store``
    for the cache); call :meth:`close` when it made its own client."""

    def __init__(self, client: Any = None, *, settings: Any = None, store: Any = None):
        if client is None:
            if settings is None or not getattr(settings, "configured", False):
                raise ConfigError("the LLM rater needs an endpoint and a model (OPENAI_BASE_URL, LINKQA_MODEL)")
            from ..llm.client import LLMClient

            client = LLMClient(settings, store)
            self._own = True
        else:
            self._own = False
        self.client = client
        self.name = f"llm:{client.settings.model}"

    def close(self) -> None:
        if self._own:
            self.client.close()

    def request(self, item: QAItem, run_id: int | None = None) -> Any:
        from ..llm.client import ChatRequest

        prompt = _RATE_PROMPT.format(discipline=item.discipline, item=_format_item(item))
        return ChatRequest(messages=[{"role": "user", "content": prompt}], temperature=0.0,
                           response_format={"type": "json_schema", "json_schema": RATING_SCHEMA},
                           stage="difficulty-rate", run_id=run_id)

    @staticmethod
    def parse(content: str) -> Optional[Rating]:
        data = _loads(content)
        if not isinstance(data, dict):
            return None
        value = data.get("difficulty")
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            return None
        return Rating(int(min(5, max(1, math.floor(value + 0.5)))), str(data.get("why") or "")[:500])

    def rate_many(self, items: Sequence[QAItem], *, run_id: int | None = None,
                  stop_event: threading.Event | None = None) -> list[Optional[Rating]]:
        if not items:
            return []
        results = self.client.complete_many([self.request(it, run_id) for it in items], stop_event=stop_event)
        return [None if r.error else self.parse(r.content) for r in results]


# -- rewriting ----------------------------------------------------------------------------------


@dataclass
class _Context:
    """What a rewrite of one item may draw on: its path and its linked seeds."""

    path_kps: list[str]
    seeds: list[Seed]
    seed_kps: dict[str, set[str]]

    def new_kps(self, item: QAItem) -> list[str]:
        used = {normalize_kp(k) for k in item.kps_used}
        return [k for k in self.path_kps if normalize_kp(k) not in used]


@dataclass
class _Job:
    parent: QAItem
    op: str
    ctx: _Context
    slot: str
    new_kp: str | None = None
    seed: Seed | None = None  # the linked seed an offline rewrite draws on


@dataclass
class _Draft:
    """A rewrite before the checks, or why there is none."""

    question: str = ""
    answer: str = ""
    options: tuple[str, ...] | None = None
    solution: str = ""
    kps_used: tuple[str, ...] = ()
    seed_ids: tuple[str, ...] | None = None  # when the rewrite draws on a seed outside the bundle
    model: str = OFFLINE_REWRITER
    reasoning: str | None = None
    raw: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None  # no usable rewrite: stored as 'failed'
    unstarted: bool = False  # budget reached or stopped before the request: store nothing

    def item(self, parent: QAItem) -> QAItem:
        return QAItem(question=self.question, answer=self.answer, options=self.options, solution=self.solution,
                      kps_used=self.kps_used, discipline=parent.discipline, path_id=parent.path_id,
                      seed_ids=self.seed_ids or parent.seed_ids)


def _norm(text: str) -> str:
    return " ".join(str(text).casefold().split()).rstrip(".;:!? ")


def _validate(d: _Draft) -> str | None:
    if not d.question.strip():
        return "the rewrite has no question"
    if not d.answer.strip():
        return "the rewrite has no answer"
    if d.options is not None:
        if len(d.options) < 2:
            return "the rewrite has fewer than two options"
        normed = [_norm(o) for o in d.options]
        if len(set(normed)) != len(normed):
            return "the rewrite repeats an option"
        if normed.count(_norm(d.answer)) != 1:
            return "the rewrite's answer is not one of its options"
    return None


_PART_LINE = re.compile(r"^Part (\d+)\b", re.M)
_ANSWER_PART = re.compile(r"Part (\d+): (.*?)(?=; Part \d+: |$)", re.S)


def _parts(text: str) -> list[tuple[int, str]]:
    return [(int(n), v) for n, v in _ANSWER_PART.findall(text)]


def _is_parted(item: QAItem) -> bool:
    """A multi-part item in the offline composer's form: "Part 1: x; Part 2: y" answers."""
    if not _PART_LINE.search(item.question) or not item.answer.startswith("Part 1: "):
        return False
    return all(str(o).startswith("Part 1: ") for o in item.options or ())


def _quoted(seed: Seed, question: str) -> bool:
    head = " ".join(seed.question.split())[:80]
    return bool(head) and head in " ".join(question.split())


class OfflineRewriter:
    """Deterministic rewrites without a model, labelled ``model = "offline-rewriter"``.

    - ``add_reasoning_steps``: appends a required intermediate part taken from a linked
      seed not yet quoted; the answer gains that seed's answer as a new part.
    - ``join_kp``: the same with a seed that names a KP of the path the item does not use
      yet; that KP joins ``kps_used``. A linked seed is preferred; when none is free, the
      first seed of the database naming the KP is used and joins the child's ``seed_ids``,
      so its provenance stays complete.
    - ``add_constraint``: states a constraint and adds one close distractor (for
      multi-part items: the right answer with one part wrong).

    Options are rebuilt so that exactly one is right: the old right option with the new
    part's right answer; every old wrong option stays wrong; and one new distractor is
    right on the old parts but wrong on the new one, so the new part must be solved.
    """

    name = OFFLINE_REWRITER
    operations = OFFLINE_OPERATIONS

    def __init__(self, store: Store | None = None):
        self.store = store

    def _seeds_naming(self, kp: str, discipline: str) -> list[Seed]:
        """Seeds outside the bundle that name a KP (same discipline first), when a store is given."""
        if self.store is None:
            return []
        rows = self.store.query(
            "SELECT s.id FROM kps k JOIN seed_kps l ON l.kp_id = k.id JOIN seeds s ON s.rid = l.seed_rid"
            " WHERE k.name = ? ORDER BY s.discipline != ?, s.rid LIMIT 20", (kp, discipline))
        return self.store.get_seeds([r[0] for r in rows])

    def prepare(self, job: _Job) -> bool:
        """Pick what the operation needs; False when this item cannot take it."""
        item, ctx = job.parent, job.ctx
        if job.op == "add_constraint":
            return True
        free = [s for s in ctx.seeds if not _quoted(s, item.question)]
        if job.op == "join_kp":
            new = ctx.new_kps(item)
            for kp in new:
                name = normalize_kp(kp)
                match = next((s for s in free if name in ctx.seed_kps.get(s.id, set())), None)
                if match is not None:
                    job.new_kp, job.seed = kp, match
                    return True
            # no unquoted linked seed names one: draw on another seed naming it, which
            # then joins the item's linked seeds
            for kp in new:
                match = next((s for s in self._seeds_naming(normalize_kp(kp), item.discipline)
                              if s.id not in item.seed_ids and not _quoted(s, item.question)), None)
                if match is not None:
                    job.new_kp, job.seed = kp, match
                    return True
            return False
        if job.op == "add_reasoning_steps":
            if free:
                job.seed = free[0]
                return True
            return False
        return False

    def rewrite_many(self, jobs: Sequence[_Job], *, run_id: int | None = None,
                     stop_event: threading.Event | None = None) -> list[_Draft]:
        out = []
        for job in jobs:
            if stop_event is not None and stop_event.is_set():
                out.append(_Draft(error="stopped", unstarted=True))
                continue
            out.append(self.rewrite(job))
        return out

    def rewrite(self, job: _Job) -> _Draft:
        if job.op == "add_constraint":
            return self._constraint(job)
        assert job.seed is not None
        note = f" (brings in {job.new_kp})" if job.op == "join_kp" else \
            " (a required intermediate step: settle it before choosing)"
        draft = self._add_part(job.parent, job.seed, note, job.op)
        if job.op == "join_kp" and job.new_kp:
            draft.kps_used = tuple(dict.fromkeys([*job.parent.kps_used, job.new_kp]))
        if job.seed.id not in job.parent.seed_ids:
            draft.seed_ids = (*job.parent.seed_ids, job.seed.id)
        return draft

    def _add_part(self, item: QAItem, seed: Seed, note: str, op: str) -> _Draft:
        if _is_parted(item):
            n = max(int(x) for x in _PART_LINE.findall(item.question)) + 1
            question, answer, options = item.question.rstrip(), item.answer, list(item.options or ())
        else:
            n = 2
            question = "Part 1: " + item.question.strip()
            answer = f"Part 1: {item.answer}"
            options = [f"Part 1: {o}" for o in item.options or ()]
        question += f"\nPart {n}{note}: {seed.question.strip()}"
        right = seed.answer.strip()
        wrong = [o for o in (seed.options or ()) if _norm(o) != _norm(right)] or [f"not {right}"]
        new_answer = f"{answer}; Part {n}: {right}"
        new_options: list[str] | None = None
        if item.options:
            old_right = _norm(answer)
            new_options = []
            w = 0
            for j, o in enumerate(options):
                if _norm(o) == old_right:
                    new_options.append(new_answer)
                else:
                    pick = right if j % 2 == 0 else wrong[w % len(wrong)]
                    w += pick != right
                    new_options.append(f"{o}; Part {n}: {pick}")
            # right on the old parts, wrong on the new one: the new part has to be solved
            trap = f"{answer}; Part {n}: {wrong[0]}"
            wrong_idx = [j for j, o in enumerate(new_options) if o != new_answer]
            if len(wrong_idx) >= 2:
                new_options[wrong_idx[-1]] = trap
            else:
                new_options.append(trap)
            new_options = list(dict.fromkeys(new_options))
        solution = (item.solution.rstrip() + "\n" if item.solution else "") + \
            f"Part {n}: {right} (from linked seed {seed.id}). Rewritten offline ({op}) without a model."
        return _Draft(question=question, answer=new_answer, options=tuple(new_options) if new_options else None,
                      solution=solution, kps_used=item.kps_used)

    def _constraint(self, job: _Job) -> _Draft:
        item = job.parent
        options = list(item.options or ())
        kps = [k for k in (item.kps_used or tuple(job.ctx.path_kps)) if k][:2]
        if _is_parted(item):
            text = "Constraint: an option counts as correct only if every one of its parts is correct."
            right = _parts(item.answer)
            for o in options[::-1]:
                if options and _norm(o) == _norm(item.answer):
                    continue
                other = dict(_parts(o))
                for idx in range(len(right) - 1, -1, -1):
                    num, val = right[idx]
                    if num in other and _norm(other[num]) != _norm(val):
                        cand = "; ".join(f"Part {m}: {other[m] if k == idx else v}" for k, (m, v) in enumerate(right))
                        if _norm(cand) not in {_norm(x) for x in options}:
                            options.append(cand)
                            break
                else:
                    continue
                break
        else:
            about = " and ".join(kps) if kps else "the concepts involved"
            text = f"Constraint: the answer must hold when {about} are applied exactly as stated here; " \
                   "assume nothing that the question does not state."
            if options:
                seen = {_norm(o) for o in options}
                extra = next((o for s in job.ctx.seeds for o in (s.options or ())
                              if _norm(o) not in seen and _norm(o) != _norm(s.answer) and len(o.split()) > 1), None)
                if extra is not None:
                    options.append(extra)
        question = item.question.rstrip() + "\n" + text
        solution = (item.solution.rstrip() + "\n" if item.solution else "") + \
            "Rewritten offline (add_constraint) without a model: the stated constraint does not change the answer."
        return _Draft(question=question, answer=item.answer, options=tuple(options) if item.options else None,
                      solution=solution, kps_used=item.kps_used)


_OP_TEXT = {
    "add_constraint": "Add a constraint or condition that the solver must take into account and that changes the "
                      "reasoning needed, not just the wording.",
    "deepen": "Deepen it: ask about the underlying principle, mechanism or consequence instead of a surface fact.",
    "concretise": "Concretise it: replace general concepts by a specific, realistic case with concrete values or "
                  "details the solver must work with.",
    "add_reasoning_steps": "Require more reasoning steps: the solver must derive an intermediate result before "
                           "reaching the answer.",
    "join_kp": "Join another knowledge point of the path: the new question must also need '{kp}', which the "
               "question does not use yet.",
}

_REWRITE_PROMPT = """Rewrite this exam question to make it harder, with one in-depth operation.

Operation: {operation}

Discipline: {discipline}
Knowledge points of the path, in order: {path_kps}
Knowledge points the question uses now: {kps_used}

Linked seed questions (the new answer must follow from this knowledge):
{seeds}

The question (difficulty {difficulty} of 5):
{item}
Solution: {solution}

Write ONE harder, self-contained version. It must need more knowledge or more reasoning than the original,
not just more words, and keep exactly one correct answer that follows from the linked seeds. {format_rule}
Reply with JSON only: {{"question": "...", "options": [...], "answer": "...", "solution": "<worked solution>",
"kps_used": ["..."]}}"""

_MC_RULE = "Give options with exactly one correct; 'answer' is the correct option's text."
_OPEN_RULE = "Keep it an open question with a short, checkable final answer ('options': [])."

REWRITE_SCHEMA: dict[str, Any] = {
    "name": "harder_item",
    "schema": {"type": "object",
               "properties": {"question": {"type": "string"},
                              "options": {"type": "array", "items": {"type": "string"}},
                              "answer": {"type": "string"}, "solution": {"type": "string"},
                              "kps_used": {"type": "array", "items": {"type": "string"}}},
               "required": ["question", "answer", "solution"]},
}


class _LLMRewriter:
    operations = OPERATIONS

    def __init__(self, client: Any):
        self.client = client
        self.name = client.settings.model

    def prepare(self, job: _Job) -> bool:
        if job.op == "join_kp":
            new = job.ctx.new_kps(job.parent)
            if not new:
                return False
            job.new_kp = new[0]
        return True

    def request(self, job: _Job, run_id: int | None) -> Any:
        from ..llm.client import ChatRequest

        p = job.parent
        prompt = _REWRITE_PROMPT.format(
            operation=_OP_TEXT[job.op].format(kp=job.new_kp or ""),
            discipline=p.discipline, path_kps=" -> ".join(job.ctx.path_kps) or "(none)",
            kps_used=", ".join(p.kps_used) or "(none)", seeds=_format_seeds(job.ctx.seeds),
            difficulty=f"{p.difficulty:g}" if p.difficulty is not None else "unknown",
            item=_format_item(p), solution=p.solution or "(none)",
            format_rule=_MC_RULE if p.options else _OPEN_RULE,
        )
        return ChatRequest(messages=[{"role": "user", "content": prompt}],
                           response_format={"type": "json_schema", "json_schema": REWRITE_SCHEMA},
                           stage="difficulty-rewrite", run_id=run_id)

    def rewrite_many(self, jobs: Sequence[_Job], *, run_id: int | None = None,
                     stop_event: threading.Event | None = None) -> list[_Draft]:
        from ..synthesis.run import ParseError, parse_items

        results = self.client.complete_many([self.request(j, run_id) for j in jobs], stop_event=stop_event)
        out = []
        for job, res in zip(jobs, results):
            base = dict(model=res.model or self.name, reasoning=res.reasoning, raw=res.content or None,
                        prompt_tokens=res.prompt_tokens or 0, completion_tokens=res.completion_tokens or 0)
            if res.error:
                out.append(_Draft(error=f"rewrite request failed: {res.error}",
                                  unstarted=not res.attempts and not res.cached, **base))
                continue
            try:
                item = parse_items(res.content, multiple_choice=bool(job.parent.options))[0]
            except ParseError as err:
                out.append(_Draft(error=f"malformed rewrite: {err}", **base))
                continue
            kps = tuple(item["kps_used"]) or job.parent.kps_used
            if job.new_kp and normalize_kp(job.new_kp) not in {normalize_kp(k) for k in kps}:
                kps = (*kps, job.new_kp)
            out.append(_Draft(question=item["question"], answer=item["answer"],
                              options=tuple(item["options"]) if item["options"] else None,
                              solution=item["solution"], kps_used=kps, **base))
        return out


# -- model checks -----------------------------------------------------------------------------

_ANSWER_PROMPT = """Answer this {discipline} exam question. Work it out carefully, then reply with JSON only:
{{"answer": "{shape}"}}

{item}"""

_JUDGE_PROMPT = """Judge whether a new exam question is sound given the linked seed questions it was written from.

Linked seeds:
{seeds}

New question:
{item}
Worked solution: {solution}

Does the stated answer follow from the knowledge in the linked seeds (with sound reasoning), and is it the one
correct answer? Reply with JSON only: {{"verdict": "yes" or "no", "why": "<one sentence>"}}"""

ANSWER_SCHEMA: dict[str, Any] = {
    "name": "answer", "schema": {"type": "object", "properties": {"answer": {"type": "string"}},
                                 "required": ["answer"], "additionalProperties": False}}
JUDGE_SCHEMA: dict[str, Any] = {
    "name": "verdict",
    "schema": {"type": "object", "properties": {"verdict": {"type": "string", "enum": ["yes", "no"]},
                                                "why": {"type": "string"}},
               "required": ["verdict", "why"], "additionalProperties": False}}
_LETTER = re.compile(r"^\(?([A-Za-z])\)?[.:)]?(?:\s+(.*))?$", re.S)
_WORDS = re.compile(r"\w+")


def _short(text: Any, limit: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _given_answer(content: str) -> str | None:
    data = _loads(content)
    if isinstance(data, dict) and data.get("answer") is not None:
        return str(data["answer"]).strip()
    text = (content or "").strip()
    return text or None


def _option_index(answer: str, options: Sequence[str]) -> int | None:
    """Which option an answer names: its letter, its text, or a text that contains exactly one option."""
    a = answer.strip()
    m = _LETTER.match(a)
    if m and ord(m.group(1).upper()) - 65 < len(options) and (not m.group(2) or len(a) <= 3 or
                                                              _norm(m.group(2)) in {_norm(o) for o in options}):
        return ord(m.group(1).upper()) - 65
    na = _norm(a)
    for j, o in enumerate(options):
        if _norm(o) == na:
            return j
    inside = [j for j, o in enumerate(options) if _norm(o) and _norm(o) in na]
    if len(inside) == 1:
        return inside[0]
    return None


def _same_open_answer(given: str, stated: str) -> bool:
    g, s = _WORDS.findall(given.casefold()), _WORDS.findall(stated.casefold())
    if not g or not s:
        return False
    if g == s:
        return True
    try:
        return math.isclose(float(given.strip().rstrip(".")), float(stated.strip().rstrip(".")), rel_tol=1e-6)
    except ValueError:
        pass
    n = len(s)
    return any(g[i:i + n] == s for i in range(len(g) - n + 1))


class _LLMChecker:
    """The model checks of a rewrite: answers it twice without the answer; judges it against the seeds."""

    def __init__(self, client: Any):
        self.client = client

    def requests(self, job: _Job, child: QAItem, run_id: int | None) -> list[Any]:
        from ..llm.client import ChatRequest

        shape = "<the text of the option you choose>" if child.options else "<your short final answer>"
        ask = _ANSWER_PROMPT.format(discipline=child.discipline, shape=shape, item=_format_item(child, with_answer=False))
        judge = _JUDGE_PROMPT.format(seeds=_format_seeds(job.ctx.seeds), item=_format_item(child),
                                     solution=child.solution or "(none)")
        rf_answer = {"type": "json_schema", "json_schema": ANSWER_SCHEMA}
        return [
            ChatRequest(messages=[{"role": "user", "content": ask}], temperature=0.0, response_format=rf_answer,
                        stage="difficulty-check", run_id=run_id, variant=1),
            ChatRequest(messages=[{"role": "user", "content": ask}], temperature=0.8, response_format=rf_answer,
                        stage="difficulty-check", run_id=run_id, variant=2),
            ChatRequest(messages=[{"role": "user", "content": judge}], temperature=0.0,
                        response_format={"type": "json_schema", "json_schema": JUDGE_SCHEMA},
                        stage="difficulty-judge", run_id=run_id),
        ]

    def check_many(self, pairs: Sequence[tuple[_Job, QAItem]], *, run_id: int | None,
                   stop_event: threading.Event | None) -> list[tuple[str | None, str | None, bool]]:
        """Per pair: (reason kind, reason text, unstarted); kind ``None`` means it passed."""
        reqs = [r for job, child in pairs for r in self.requests(job, child, run_id)]
        results = self.client.complete_many(reqs, stop_event=stop_event) if reqs else []
        out = []
        for k, (job, child) in enumerate(pairs):
            a1, a2, verdict = results[3 * k: 3 * k + 3]
            if any(r.error and not r.attempts and not r.cached for r in (a1, a2, verdict)):
                out.append((None, None, True))
                continue
            failed = next((r for r in (a1, a2, verdict) if r.error), None)
            if failed is not None:
                out.append((REASON_UNCHECKED, f"{REASON_UNCHECKED}: a check request failed: {failed.error}", False))
                continue
            g1, g2 = _given_answer(a1.content), _given_answer(a2.content)
            if child.options:
                want = _option_index(child.answer, child.options)
                i1 = _option_index(g1, child.options) if g1 else None
                i2 = _option_index(g2, child.options) if g2 else None
                ok = want is not None and i1 == want and i2 == want
            else:
                ok = bool(g1 and g2) and _same_open_answer(g1, child.answer) and _same_open_answer(g2, child.answer)
            if not ok:
                out.append((REASON_INCONSISTENT,
                            f"{REASON_INCONSISTENT} (answered '{_short(g1)}' and '{_short(g2)}'; "
                            f"stated '{_short(child.answer)}')", False))
                continue
            data = _loads(verdict.content)
            said = str(data.get("verdict", "")).strip().lower() if isinstance(data, dict) else ""
            if isinstance(data, dict) and isinstance(data.get("verdict"), bool):
                said = "yes" if data["verdict"] else "no"
            if said != "yes":
                why = _short(data.get("why", "") if isinstance(data, dict) else verdict.content, 160)
                out.append((REASON_NOT_FROM_SEEDS,
                            f"{REASON_NOT_FROM_SEEDS} (judge: {said or 'no clear verdict'}{'; ' + why if why else ''})",
                            False))
                continue
            out.append((None, None, False))
        return out


# -- the report ---------------------------------------------------------------------------------


@dataclass
class EnhanceReport:
    """What :func:`enhance` did. Mixes are ``{discipline: {level: count}}`` over live items."""

    run_id: int
    targets: dict[str, dict[int, float]]
    rater: str
    rewriter: str
    mix_before: dict[str, dict[int, int]] = field(default_factory=dict)
    mix_after: dict[str, dict[int, int]] = field(default_factory=dict)
    gap_before: float = 0.0
    gap_after: float = 0.0
    rated: int = 0
    rounds: int = 0
    rounds_done: int = 0
    attempted: int = 0
    kept: int = 0
    eliminated: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    requests: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: list[str] = field(default_factory=list)
    stopped: str | None = None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tokens"] = self.tokens
        return d


# -- enhance ------------------------------------------------------------------------------------


def _items(store: Store, run_id: int, statuses: Sequence[str]) -> list[QAItem]:
    marks = ",".join("?" * len(statuses))
    rows = store.query(f"SELECT * FROM items WHERE run_id = ? AND status IN ({marks}) ORDER BY id",
                       (run_id, *statuses))
    return [QAItem.from_row(r) for r in rows]


def _contexts(store: Store, items: Sequence[QAItem]) -> dict[int, _Context]:
    """Path KPs and linked seeds of each item, keyed by item id."""
    path_ids = sorted({it.path_id for it in items if it.path_id is not None})
    path_kps: dict[int, list[str]] = {}
    for k in range(0, len(path_ids), 900):
        chunk = path_ids[k:k + 900]
        for pid, kps in store.query(f"SELECT id, kps FROM paths WHERE id IN ({','.join('?' * len(chunk))})", chunk):
            path_kps[pid] = json.loads(kps) if kps else []
    seed_ids = sorted({s for it in items for s in it.seed_ids})
    seeds = {s.id: s for s in store.get_seeds(seed_ids)}
    seed_kps: dict[str, set[str]] = {}
    for k in range(0, len(seed_ids), 900):
        chunk = seed_ids[k:k + 900]
        for sid, name in store.query(
            "SELECT s.id, k.name FROM seeds s JOIN seed_kps l ON l.seed_rid = s.rid JOIN kps k ON k.id = l.kp_id"
            f" WHERE s.id IN ({','.join('?' * len(chunk))})", chunk):
            seed_kps.setdefault(sid, set()).add(name)
    return {
        it.id: _Context(path_kps.get(it.path_id, []) if it.path_id is not None else [],  # type: ignore[misc]
                        [seeds[s] for s in it.seed_ids if s in seeds], seed_kps)
        for it in items if it.id is not None
    }


def _item_shingles(item: QAItem) -> set[str]:
    out = shingles(item.question)
    for o in item.options or ():
        out |= shingles(o)
    return out


def _select(store: Store, run_id: int, targets: DifficultyTargets, rnd: int) -> list[QAItem]:
    """The items to rewrite in round ``rnd``: per discipline, lowest difficulty first, as many
    as the largest shortfall of the target share at or above a level."""
    live = [it for it in _items(store, run_id, LIVE_STATUSES) if it.difficulty is not None]
    taken = {r[0] for r in store.query("SELECT slot FROM items WHERE run_id = ? AND slot LIKE ?",
                                       (run_id, f"%/r{rnd}"))}
    by_disc: dict[str, list[QAItem]] = {}
    for it in live:
        by_disc.setdefault(it.discipline, []).append(it)
    chosen: list[QAItem] = []
    for disc in sorted(by_disc):
        group = by_disc[disc]
        counts = {lvl: 0 for lvl in LEVELS}
        for it in group:
            counts[level_of(it.difficulty)] += 1  # type: ignore[index]
        need, top = _needed(counts, targets.for_discipline(disc))
        if need <= 0:
            continue
        eligible = [it for it in group if it.status == "generated" and level_of(it.difficulty) < top  # type: ignore[operator]
                    and f"{it.slot}/r{rnd}" not in taken]
        eligible.sort(key=lambda it: (it.difficulty, it.id))
        chosen.extend(eligible[:need])
    return chosen


def _store_children(store: Store, run_id: int, rows: Sequence[tuple[_Job, _Draft, str, str | None, float | None]]
                    ) -> int:
    """Insert children (status, reason, difficulty); supersede the parents of kept ones. Returns kept."""
    now = time.time()
    kept = 0
    with store.transaction() as conn:
        for job, d, status, reason, difficulty in rows:
            p = job.parent
            ok = d.error is None
            cur = conn.execute(
                "INSERT OR IGNORE INTO items (run_id, path_id, parent_id, slot, status, question, options, answer,"
                " solution, kps_used, discipline, difficulty, seed_ids, model, reasoning, raw, gate_reason, operation,"
                " prompt_tokens, completion_tokens, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, p.path_id, p.id, job.slot, status, d.question if ok else None,
                 json.dumps(list(d.options), ensure_ascii=False) if ok and d.options else None,
                 d.answer if ok else None, d.solution if ok else None,
                 json.dumps(list(d.kps_used), ensure_ascii=False) if ok else None, p.discipline, difficulty,
                 json.dumps(list(d.seed_ids or p.seed_ids)), d.model, d.reasoning, d.raw, reason, job.op,
                 d.prompt_tokens, d.completion_tokens, now, now),
            )
            if cur.rowcount and status == "generated":
                # a parent a curator accepted or rejected meanwhile keeps that decision
                conn.execute("UPDATE items SET status = 'superseded', updated_at = ? WHERE id = ?"
                             " AND status = 'generated'", (now, p.id))
                kept += 1
    return kept


def enhance(
    store: Store,
    run_id: int,
    targets: DifficultyTargets = DifficultyTargets(),
    settings: Any = None,
    *,
    max_rounds: int = 2,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
    rater: Rater | None = None,
    client: Any = None,
    near_copy: float = NEAR_COPY,
) -> EnhanceReport:
    """Rewrite a run's items harder until each discipline meets its target mix (or the
    rounds run out); returns the mix before and after and what was eliminated, and why.

    ``settings`` is an :class:`~linkqa_core.llm.LLMSettings`; ``None`` or an unconfigured
    one works offline (:class:`OfflineRater`, :class:`OfflineRewriter`). ``client`` reuses
    an open :class:`~linkqa_core.llm.LLMClient`. ``rater`` overrides the rater; a given
    rater re-rates every ``generated`` item. ``max_rounds`` is the total number of rounds
    for the run, over all calls.
    """
    if not isinstance(targets, DifficultyTargets):
        targets = DifficultyTargets.from_dict(targets) if isinstance(targets, Mapping) else \
            DifficultyTargets.parse(str(targets))
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or not 0 <= max_rounds <= 20:
        raise ConfigError(f"max_rounds must be a whole number 0-20, got {max_rounds!r}")
    if not 0 < near_copy <= 1:
        raise ConfigError(f"the near-copy threshold must be above 0 and at most 1, got {near_copy}")
    store.get_run(run_id)  # NotFoundError with a clear message
    if not store.scalar("SELECT count(*) FROM items WHERE run_id = ?", (run_id,)):
        raise InputError(f"run {run_id} has no items yet: synthesize first")

    own_client = False
    if client is None and settings is not None and getattr(settings, "configured", False):
        from ..llm.client import LLMClient

        client = LLMClient(settings, store)
        own_client = True
    use_llm = client is not None
    rerate_all = rater is not None or use_llm
    if rater is None:
        rater = LLMRater(client) if use_llm else OfflineRater()
    rewriter: Any = _LLMRewriter(client) if use_llm else OfflineRewriter(store)
    checker = _LLMChecker(client) if use_llm else None
    usage0 = client.usage if use_llm else None
    report = EnhanceReport(run_id=run_id, targets=targets.to_dict(), rater=rater.name, rewriter=rewriter.name)

    def stopped() -> bool:
        if stop_event is not None and stop_event.is_set():
            report.stopped = report.stopped or "stopped by the curator"
        if use_llm and client.budget_reached:
            report.stopped = report.stopped or "token or money budget reached"
        return report.stopped is not None

    try:
        # 1. rate: every generated item with a model (cached), else only the unrated ones
        live = _items(store, run_id, LIVE_STATUSES)
        to_rate = [it for it in live if it.difficulty is None or (rerate_all and it.status == "generated")]
        if to_rate:
            if progress:
                progress(0, len(to_rate), f"rating {len(to_rate)} items ({rater.name})")
            ratings = rater.rate_many(to_rate, run_id=run_id, stop_event=stop_event)
            updates = [(float(r.level), time.time(), it.id) for it, r in zip(to_rate, ratings) if r is not None]
            with store.transaction() as conn:
                conn.executemany("UPDATE items SET difficulty = ?, updated_at = ? WHERE id = ?", updates)
            report.rated = len(updates)
            missing = len(to_rate) - len(updates)
            if missing:
                report.errors.append(f"{missing} item(s) could not be rated")
            if progress:
                progress(len(to_rate), len(to_rate), f"rated {len(updates)} items")
        report.mix_before = difficulty_mix(store, run_id)
        report.gap_before = mix_gap(report.mix_before, targets)

        # 2. rounds
        state = (store.get_run(run_id)["config"] or {}).get("difficulty") or {}
        done = int(state.get("rounds_done", 0))
        report.rounds_done = done
        for rnd in range(done + 1, max_rounds + 1):
            if stopped():
                break
            parents = _select(store, run_id, targets, rnd)
            if not parents:
                break
            finished = _round(store, run_id, rnd, parents, rater, rewriter, checker, report, near_copy,
                              progress, stop_event)
            report.rounds += 1
            if not finished or stopped():
                break
            report.rounds_done = rnd
            config = dict(store.get_run(run_id)["config"] or {})
            config["difficulty"] = {"targets": targets.spec(), "max_rounds": max_rounds, "rounds_done": rnd,
                                    "rater": rater.name, "rewriter": rewriter.name, "near_copy": near_copy}
            store.update_run(run_id, config=config)
        report.mix_after = difficulty_mix(store, run_id)
        report.gap_after = mix_gap(report.mix_after, targets)
    finally:
        if use_llm:
            u = client.usage
            report.requests = u.requests - usage0.requests
            report.cached = u.cached - usage0.cached
            report.prompt_tokens = u.prompt_tokens - usage0.prompt_tokens
            report.completion_tokens = u.completion_tokens - usage0.completion_tokens
        if own_client:
            client.close()
    if progress:
        progress(1, 1, f"{report.kept} of {report.attempted} rewrites kept in {report.rounds} round(s)")
    return report


def _round(store: Store, run_id: int, rnd: int, parents: Sequence[QAItem], rater: Any, rewriter: Any,
           checker: _LLMChecker | None, report: EnhanceReport, near_copy: float, progress: Progress | None,
           stop_event: threading.Event | None) -> bool:
    """One round: rewrite, rate, check, store. Returns False when it was cut short."""
    contexts = _contexts(store, parents)
    ops = rewriter.operations
    jobs: list[_Job] = []
    for p in parents:
        start = ((p.id or 0) + rnd - 1) % len(ops)
        for k in range(len(ops)):
            job = _Job(p, ops[(start + k) % len(ops)], contexts[p.id], f"{p.slot}/r{rnd}")  # type: ignore[index]
            if rewriter.prepare(job):
                jobs.append(job)
                break
    if not jobs:
        return True
    total = len(jobs)
    if progress:
        progress(0, total, f"round {rnd}: rewriting {total} items")
    drafts = rewriter.rewrite_many(jobs, run_id=run_id, stop_event=stop_event)
    complete = True

    rows: list[tuple[_Job, _Draft, str, str | None, float | None]] = []
    pending: list[tuple[_Job, _Draft, QAItem]] = []
    for job, d in zip(jobs, drafts):
        if d.unstarted:
            complete = False
            continue
        report.attempted += 1
        if d.error is None:
            bad = _validate(d)
            if bad:
                d.error = f"malformed rewrite: {bad}"
        if d.error is not None:
            report.failed += 1
            report.errors.append(f"item {job.parent.id}: {d.error}")
            rows.append((job, d, "failed", d.error, None))
            continue
        child = d.item(job.parent)
        sim = jaccard(_item_shingles(job.parent), _item_shingles(child))
        if sim >= near_copy:
            reason = f"adds nothing: near-copy of parent #{job.parent.id} (Jaccard {math.floor(sim * 100) / 100:.2f})"
            rows.append((job, d, "rejected", reason, job.parent.difficulty))
            report.eliminated[REASON_NEAR_COPY] = report.eliminated.get(REASON_NEAR_COPY, 0) + 1
            continue
        pending.append((job, d, child))

    # re-rate: parent and child by the same rater, so the difference is on one scale
    if pending:
        if progress:
            progress(len(rows), total, f"round {rnd}: rating {len(pending)} rewrites")
        ratings = rater.rate_many([x for j, _, c in pending for x in (j.parent, c)], run_id=run_id,
                                  stop_event=stop_event)
        survivors: list[tuple[_Job, _Draft, QAItem, float]] = []
        for k, (job, d, child) in enumerate(pending):
            rp, rc = ratings[2 * k], ratings[2 * k + 1]
            if rp is None or rc is None:
                if stop_event is not None and stop_event.is_set():
                    complete = False
                    report.attempted -= 1
                    continue
                reason = f"{REASON_UNCHECKED}: the rater gave no rating"
                rows.append((job, d, "rejected", reason, None))
                report.eliminated[REASON_UNCHECKED] = report.eliminated.get(REASON_UNCHECKED, 0) + 1
                continue
            base = job.parent.difficulty if job.parent.difficulty is not None else float(rp.level)
            new = float(min(5, max(1, base + rc.level - rp.level)))
            if rc.level <= rp.level:
                reason = f"{REASON_NOT_HARDER} ({base:g} -> {new:g})"
                rows.append((job, d, "rejected", reason, new))
                report.eliminated[REASON_NOT_HARDER] = report.eliminated.get(REASON_NOT_HARDER, 0) + 1
                continue
            survivors.append((job, d, child, new))

        checks: list[tuple[str | None, str | None, bool]] = [(None, None, False)] * len(survivors)
        if checker is not None and survivors:
            if progress:
                progress(len(rows), total, f"round {rnd}: checking {len(survivors)} rewrites")
            checks = checker.check_many([(j, c) for j, _, c, _ in survivors], run_id=run_id, stop_event=stop_event)
        for (job, d, child, new), (kind, reason, unstarted) in zip(survivors, checks):
            if unstarted:
                complete = False
                report.attempted -= 1
                continue
            if kind is not None:
                rows.append((job, d, "rejected", reason, new))
                report.eliminated[kind] = report.eliminated.get(kind, 0) + 1
                continue
            rows.append((job, d, "generated", None, new))

    report.kept += _store_children(store, run_id, rows)
    if progress:
        progress(total, total, f"round {rnd}: {sum(r[2] == 'generated' for r in rows)} of {total} rewrites kept")
    return complete
