"""Quality gates: which generated items are fit to keep, and why the others are not.

A model that writes QA items makes a few kinds of mistake often enough that a curator
should never have to find them by hand: broken JSON fields, an answer that is not among
the options, a one-line stub or a runaway essay, the same question twice, a seed copied
back, or a benchmark question leaked into training data. Each gate below catches one of
them and says so in a sentence; :func:`run_gates` applies them in a fixed order and every
rejected item keeps the first reason it failed on (DESIGN §8).

The gates, in the order they run (:data:`GATES`):

``schema``           question is text, answer present, options (if any) 2–10 distinct strings
``answer``           a multiple-choice answer is one of the options or a letter in range
``length``           question and answer lengths within :class:`GateConfig` bounds
``contamination``    shares a ``decontam_ngram``-word n-gram with a reference benchmark
``exact_duplicate``  same normalised question and options as an earlier item
``near_duplicate``   MinHash LSH candidate, confirmed by the exact Jaccard of word shingles
``seed_duplicate``   the same, against the seed questions

Everything here is pure: no database, no model. :func:`apply_gates` is the one function
that touches a :class:`~linkqa_core.store.Store`.

>>> items = [Candidate(1, "Which gas do plants take in for photosynthesis?", "CO2"),
...          Candidate(2, "Which gas do plants take in for photosynthesis?", "Carbon dioxide")]
>>> [(r.key, r.passed, r.reason) for r in run_gates(items)]
[(1, True, None), (2, False, 'exact duplicate of item 1')]
"""

from __future__ import annotations

import json
import math
import re
import time
import unicodedata
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Hashable, Iterable, Mapping, Sequence

from datasketch import MinHash, MinHashLSH

from ..errors import ConfigError, InputError
from ..records import BadRow

if TYPE_CHECKING:  # the store pulls in sqlite-utils; the gates themselves do not need it
    from ..store import Store

__all__ = [
    "GATES",
    "REFERENCE_FIELDS",
    "GateConfig",
    "Candidate",
    "GateResult",
    "Reference",
    "check_schema",
    "check_answer_consistency",
    "check_length",
    "shingles",
    "jaccard",
    "load_reference",
    "run_gates",
    "summarize",
    "apply_gates",
]

GATES: tuple[str, ...] = (
    "schema",
    "answer",
    "length",
    "contamination",
    "exact_duplicate",
    "near_duplicate",
    "seed_duplicate",
)
"""Gate names in the order :func:`run_gates` applies them; the values of ``GateResult.gate``."""

REFERENCE_FIELDS: tuple[str, ...] = ("question", "prompt", "problem", "input")
"""Keys of a JSON-lines reference row that hold its question, best first."""

_MAX_OPTIONS = 10
_LETTERS = "ABCDEFGHIJ"
# Near-duplicate candidates come from an LSH index tuned this much below the threshold,
# so that pairs just above it are rarely missed; the exact Jaccard then decides.
_LSH_SLACK = 0.1
_SEED_BATCH = 5000


# -- configuration ----------------------------------------------------------------------


