"""The offline composer: items from a bundle with no model, so every stage works without a key.

Its items follow one template, the *linked-questions item* (docs/method.md): a sentence
naming the knowledge the linked seeds share, each seed's question with its own options,
and one closing question whose answer combines the seeds' answers::

    Both questions below turn on the alpha particle and the nucleus.

    (i) Which cells in the blood do not have a nucleus?
       A. Basophil
       B. Erythrocyte
    (ii) When a nucleus of uranium-238 emits an alpha particle, left behind is
       A. thorium-234
       B. radium-214

    Which choice gives the correct answer to both (i) and (ii)?

with the choices ``(i) Erythrocyte; (ii) thorium-234`` (right), and for each sub-question
one choice right on all the others but wrong on it, so that every sub-question has to be
solved. Nothing in a field that is exported as training data says how the item was made:
that is the provenance (``model = "offline-composer"``, ``seed_ids``).

The rewriter (:mod:`linkqa_core.difficulty.rewrite`) renders harder items with the same
template, so a rewritten item reads like a composed one with one more sub-question.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from ..quality.text import jaccard, norm_answer, shingles, tokens
from ..records import Bundle, Item, Seed
from ..tasks import ReplyError
from .compose import Ask

__all__ = ["OfflineComposer", "OFFLINE_MODEL", "Question", "linked_item", "kps_named", "quoted_questions",
           "MAX_QUESTION_CHARS", "CONSTRAINT_NOTE", "fits"]

OFFLINE_MODEL = "offline-composer"
MAX_QUESTION_CHARS = 4000
"""The default longest question the length gate keeps: longer pairs are not composed."""
_MAX_OPTIONS = 10
_NUMERALS = ("i", "ii", "iii", "iv", "v", "vi", "vii", "viii")
_COUNT = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}
CONSTRAINT_NOTE = "Several choices are right on all but one of the questions; only one is right on all of them."
"""What the offline rewriter's ``add_constraint`` says: true of every linked item it writes."""
# Two seeds this alike would ask one question twice.
_SAME_QUESTION = 0.8


@dataclass(frozen=True)
class Question:
    """One sub-question of a linked item: a seed's question, options and answer."""

    text: str
    answer: str
    options: tuple[str, ...] | None = None

    @classmethod
    def of(cls, x: Seed | Item) -> "Question":
        return cls(x.question.strip(), x.answer.strip(), tuple(x.options) if x.options else None)

    def answer_index(self) -> int | None:
        if not self.options:
            return None
        normed = [norm_answer(o) for o in self.options]
        right = norm_answer(self.answer)
        return normed.index(right) if right in normed else None

    def wrong(self) -> list[str]:
        right = norm_answer(self.answer)
        return [o.strip() for o in self.options or () if norm_answer(o) != right]


