"""Plain typed records that move between stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Seed", "BadRow", "IngestReport", "Extraction", "ExtractReport"]


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
    """What an extractor says about one seed."""

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