@dataclass(frozen=True)
class GateConfig:
    """The knobs of the gates; the same names are used in the CLI, the app and run configs.

    >>> GateConfig(near_dup_threshold=0.9).decontam_ngram
    13
    """

    near_dup_threshold: float = 0.8
    """Jaccard similarity of word shingles at or above which two items are duplicates."""
    num_perm: int = 128
    """MinHash permutations: more finds borderline pairs more reliably, costs more time."""
    shingle_size: int = 3
    """Words per shingle for near-duplicate detection."""
    decontam_ngram: int = 13
    """Words an n-gram shared with the reference must have to count as contamination."""
    min_question_chars: int = 20
    max_question_chars: int = 4000
    min_answer_chars: int = 1
    max_answer_chars: int = 2000
    check_seeds: bool = True
    """Also reject items that are near-duplicates of a seed question."""

    def __post_init__(self) -> None:
        t = self.near_dup_threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (0 < t <= 1):
            raise ConfigError(f"near_dup_threshold must be a number above 0 and at most 1 (got {t!r})")
        _check_int("num_perm", self.num_perm, 16, 1024)
        _check_int("shingle_size", self.shingle_size, 1, 10)
        _check_int("decontam_ngram", self.decontam_ngram, 3, 100)
        for what in ("question", "answer"):
            lo = getattr(self, f"min_{what}_chars")
            hi = getattr(self, f"max_{what}_chars")
            _check_int(f"min_{what}_chars", lo, 0, None)
            _check_int(f"max_{what}_chars", hi, 1, None)
            if hi < lo:
                raise ConfigError(
                    f"max_{what}_chars ({hi}) must be at least min_{what}_chars ({lo})"
                )
        if not isinstance(self.check_seeds, bool):
            raise ConfigError(f"check_seeds must be true or false (got {self.check_seeds!r})")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "GateConfig":
        """Build from a stored run config or form values; unknown names are an error, not ignored."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown gate setting '{unknown[0]}'; settings are {', '.join(known)}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _check_int(name: str, value: Any, lo: int, hi: int | None) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= lo and (hi is None or value <= hi)
    if not ok:
        span = f"from {lo} to {hi}" if hi is not None else f"of at least {lo}"
        raise ConfigError(f"{name} must be a whole number {span} (got {value!r})")


# -- records ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One generated item as the gates see it.

    ``key`` is whatever identifies the item to the caller (the ``items.id`` in the
    database); it appears in reasons such as ``"exact duplicate of item 7"``.
    """

    key: Hashable
    question: Any
    answer: Any
    options: Sequence[Any] | None = None
    answer_letter: str | None = None
    solution: str | None = None


@dataclass(frozen=True)
class GateResult:
    """The verdict on one candidate.

    ``gate`` names the first gate it failed (one of :data:`GATES`), ``reason`` says why
    in words. ``match`` is what it collided with — the other item's key, the seed id or
    the reference line — and ``similarity`` the exact Jaccard for duplicate gates.
    """

    key: Hashable
    passed: bool
    reason: str | None = None
    gate: str | None = None
    match: Hashable | None = None
    similarity: float | None = None


def _reject(key: Hashable, gate: str, reason: str, match: Hashable | None = None,
            similarity: float | None = None) -> GateResult:
    return GateResult(key, False, reason, gate, match, similarity)


# -- text normalisation -----------------------------------------------------------------

# Words, plus symbols that change meaning (+ - * / = < > ^ % ...); sentence punctuation and
# quotes are dropped so that "What is 2+2?" and "what is 2 + 2" compare equal while
# "2+2" and "2-2" do not.
_TOKEN = re.compile(r"\w+|[^\w\s.,;:!?'\"`“”‘’«»…]")
_WORD = re.compile(r"\w+")
_TRAILING = ".,;:!?。．"


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(_fold(text))


def _words(text: str) -> list[str]:
    """Lower-case words with punctuation stripped: the unit of decontamination n-grams."""
    return _WORD.findall(_fold(text))


def _norm_answer(text: str) -> str:
    """Whitespace-, case- and trailing-punctuation-insensitive form of an answer or option."""
    return " ".join(_fold(text).split()).rstrip(_TRAILING).strip()


