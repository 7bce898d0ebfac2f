"""Plain typed records that move between stages: one record type per thing.

A seed is a :class:`Seed` from the file reader to the prompt; a generated QA item is an
:class:`Item` from the model's reply through the gates, review and export; a sampled
path with its seed bundle is a :class:`Path`; a run is a :class:`Run`. Stages, the
store, the CLI and the pages pass these, not dicts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = [
    "Seed",
    "BadRow",
    "IngestReport",
    "Extraction",
    "ExtractReport",
    "Item",
    "ITEM_STATUSES",
    "Path",
    "Bundle",
    "Run",
]


@dataclass(frozen=True)
class Seed:
    """One seed QA item, as stored.

    ``id`` is a content hash of question, options and answer, so the same item loaded
    twice gets the same id and is stored once.
    """

    id: str
    question: str
    answer: str
    options: tuple[str, ...] | None = None
    answer_letter: str | None = None
    discipline: str = "Other"
    subject: str | None = None
    difficulty: float | None = None
    difficulty_estimated: bool = False
    source: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BadRow:
    """A row that could not be used, with where it was and why."""

    line: int
    reason: str


@dataclass
class IngestReport:
    added: int
    duplicates: int
    total_seeds: int
    bad_rows: list[BadRow]
    rows_read: int = 0


@dataclass(frozen=True)
class Extraction:
    """What an extractor says about one seed: KP names as a curator should read them."""

    seed_id: str
    kps: tuple[str, ...]
    discipline: str | None = None
    difficulty: float | None = None


@dataclass
class ExtractReport:
    seeds: int
    kps: int
    extractor: str = "offline"
    failed: list[BadRow] = field(default_factory=list)
    by_path: dict[str, int] = field(default_factory=dict)
    quality: dict[str, Any] | None = None


# generated: fresh from synthesis or a kept rewrite; accepted / rejected: a curator's (or
# a gate's) decision; failed: no usable answer (the raw text is kept); superseded: a
# harder rewrite replaced it.
ITEM_STATUSES: tuple[str, ...] = ("generated", "accepted", "rejected", "failed", "superseded")


@dataclass(frozen=True)
class Item:
    """One generated QA item, from the model's reply to the export.

    ``id`` is the database id (``None`` before it is stored); ``slot`` names its place in
    the run (``p<path>:<k>`` for synthesis, ``<parent slot>/r<round>`` for a rewrite), so
    a resumed run never stores the same item twice. ``original`` holds the fields as
    generated when a curator edited the item (``edited_at`` says when).
    """

    question: str
    answer: str
    options: tuple[str, ...] | None = None
    solution: str = ""
    kps_used: tuple[str, ...] = ()
    discipline: str = "Other"
    difficulty: float | None = None
    id: int | None = None
    run_id: int | None = None
    path_id: int | None = None
    parent_id: int | None = None
    slot: str = ""
    status: str = "generated"
    seed_ids: tuple[str, ...] = ()
    model: str | None = None
    reasoning: str | None = None
    raw: str | None = None
    gate_reason: str | None = None
    operation: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    created_at: float | None = None
    updated_at: float | None = None
    original: dict[str, Any] | None = None
    edited_at: float | None = None

    @property
    def edited(self) -> bool:
        return self.original is not None

    @property
    def answer_letter(self) -> str | None:
        """The option letter of the answer, when the item has options and the answer is one."""
        if self.options and self.answer in self.options:
            return chr(65 + self.options.index(self.answer))
        return None

    def with_(self, **changes: Any) -> "Item":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["options"] = list(self.options) if self.options is not None else None
        d["kps_used"] = list(self.kps_used)
        d["seed_ids"] = list(self.seed_ids)
        d["edited"] = self.edited
        return d


@dataclass(frozen=True)
class Path:
    """A sampled KP path and its seed bundle.

    ``index`` is its place in the run (0-based); ``kps`` are KP display names in walk
    order and ``kp_ids`` their database ids; ``seed_ids`` the bundle, strongest first,
    with ``link_strength[i]`` path KPs named by seed ``i``.
    """

    index: int
    kps: tuple[str, ...]
    discipline: str
    seed_ids: tuple[str, ...]
    link_strength: tuple[int, ...] = ()
    kp_ids: tuple[int, ...] = ()
    id: int | None = None
    run_id: int | None = None

    @property
    def mean_link_strength(self) -> float:
        return sum(self.link_strength) / len(self.link_strength) if self.link_strength else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "kps": list(self.kps), "discipline": self.discipline,
                "seed_ids": list(self.seed_ids), "link_strength": list(self.link_strength)}


@dataclass(frozen=True)
class Bundle:
    """A path with its seeds in full: what a synthesis prompt or the offline composer needs."""

    path: Path
    seeds: tuple[Seed, ...]

    @property
    def kps(self) -> tuple[str, ...]:
        return self.path.kps

    @property
    def discipline(self) -> str:
        return self.path.discipline or "Other"


@dataclass(frozen=True)
class Run:
    """A saved run: its settings (``config``), metrics against the uniform baseline, status.

    ``n_paths`` and ``n_items`` are filled when the run is listed.
    """

    id: int
    kind: str
    status: str
    config: dict[str, Any]
    name: str | None = None
    metrics: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None
    parent_run: int | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    n_paths: int = 0
    n_items: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