def _join(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def kps_named(kps: Sequence[str], text: str) -> list[str]:
    """The KPs of ``kps`` written in ``text`` (any case; a plural ending allowed), in order.

    >>> kps_named(["alpha particle", "nucleus"], "An Alpha particles hits it")
    ['alpha particle']
    """
    flat = " ".join(tokens(text))
    out = []
    for kp in kps:
        key = " ".join(tokens(kp))
        if key and re.search(r"(?<!\w)" + re.escape(key) + r"(?:s|es)?(?!\w)", flat) and kp not in out:
            out.append(kp)
    return out


def _header(parts: Sequence[Question], kps: Sequence[str]) -> tuple[str, list[str]]:
    """The sentence naming the knowledge the sub-questions share, and the KPs it names."""
    named = [kps_named(kps, q.text + "\n" + "\n".join(q.options or ()) + "\n" + q.answer) for q in parts]
    shared = [k for k in kps if sum(k in n for n in named) >= 2][:3]
    n = len(parts)
    lead = "Both questions below" if n == 2 else f"The {_COUNT.get(n, str(n))} questions below"
    if shared:
        return f"{lead} turn on {_join(shared)}.", shared
    used = [k for k in kps if any(k in n_ for n_ in named)][:3] or list(kps[:2])
    if not used:
        return f"{lead} are linked by what they ask.", []
    return f"{lead} draw on {_join(used)}.", used


def _sentence(text: str) -> str:
    return text if text.rstrip()[-1:] in ".?!" else text.rstrip() + "."


def _block(label: str, q: Question) -> str:
    lines = [f"({label}) {q.text}"]
    lines += [f"   {chr(65 + j)}. {o.strip()}" for j, o in enumerate(q.options or ())]
    return "\n".join(lines)


def _combo(labels: Sequence[str], answers: Sequence[str]) -> str:
    return "; ".join(f"({lab}) {a}" for lab, a in zip(labels, answers))


def _closing(labels: Sequence[str], multiple_choice: bool) -> str:
    marks = [f"({lab})" for lab in labels]
    if len(marks) == 2:
        return f"Which choice gives the correct answer to both {marks[0]} and {marks[1]}?" if multiple_choice \
            else f"Answer both {marks[0]} and {marks[1]}."
    return f"Which choice gives the correct answer to each of {_join(marks)}?" if multiple_choice \
        else f"Answer each of {_join(marks)}."


def _choices(parts: Sequence[Question], labels: Sequence[str], rng: random.Random, extra: int) -> list[str]:
    """The right combination, one per sub-question that is wrong only there, then random wrong ones."""
    right = [q.answer for q in parts]
    wrong = [q.wrong() for q in parts]
    out = [_combo(labels, right)]
    for i in range(len(parts)):
        out.append(_combo(labels, [wrong[i][0] if k == i else a for k, a in enumerate(right)]))
    want = min(_MAX_OPTIONS, max(4, len(parts) + 1) + extra)
    seen = {norm_answer(o) for o in out}
    for _ in range(60):
        if len(out) >= want:
            break
        pick = [rng.choice(wrong[k]) if rng.random() < 0.6 else a for k, a in enumerate(right)]
        if pick == right:
            k = rng.randrange(len(parts))
            pick[k] = rng.choice(wrong[k])
        text = _combo(labels, pick)
        if norm_answer(text) not in seen:
            seen.add(norm_answer(text))
            out.append(text)
    return out


def linked_item(parts: Sequence[Question], kps: Sequence[str], rng: random.Random, *,
                multiple_choice: bool = True, extra_choices: int = 0, also: str | None = None,
                note: str | None = None) -> Item:
    """One item asking ``parts`` together (the template above); not yet stored.

    Multiple choice when asked for and every sub-question has a wrong option to offer,
    otherwise an open item whose answer is the combination. ``extra_choices`` adds that
    many more wrong combinations (each wrong on at least one sub-question). ``also`` is a
    KP the last sub-question brings in, named after the shared ones; ``note`` a sentence
    put before the closing question.
    """
    if len(parts) < 2:
        raise ValueError("a linked item asks two or more questions")
    labels = list(_NUMERALS[: len(parts)])
    header, named = _header(parts, kps)
    if also and also not in named:
        header += f" Question ({labels[-1]}) also draws on {also}."
        named.append(also)
    mc = multiple_choice and all(q.wrong() for q in parts)
    body = "\n".join(_block(lab, q) for lab, q in zip(labels, parts))
    closing = _closing(labels, mc) if note is None else f"{note} {_closing(labels, mc)}"
    question = f"{header}\n\n{body}\n\n{closing}"
    answer = _combo(labels, [q.answer for q in parts])
    options = None
    if mc:
        options = _choices(parts, labels, rng, extra_choices)
        rng.shuffle(options)
    steps = []
    for lab, q in zip(labels, parts):
        j = q.answer_index()
        steps.append(_sentence(f"({lab}) The answer is {chr(65 + j)}, {q.answer}" if j is not None
                               else f"({lab}) The answer is {q.answer}"))
    if mc:
        steps.append(_sentence(f"Only one choice is right on every question: {answer}"))
    return Item(question=question, answer=answer, options=tuple(options) if options else None,
                solution="\n".join(steps), kps_used=tuple(named))


def quoted_questions(item: Item, seeds: Sequence[Seed]) -> list[Seed]:
    """The seeds an item in the linked template asks, in its order; [] for any other item."""
    found = []
    for s in seeds:
        for j, lab in enumerate(_NUMERALS):
            pos = item.question.find(f"({lab}) {s.question.strip()}\n")  # a block ends at a line end
            if pos >= 0 and all(f.id != s.id for _, _, f in found):
                found.append((pos, j, s))
                break
    found.sort(key=lambda t: t[0])
    if len(found) < 2 or [j for _, j, _ in found] != list(range(len(found))):
        return []
    ordered = [s for _, _, s in found]
    if norm_answer(item.answer) != norm_answer(_combo(_NUMERALS, [s.answer.strip() for s in ordered])):
        return []
    return ordered


def _alike(a: Seed, b: Seed) -> bool:
    if norm_answer(a.question) == norm_answer(b.question):
        return True
    return jaccard(shingles(a.question), shingles(b.question)) >= _SAME_QUESTION


def _copies_one(item: Item, pair: Sequence[Seed]) -> bool:
    """True when one seed makes up so much of the item that the seed gate would call it a copy."""
    from ..quality.gates import seed_copy

    return any(seed_copy(item.question, item.options, s.question, s.options) is not None for s in pair)


def fits(question: str, seed: Seed, limit: int = MAX_QUESTION_CHARS) -> bool:
    """Whether asking ``seed`` as one more sub-question keeps the question within ``limit``."""
    extra = len(seed.question) + sum(len(o) + 7 for o in seed.options or ()) + 250  # label, header, closing
    return len(question) + extra <= limit


class OfflineComposer:
    """Composes linked-questions items from a bundle without a model.

    Each item asks two distinct seeds of the bundle together, pairs that share the most
    KPs first; no item uses one seed twice, and no two items of a bundle use the same
    pair. A bundle gives fewer items than asked when it has fewer usable pairs (the run
    then samples more paths); a bundle with no usable pair -- one seed, or seeds asking
    the same question -- is refused with a :class:`ReplyError` saying so.
    """

    name = OFFLINE_MODEL

    def __init__(self, run_id: int = 0, max_question_chars: int = MAX_QUESTION_CHARS):
        self.run_id = run_id
        self.max_question_chars = max_question_chars
        # what this composer has asked so far (runs are composed in one thread): paths of
        # a run often share seeds, and the same pair twice would be a duplicate item
        self._asked: set[frozenset[str]] = set()
        self._uses: Counter[str] = Counter()

    def run(self, ask: Ask) -> list[Item]:
        bundle = ask.bundle
        seeds = list({s.id: s for s in bundle.seeds}.values())
        if len(seeds) < 2:
            raise ReplyError(f"the bundle has {len(seeds)} seed{'s' * (len(seeds) != 1)}:"
                             " an offline item asks two linked seeds together")
        items: list[Item] = []
        for a, b in self._pairs(bundle, seeds):
            if len(items) >= ask.n_items:
                break
            if frozenset((a.id, b.id)) in self._asked:
                continue
            rng = random.Random(f"{self.run_id}:{bundle.path.index}:{a.id}:{b.id}")
            item = linked_item([Question.of(a), Question.of(b)], bundle.kps, rng,
                               multiple_choice=ask.multiple_choice)
            if len(item.question) > self.max_question_chars or _copies_one(item, (a, b)):
                continue
            self._asked.add(frozenset((a.id, b.id)))
            self._uses.update((a.id, b.id))
            known = [d for d in (a.difficulty, b.difficulty) if d is not None]
            items.append(item.with_(difficulty=float(min(5, round(max(known) + 0.5))) if known else ask.difficulty))
        if not items:
            raise ReplyError("no pair of the bundle's seeds is left to ask: they ask the same question, were"
                             " asked together for an earlier path, or together make a question too long"
                             f" (over {self.max_question_chars} characters) or one that copies a seed")
        return items

    def _pairs(self, bundle: Bundle, seeds: list[Seed]) -> list[tuple[Seed, Seed]]:
        """Distinct pairs: those sharing the most path KPs first, then those whose seeds
        earlier items used least (so items of one run overlap less), then bundle order."""
        named = [set(kps_named(bundle.kps, s.question + "\n" + s.answer)) for s in seeds]
        pairs = [(len(named[i] & named[j]), self._uses[seeds[i].id] + self._uses[seeds[j].id], i, j)
                 for i in range(len(seeds)) for j in range(i + 1, len(seeds)) if not _alike(seeds[i], seeds[j])]
        pairs.sort(key=lambda t: (-t[0], t[1], t[2], t[3]))
        return [(seeds[i], seeds[j]) for _, _, i, j in pairs]