def _short(text: Any, limit: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shingles(text: str, size: int = 3) -> set[str]:
    """Word ``size``-grams of ``text`` (case and sentence punctuation ignored).

    A text shorter than ``size`` words is one shingle of all its words, so that short
    options still count.

    >>> sorted(shingles("The cat sat on the mat.", 3))
    ['cat sat on', 'on the mat', 'sat on the', 'the cat sat']
    """
    toks = _tokens(text)
    if not toks:
        return set()
    if len(toks) <= size:
        return {" ".join(toks)}
    return {" ".join(toks[i : i + size]) for i in range(len(toks) - size + 1)}


def jaccard(a: set[Any], b: set[Any]) -> float:
    """|a ∩ b| / |a ∪ b|; 0.0 when both are empty (nothing to compare is not a duplicate)."""
    if not a and not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def _item_shingles(question: str, options: Sequence[str] | None, size: int) -> set[str]:
    """Shingles of the question and of each option separately, so option order is irrelevant."""
    out = shingles(question, size)
    for opt in options or ():
        out |= shingles(opt, size)
    return out


def _exact_key(question: str, options: Sequence[str] | None) -> str:
    """Normalised question plus the sorted normalised options: equal means the same item."""
    opts = sorted(" ".join(_tokens(o)) for o in options or ())
    return "\x1e".join([" ".join(_tokens(question)), *opts])


def _fmt_sim(value: float) -> str:
    """Two decimals, rounded down, so a reported 0.80 is never really 0.7999."""
    return f"{math.floor(value * 100 + 1e-9) / 100:.2f}"


# -- per-item gates ---------------------------------------------------------------------


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def check_schema(c: Candidate) -> str | None:
    """Why ``c`` is not a well-formed QA item, or None.

    Catches what a model's JSON gets wrong before any other gate has to guess: missing
    or non-text fields and unusable option lists.

    >>> check_schema(Candidate(1, "What is 2+2?", "4", options=["4"]))
    'options must number 2 to 10 (got 1)'
    """
    if c.question is not None and not isinstance(c.question, str):
        return f"question is not text (got {type(c.question).__name__})"
    if _is_blank(c.question):
        return "question is missing"
    if c.answer is not None and not isinstance(c.answer, str):
        return f"answer is not text (got {type(c.answer).__name__})"
    if c.answer_letter is not None and not isinstance(c.answer_letter, str):
        return f"answer_letter is not text (got {type(c.answer_letter).__name__})"
    if c.solution is not None and not isinstance(c.solution, str):
        return f"solution is not text (got {type(c.solution).__name__})"
    if _is_blank(c.answer) and not (c.options is not None and not _is_blank(c.answer_letter)):
        return "answer is missing"
    if c.options is not None:
        if isinstance(c.options, (str, bytes)) or not isinstance(c.options, Sequence):
            return f"options are not a list (got {type(c.options).__name__})"
        n = len(c.options)
        if not 2 <= n <= _MAX_OPTIONS:
            return f"options must number 2 to {_MAX_OPTIONS} (got {n})"
        seen: dict[str, int] = {}
        for i, opt in enumerate(c.options):
            if not isinstance(opt, str):
                return f"option {_LETTERS[i]} is not text (got {type(opt).__name__})"
            if not opt.strip():
                return f"option {_LETTERS[i]} is empty"
            norm = _norm_answer(opt)
            if norm in seen:
                return f"options {_LETTERS[seen[norm]]} and {_LETTERS[i]} are the same ('{_short(opt)}')"
            seen[norm] = i
    return None


_BARE_LETTER = re.compile(r"^\(?([A-Za-z])\)?[.:)]?$")
_LETTER_AND_TEXT = re.compile(r"^\(?([A-Z])[).:]\s*(.+)$", re.S)


def _letter_index(text: str) -> int | None:
    m = _BARE_LETTER.match(text.strip())
    return ord(m.group(1).upper()) - ord("A") if m else None


def _span(n: int) -> str:
    return f"{n} options (A–{_LETTERS[n - 1]})"


def check_answer_consistency(c: Candidate) -> str | None:
    """Why a multiple-choice answer does not point at exactly one option, or None.

    The answer may be an option's text (compared ignoring case, spacing and trailing
    punctuation), a letter such as ``B`` or ``(B)``, or both (``B. Paris``). Items
    without options pass. Assumes :func:`check_schema` passed.

    >>> check_answer_consistency(Candidate(1, "Capital of France?", "Lyon", ["Paris", "Rome"]))
    "answer 'Lyon' is not one of the 2 options"
    """
    letter = c.answer_letter.strip() if isinstance(c.answer_letter, str) and c.answer_letter.strip() else None
    if not c.options:
        if letter is not None:
            return f"answer_letter '{_short(letter)}' is given but the item has no options"
        return None
    options = [str(o) for o in c.options]
    n = len(options)
    normed = [_norm_answer(o) for o in options]

    letter_idx: int | None = None
    if letter is not None:
        letter_idx = _letter_index(letter)
        if letter_idx is None:
            return f"answer_letter '{_short(letter)}' is not a letter"
        if letter_idx >= n:
            return f"answer_letter '{_short(letter)}' is out of range for {_span(n)}"

    answer = c.answer.strip() if isinstance(c.answer, str) else ""
    if not answer:
        return None  # schema guaranteed a letter in this case; it is in range
    answer_idx: int | None = None
    norm = _norm_answer(answer)
    if norm in normed:
        answer_idx = normed.index(norm)
    else:
        idx = _letter_index(answer)
        if idx is not None:
            if idx >= n:
                return f"answer letter '{_short(answer)}' is out of range for {_span(n)}"
            answer_idx = idx
        else:
            m = _LETTER_AND_TEXT.match(answer)
            if m and ord(m.group(1)) - ord("A") < n:
                idx = ord(m.group(1)) - ord("A")
                if _norm_answer(m.group(2)) != normed[idx]:
                    return (
                        f"answer '{_short(answer)}' names option {_LETTERS[idx]}"
                        f" but option {_LETTERS[idx]} is '{_short(options[idx])}'"
                    )
                answer_idx = idx
    if answer_idx is None:
        return f"answer '{_short(answer)}' is not one of the {n} options"
    if letter_idx is not None and letter_idx != answer_idx:
        return (
            f"answer '{_short(answer)}' is option {_LETTERS[answer_idx]}"
            f" but answer_letter is {_LETTERS[letter_idx]}"
        )
    return None


def check_length(c: Candidate, cfg: GateConfig = GateConfig()) -> str | None:
    """Why the question or answer is too short or too long, or None.

    Stubs and runaway generations are the commonest sign of a broken response.
    Lengths are in characters after trimming surrounding whitespace; a
    multiple-choice item given only by its letter is measured by the letter.

    >>> check_length(Candidate(1, "What is 2+2?", "4"))
    'question too short (12 < 20 characters)'
    """
    q = c.question.strip() if isinstance(c.question, str) else ""
    a = c.answer.strip() if isinstance(c.answer, str) else ""
    if not a and isinstance(c.answer_letter, str):
        a = c.answer_letter.strip()
    if len(q) < cfg.min_question_chars:
        return f"question too short ({len(q)} < {cfg.min_question_chars} characters)"
    if len(q) > cfg.max_question_chars:
        return f"question too long ({len(q)} > {cfg.max_question_chars} characters)"
    if len(a) < cfg.min_answer_chars:
        return f"answer too short ({len(a)} < {cfg.min_answer_chars} characters)"
    if len(a) > cfg.max_answer_chars:
        return f"answer too long ({len(a)} > {cfg.max_answer_chars} characters)"
    return None


# -- reference benchmark ----------------------------------------------------------------


@dataclass
class Reference:
    """A benchmark's questions, indexed by hashed word n-grams for decontamination.

    Build it with :func:`load_reference` (a file) or :meth:`from_texts`. Each n-gram
    remembers the first line it occurs on, so a contaminated item can be traced back.
    Reference questions shorter than ``decontam_ngram`` words cannot be matched.
    """

    name: str
    decontam_ngram: int
    items: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    _grams: dict[int, int] = field(default_factory=dict, repr=False)

    @classmethod
    def from_texts(cls, texts: Iterable[str], *, name: str = "reference",
                   decontam_ngram: int = 13) -> "Reference":
        """Index ``texts``; the i-th text (from 1) is reported as line i.

        >>> ref = Reference.from_texts(["one two three four five"], decontam_ngram=3)
        >>> ref.match("count: two three four!")
        1
        """
        _check_int("decontam_ngram", decontam_ngram, 3, 100)
        ref = cls(name=name, decontam_ngram=decontam_ngram)
        for line, text in enumerate(texts, 1):
            ref._add(line, text)
        return ref

    def _add(self, line: int, text: str) -> None:
        self.items += 1
        words = _words(text)
        n = self.decontam_ngram
        setdefault = self._grams.setdefault
        for i in range(len(words) - n + 1):
            setdefault(hash(tuple(words[i : i + n])), line)

    @property
    def ngrams(self) -> int:
        """Distinct n-grams indexed."""
        return len(self._grams)

    def match(self, text: str) -> int | None:
        """The reference line of the first n-gram of ``text`` found in the reference, or None."""
        words = _words(text)
        n = self.decontam_ngram
        grams = self._grams
        for i in range(len(words) - n + 1):
            line = grams.get(hash(tuple(words[i : i + n])))
            if line is not None:
                return line
        return None


def _binary_offset(head: bytes) -> int | None:
    nul = head.find(b"\x00")
    if nul >= 0:
        return nul
    controls = [i for i, b in enumerate(head) if b < 32 and b not in (9, 10, 12, 13)]
    if controls and len(controls) * 20 > len(head):
        return controls[0]
    return None


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def load_reference(source: str | Path | bytes, *, name: str | None = None,
                   decontam_ngram: int = 13) -> Reference:
    """Read a reference benchmark: JSON lines or plain text, one question per line.

    A JSON-lines row gives its question under one of :data:`REFERENCE_FIELDS`; rows
    without one are kept in ``bad_rows`` rather than failing the whole file. The file
    is JSON lines when its first non-blank line is a JSON object. ``source`` may also
    be the file's bytes (an upload), named by ``name``.

    Raises InputError naming the file when it is missing, empty, binary or holds no
    question at all.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name or "reference"
    else:
        path = Path(source)
        label = name or str(path)
        if not path.exists():
            raise InputError(f"{label}: no such file")
        if path.is_dir():
            raise InputError(f"{label} is a directory, not a reference file")
        data = path.read_bytes()
    if not data.strip():
        raise InputError(f"{label} is empty")
    offset = _binary_offset(data[:8192])
    if offset is not None:
        raise InputError(f"{label} is not a text file (binary content at byte {offset})")
    lines = _decode(data).splitlines()

    ref = Reference.from_texts((), name=label, decontam_ngram=decontam_ngram)
    first = next(line for line in lines if line.strip())
    jsonl = _is_json_object(first)
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if not jsonl:
            ref._add(lineno, line)
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            ref.bad_rows.append(BadRow(lineno, f"not valid JSON ({err})"))
            continue
        if not isinstance(row, dict):
            ref.bad_rows.append(BadRow(lineno, "not a JSON object"))
            continue
        text = next((row[k] for k in REFERENCE_FIELDS if k in row), None)
        if text is None:
            keys = {k.lower(): k for k in row if isinstance(k, str)}
            text = next((row[keys[k]] for k in REFERENCE_FIELDS if k in keys), None)
        if text is None:
            ref.bad_rows.append(BadRow(lineno, f"no {', '.join(REFERENCE_FIELDS)} field"))
            continue
        if not isinstance(text, str):
            ref.bad_rows.append(BadRow(lineno, f"question field is not text (got {type(text).__name__})"))
            continue
        ref._add(lineno, text)
    if ref.items == 0:
        fields_ = " or ".join(REFERENCE_FIELDS)
        raise InputError(f"{label} has no questions (each JSON line needs a {fields_} field)")
    return ref


def _is_json_object(line: str) -> bool:
    if not line.lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


# -- running the gates ------------------------------------------------------------------


class _Index:
    """MinHash LSH over shingle sets, with the sets kept for exact verification."""

    def __init__(self, cfg: GateConfig):
        self.cfg = cfg
        self._perm = MinHash(cfg.num_perm).permutations
        lsh_t = max(cfg.near_dup_threshold - _LSH_SLACK, cfg.near_dup_threshold / 2)
        self.lsh = MinHashLSH(threshold=lsh_t, num_perm=cfg.num_perm)
        self.sets: dict[int, set[str]] = {}

    def minhash(self, sh: set[str]) -> MinHash:
        m = MinHash(self.cfg.num_perm, permutations=self._perm, scheme="affine32")
        m.update_batch([s.encode("utf-8") for s in sorted(sh)])
        return m

    def add(self, idx: int, sh: set[str], m: MinHash | None = None) -> None:
        self.lsh.insert(idx, m if m is not None else self.minhash(sh))
        self.sets[idx] = sh

    def best(self, sh: set[str], m: MinHash | None = None) -> tuple[int, float] | None:
        """The most similar indexed entry at or above the threshold; ties go to the lowest index."""
        found: tuple[int, float] | None = None
        for idx in self.lsh.query(m if m is not None else self.minhash(sh)):
            sim = jaccard(sh, self.sets[idx])
            if sim >= self.cfg.near_dup_threshold and (
                found is None or sim > found[1] or (sim == found[1] and idx < found[0])
            ):
                found = (idx, sim)
        return found


def _seed_parts(seed: Sequence[Any]) -> tuple[Hashable, str, Sequence[str] | None]:
    if len(seed) == 2:
        return seed[0], seed[1], None
    if len(seed) == 3:
        return seed[0], seed[1], seed[2]
    raise ValueError("a seed is (seed_id, question) or (seed_id, question, options)")


def run_gates(
    candidates: Iterable[Candidate],
    *,
    seeds: Iterable[Sequence[Any]] = (),
    reference: Reference | None = None,
    cfg: GateConfig = GateConfig(),
) -> list[GateResult]:
    """Apply every gate to ``candidates``; one :class:`GateResult` each, in input order.

    Per item: schema, answer, length, contamination (when a ``reference`` is given).
    Then across items, in input order, keeping the first of each group: exact
    duplicates, then near-duplicates. Last, near-duplicates of ``seeds`` (when
    ``cfg.check_seeds``), given as ``(seed_id, question)`` or ``(seed_id, question,
    options)`` — pass the options when seeds have them, since items are compared on
    question and options together. ``seeds`` may be a generator: it is read once, and
    only if some item reaches that gate. The outcome is deterministic.
    """
    cands = list(candidates)
    keys = [c.key for c in cands]
    if len(set(keys)) != len(keys):
        dup = next(k for i, k in enumerate(keys) if k in keys[:i])
        raise ValueError(f"candidate key {dup!r} appears more than once")
    if reference is not None and reference.decontam_ngram != cfg.decontam_ngram:
        raise ConfigError(
            f"the reference {reference.name} was indexed with {reference.decontam_ngram}-grams"
            f" but decontam_ngram is {cfg.decontam_ngram}; load it again with"
            f" decontam_ngram={cfg.decontam_ngram}"
        )
    results: list[GateResult | None] = [None] * len(cands)

    # Per-item gates.
    for i, c in enumerate(cands):
        reason = check_schema(c)
        gate = "schema"
        if reason is None:
            reason, gate = check_answer_consistency(c), "answer"
        if reason is None:
            reason, gate = check_length(c, cfg), "length"
        if reason is not None:
            results[i] = _reject(c.key, gate, reason)
            continue
        if reference is not None:
            line = reference.match(_joined(c))
            if line is not None:
                results[i] = _reject(
                    c.key, "contamination",
                    f"contaminated: shares a {reference.decontam_ngram}-gram with reference line {line}",
                    match=line,
                )

    # Exact duplicates among the survivors.
    exact_keys: dict[int, str] = {}
    first_with: dict[str, int] = {}
    for i, c in enumerate(cands):
        if results[i] is not None:
            continue
        k = _exact_key(c.question, c.options)
        exact_keys[i] = k
        if k in first_with:
            j = first_with[k]
            results[i] = _reject(c.key, "exact_duplicate", f"exact duplicate of item {keys[j]}",
                                 match=keys[j], similarity=1.0)
        else:
            first_with[k] = i

    # Near-duplicates among the survivors: each is compared with the ones kept before it.
    index = _Index(cfg)
    sets: dict[int, set[str]] = {}
    hashes: dict[int, MinHash] = {}
    for i, c in enumerate(cands):
        if results[i] is not None:
            continue
        sh = _item_shingles(c.question, c.options, cfg.shingle_size)
        if not sh:
            continue
        m = index.minhash(sh)
        hit = index.best(sh, m)
        if hit is not None:
            j, sim = hit
            results[i] = _reject(c.key, "near_duplicate",
                                 f"near-duplicate of item {keys[j]} (Jaccard {_fmt_sim(sim)})",
                                 match=keys[j], similarity=sim)
            continue
        index.add(i, sh, m)
        sets[i], hashes[i] = sh, m

    # Near-duplicates of seeds: index the surviving items, stream the seeds past them.
    if cfg.check_seeds:
        alive = [i for i in range(len(cands)) if results[i] is None]
        if alive:
            for i, hit in _seed_hits(alive, exact_keys, sets, hashes, seeds, cfg).items():
                seed_id, sim = hit
                if sim is None:
                    reason, sim = f"exact duplicate of seed {seed_id}", 1.0
                else:
                    reason = f"near-duplicate of seed {seed_id} (Jaccard {_fmt_sim(sim)})"
                results[i] = _reject(keys[i], "seed_duplicate", reason, match=seed_id, similarity=sim)

    return [r if r is not None else GateResult(keys[i], True) for i, r in enumerate(results)]


def _joined(c: Candidate) -> str:
    return "\n".join([c.question, *(c.options or ())])


def _seed_hits(
    alive: list[int],
    exact_keys: dict[int, str],
    sets: dict[int, set[str]],
    hashes: dict[int, MinHash],
    seeds: Iterable[Sequence[Any]],
    cfg: GateConfig,
) -> dict[int, tuple[Hashable, float | None]]:
    """For each surviving item that duplicates a seed: (seed id, Jaccard or None if exact).

    An exact match wins over a near one; among near ones the most similar, then the
    earliest seed. Seeds that share too few shingles with all items together to reach
    the threshold with any one of them are skipped before any MinHash is computed —
    that is what keeps a large seed table cheap.
    """
    t = cfg.near_dup_threshold
    index = _Index(cfg)
    universe: set[str] = set()
    by_key: dict[str, list[int]] = {}
    for i in alive:
        by_key.setdefault(exact_keys[i], []).append(i)
        if i in sets:
            index.add(i, sets[i], hashes[i])
            universe |= sets[i]
    hits: dict[int, tuple[Hashable, float | None]] = {}
    for seed in seeds:
        seed_id, question, options = _seed_parts(seed)
        if not isinstance(question, str):
            continue
        if isinstance(options, str):
            options = None
        for i in by_key.get(_exact_key(question, options), ()):
            prev = hits.get(i)
            if prev is None or prev[1] is not None:
                hits[i] = (seed_id, None)
        sh = _item_shingles(question, options, cfg.shingle_size)
        if not sh or len(sh & universe) < t * len(sh) - 1e-9:
            continue
        for i in index.lsh.query(index.minhash(sh)):
            sim = jaccard(sh, sets[i])
            prev = hits.get(i)
            if sim >= t and (prev is None or (prev[1] is not None and sim > prev[1])):
                hits[i] = (seed_id, sim)
    return hits


def summarize(results: Iterable[GateResult]) -> dict[str, int]:
    """Rejections per gate, every gate listed in :data:`GATES` order (zeros included).

    >>> summarize([GateResult(1, True), GateResult(2, False, "question is missing", "schema")])["schema"]
    1
    """
    counts = dict.fromkeys(GATES, 0)
    for r in results:
        if not r.passed and r.gate is not None:
            counts[r.gate] = counts.get(r.gate, 0) + 1
    return counts


# -- the database -----------------------------------------------------------------------


def _parse_options(raw: str | None) -> Any:
    if raw is None or raw == "":
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return raw  # check_schema reports "options are not a list (got str)"
    return value


def _store_seeds(store: "Store") -> Iterable[tuple[str, str, Any]]:
    last = 0
    while True:
        rows = store.query(
            "SELECT rid, id, question, options FROM seeds WHERE rid > ? ORDER BY rid LIMIT ?",
            (last, _SEED_BATCH),
        )
        if not rows:
            return
        for row in rows:
            opts = _parse_options(row["options"])
            yield row["id"], row["question"], opts if isinstance(opts, list) else None
        last = rows[-1]["rid"]


def apply_gates(
    store: "Store",
    run_id: int,
    *,
    reference: Reference | None = None,
    cfg: GateConfig = GateConfig(),
) -> dict[str, int]:
    """Gate a run's ``generated`` items against each other and all seeds; returns :func:`summarize`.

    Rejected items get status ``rejected`` and their reason in ``gate_reason``; the
    others stay ``generated``. All updates are one transaction, and an item whose
    status changed while the gates ran is left alone.
    """
    store.get_run(run_id)  # NotFoundError with a clear message when there is no such run
    rows = store.query(
        "SELECT id, question, options, answer, solution FROM items"
        " WHERE run_id = ? AND status = 'generated' ORDER BY id",
        (run_id,),
    )
    candidates = [
        Candidate(
            key=row["id"],
            question=row["question"],
            answer=row["answer"],
            options=_parse_options(row["options"]),
            solution=row["solution"],
        )
        for row in rows
    ]
    seeds = _store_seeds(store) if cfg.check_seeds else ()
    results = run_gates(candidates, seeds=seeds, reference=reference, cfg=cfg)
    now = time.time()
    updates = [(r.reason, now, r.key) for r in results if not r.passed]
    with store.transaction() as conn:
        conn.executemany(
            "UPDATE items SET status = 'rejected', gate_reason = ?, updated_at = ?"
            " WHERE id = ? AND status = 'generated'",
            updates,
        )
    return summarize(results)
