"""A strict reader's checklist: patterns that make a generated item unfit for training.

The gates (:mod:`.gates`) decide what a run keeps; this module measures how often a
composer or a rewriter writes items a careful curator would throw away, so that a change
to them can be judged by a number (``scripts/knowledge_report.py --items``). Each pattern
is one reason a reader gives; an item may show several.

==========================  ===========================================================
``repeated_question``       the same sub-question asked twice (a seed used twice)
``meta_text``               words about how the item was made, in a field that is exported
                            as training data (question, options, answer, solution)
``made_up_distractor``      an option that only negates another ("not 4")
``dangling_reference``      "all of the above", "which of the following" and the like with
                            no list in the item for them to refer to
``letter_answer``           the answer names an option letter the item does not have
``not_one_correct``         options present, but the answer is not exactly one of them
``seed_copy``               a copy of one of its own seeds, by the seed gate's rule
``gate:<name>``             fails a per-item gate (schema, answer, length)
==========================  ===========================================================

>>> [f.pattern for f in findings(Item("Part 1: What is two plus two?\\nPart 2: What is two plus two?", "4"))]
['repeated_question']
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

from ..records import Item, Seed
from .checks import GateConfig, check_answer_consistency, check_length, check_schema, letter_answer
from .gates import seed_copy
from .text import norm_answer, tokens

__all__ = ["PATTERNS", "Finding", "findings", "DegenerateCount", "count_degenerate"]

PATTERNS: tuple[str, ...] = (
    "repeated_question",
    "meta_text",
    "made_up_distractor",
    "dangling_reference",
    "letter_answer",
    "not_one_correct",
    "seed_copy",
    "gate:schema",
    "gate:answer",
    "gate:length",
)


@dataclass(frozen=True)
class Finding:
    pattern: str
    detail: str


# How an item was made, said inside it. Word lists stay narrow: "seed" alone is biology.
_META = re.compile(
    r"\b(?:without a model|(?:composed|rewritten|generated|written) (?:offline|by (?:a|the) model)"
    r"|offline[- ](?:composer|rewriter)|linked seeds?|(?:from|of) seeds? [0-9a-f]{6,}|seed (?:question|id)s?"
    r"|knowledge points?|two-part question links|this (?:item|question) (?:was|is) (?:composed|generated|written))\b"
    r"|(?-i:\bKPs?\b)|\b[0-9a-f]{16}\b",
    re.I,
)
# Sub-question labels the composers and models use at a line start: "Part 2:", "(ii)", "(2)".
_LABEL = re.compile(r"^\s*(?:part\s+\d+\b[^:\n]*:|\((?:[ivx]+|\d+)\))\s*", re.I | re.M)
_REFERS_TO_LIST = re.compile(
    r"\b(?:(?:all|none|both|neither|each) of the (?:above|following|these|options|choices|answers)"
    r"|which of the (?:following|above|options|choices)|the (?:options|choices) (?:above|below)"
    r"|both [A-E] and [A-E]|[A-E] and [A-E] (?:are|only))\b",
    re.I,
)
# An inline list: two or more lines that start with a letter label ("A.", "(b)", "c)").
_INLINE_OPTION = re.compile(r"^\s*(?:\(?[A-Ja-j]\)|[A-J][.:])\s+\S", re.M)
_MIN_WORDS = 4


def _sub_questions(question: str) -> list[str]:
    """The labelled sub-questions of a question (their option lines left out), normalised."""
    starts = [m.start() for m in _LABEL.finditer(question)]
    out = []
    for a, b in zip(starts, [*starts[1:], len(question)]):
        block = _LABEL.sub("", question[a:b])  # a block holds one label, at its start
        text = " ".join(tokens(" ".join(line for line in block.splitlines() if not _INLINE_OPTION.match(line))))
        if len(text.split()) >= _MIN_WORDS:
            out.append(text)
    return out


def _pieces(text: str) -> list[str]:
    """The "; "-separated parts of an option (one part when it combines nothing), normalised."""
    parts = re.split(r";\s+", text)
    return [norm_answer(_LABEL.sub("", p)) for p in parts]


def _has_list(question: str) -> bool:
    return len(_INLINE_OPTION.findall(question)) >= 2


def findings(item: Item, seeds: Sequence[Seed] = (), cfg: GateConfig = GateConfig()) -> list[Finding]:
    """Every degenerate pattern ``item`` shows; ``seeds`` are the seeds it was built from."""
    if not isinstance(item.question, str) or not isinstance(item.answer, str):
        return [Finding("gate:schema", str(check_schema(item)))]
    out: list[Finding] = []
    question, answer = item.question, item.answer
    options = [str(o) for o in item.options or ()]

    subs = Counter(_sub_questions(question))
    twice = [q for q, n in subs.items() if n > 1]
    norm_q = " ".join(tokens(question))
    for s in seeds:
        sq = " ".join(tokens(s.question))
        if len(sq.split()) >= _MIN_WORDS and norm_q.count(sq) > 1 and sq not in twice:
            twice.append(sq)
    if twice:
        out.append(Finding("repeated_question", f"asked twice: '{twice[0][:60]}'"))

    for name, text in (("question", question), ("answer", answer), ("solution", item.solution or ""),
                       *((f"option {chr(65 + i)}", o) for i, o in enumerate(options))):
        m = _META.search(text)
        if m:
            out.append(Finding("meta_text", f"{name} says '{m.group(0)}'"))
            break

    pieces = {p for o in [*options, answer] for p in _pieces(o)}
    real = {norm_answer(o) for s in seeds for o in s.options or ()}  # a seed's own option is not made up
    made_up = next((o for o in options for p in _pieces(o)
                    if p.startswith("not ") and p[4:] in pieces and p not in real), None)
    if made_up is not None:
        out.append(Finding("made_up_distractor", f"option '{made_up[:60]}' only negates another"))

    shown = bool(options) or _has_list(question)
    refers = [t for t in [*options, answer] if _REFERS_TO_LIST.search(t)]
    if refers and not _has_list(question):
        out.append(Finding("dangling_reference", f"'{refers[0][:60]}' refers to a list the item does not show"))
    elif not shown and _REFERS_TO_LIST.search(question):
        out.append(Finding("dangling_reference", "the question refers to options the item does not have"))

    letter = letter_answer(answer, question, 0) if not options else None
    if letter is not None:
        out.append(Finding("letter_answer", letter))

    if options:
        normed = [norm_answer(o) for o in options]
        right = normed.count(norm_answer(answer))
        if right != 1 or len(set(normed)) != len(normed):
            out.append(Finding("not_one_correct", f"answer matches {right} of {len(options)} options"
                               + ("" if len(set(normed)) == len(normed) else "; options repeat")))

    copy = next((c for s in seeds if (c := seed_copy(question, options, s.question, s.options, cfg, s.id))), None)
    if copy is not None:
        out.append(Finding("seed_copy", copy.reason()))

    for gate, check in (("schema", check_schema), ("answer", check_answer_consistency),
                        ("length", lambda c: check_length(c, cfg))):
        reason = check(item)
        if reason is not None:
            out.append(Finding(f"gate:{gate}", reason))
            break
    return out


@dataclass
class DegenerateCount:
    """How many items show each pattern, and how many a strict reader rejects (any pattern)."""

    items: int
    rejected: int
    by_pattern: dict[str, int]

    @property
    def share(self) -> float:
        return self.rejected / self.items if self.items else 0.0

    def to_dict(self) -> dict:
        return {"items": self.items, "rejected": self.rejected, "share": round(self.share, 4),
                "by_pattern": self.by_pattern}


def count_degenerate(pairs: Iterable[tuple[Item, Sequence[Seed]]], cfg: GateConfig = GateConfig()
                     ) -> DegenerateCount:
    """Count patterns over ``(item, its seeds)`` pairs.

    >>> count_degenerate([(Item("Which gas do plants take in for photosynthesis?", "CO2"), ())]).rejected
    0
    """
    by = dict.fromkeys(PATTERNS, 0)
    n = rejected = 0
    for item, seeds in pairs:
        n += 1
        found = {f.pattern for f in findings(item, seeds, cfg)}
        rejected += bool(found)
        for p in found:
            by[p] = by.get(p, 0) + 1
    return DegenerateCount(n, rejected, by)
