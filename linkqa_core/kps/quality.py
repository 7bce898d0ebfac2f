"""How good is a set of KPs? Plain measures a curator can read.

Three questions, answered for any extractor's output:

- **Do KPs link seeds?** ``singleton_share``: the share of distinct KPs named by one
  seed only. A KP named once joins nothing in the graph.
- **Are KPs knowledge or everyday words?** ``general_word_share``: among the ``top``
  most frequent KPs, the share that are *general-language words*. Definition: a KP
  whose matching key (:func:`~linkqa_core.kps.names.normalize_kp`) is one word with a
  Zipf frequency of at least :data:`GENERAL_ZIPF` (4.5) in wordfreq's English list,
  i.e. at least 32 uses per million words of ordinary English: roughly the 3,000 most
  common words ("money", "patient", "contract", "country"). "eigenvalue" (2.4),
  "negligence" (3.7) and "inflation" (4.1) are not; phrases never are.
- **What does each discipline talk about?** ``top_by_discipline``: its most frequent KPs.

Counting is by matching key, so "Eigenvalues" and "eigenvalue" are one KP; a KP is
shown by the first display form met. The result is a dataclass with ``to_dict()``.

>>> from linkqa_core.records import Extraction
>>> q = kp_quality([Extraction("a", ("eigenvalue", "money")), Extraction("b", ("Eigenvalues", "matrix"))])
>>> q.singleton_share, q.general_words
(0.6667, ('money',))
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..records import Extraction, Seed
from .lexicon import GENERAL_ZIPF, zipf
from .names import MAX_KPS, MIN_KPS, normalize_kp

__all__ = ["KPQuality", "kp_quality", "zipf", "is_general_word", "GENERAL_ZIPF", "Judgement", "load_judgements",
           "Precision", "judged_precision"]

def is_general_word(key: str) -> bool:
    """True for a one-word KP key at least as common as :data:`GENERAL_ZIPF` in English."""
    return bool(key) and " " not in key and zipf(key) >= GENERAL_ZIPF


@dataclass(frozen=True)
class KPQuality:
    """Measures of one set of extractions; ``to_dict()`` is plain JSON."""

    seeds: int
    kps: int  # distinct, by matching key
    links: int
    kps_per_seed_min: int
    kps_per_seed_max: int
    kps_per_seed_mean: float
    seeds_outside_bounds: int  # seeds with fewer than MIN_KPS or more than MAX_KPS KPs
    singleton_share: float
    multiword_share: float  # share of distinct KPs of two or more words
    top: int
    general_word_share: float  # among the ``top`` most frequent KPs
    general_words: tuple[str, ...]  # those general-language words, most frequent first
    top_kps: tuple[tuple[str, int], ...]
    top_by_discipline: dict[str, tuple[tuple[str, int], ...]]
    definition: str = (
        f"general-language word: a one-word KP with wordfreq English Zipf frequency >= {GENERAL_ZIPF}"
        " (at least ~32 per million words); singleton: a KP named by one seed only"
    )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["general_words"] = list(self.general_words)
        d["top_kps"] = [list(t) for t in self.top_kps]
        d["top_by_discipline"] = {k: [list(t) for t in v] for k, v in self.top_by_discipline.items()}
        return d


def kp_quality(extractions: Iterable[Extraction], seeds: Sequence[Seed] | None = None, *,
               top: int = 200, per_discipline: int = 10) -> KPQuality:
    """Measure extractions; a seed's discipline comes from ``seeds`` when given, else the extraction's."""
    discipline_of = {s.id: s.discipline for s in seeds} if seeds is not None else {}
    freq: Counter[str] = Counter()
    by_disc: dict[str, Counter[str]] = {}
    display: dict[str, str] = {}
    sizes: list[int] = []
    for ex in extractions:
        keys = []
        for name in ex.kps:
            key = normalize_kp(name)
            if key and key not in keys:
                keys.append(key)
                display.setdefault(key, str(name).strip())
        sizes.append(len(keys))
        freq.update(keys)
        disc = discipline_of.get(ex.seed_id) or ex.discipline or "Other"
        by_disc.setdefault(disc, Counter()).update(keys)
    n_kps = len(freq)
    ranked = sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))
    head = ranked[:top]
    general = tuple(display[k] for k, _ in head if is_general_word(k))
    return KPQuality(
        seeds=len(sizes),
        kps=n_kps,
        links=sum(sizes),
        kps_per_seed_min=min(sizes, default=0),
        kps_per_seed_max=max(sizes, default=0),
        kps_per_seed_mean=_r(sum(sizes) / len(sizes) if sizes else 0.0),
        seeds_outside_bounds=sum(1 for s in sizes if not MIN_KPS <= s <= MAX_KPS),
        singleton_share=_r(sum(1 for c in freq.values() if c == 1) / n_kps if n_kps else 0.0),
        multiword_share=_r(sum(1 for k in freq if " " in k) / n_kps if n_kps else 0.0),
        top=len(head),
        general_word_share=_r(len(general) / len(head) if head else 0.0),
        general_words=general,
        top_kps=tuple((display[k], c) for k, c in ranked[:30]),
        top_by_discipline={
            d: tuple((display[k], c) for k, c in sorted(cnt.items(), key=lambda kv: (-kv[1], kv[0]))[:per_discipline])
            for d, cnt in sorted(by_disc.items())
        },
    )


@dataclass(frozen=True)
class Judgement:
    """A teacher's verdict on phrases of one seed: KPs they would accept and ones they would reject."""

    seed_id: str
    accept: frozenset[str]  # matching keys
    reject: frozenset[str]


def load_judgements(path: str | Path) -> list[Judgement]:
    """Read a JSON-lines file of ``{"id", "accept": [...], "reject": [...]}`` rows."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out.append(Judgement(row["id"], frozenset(map(normalize_kp, row.get("accept", []))),
                                 frozenset(map(normalize_kp, row.get("reject", [])))))
    return out


@dataclass(frozen=True)
class Precision:
    """KPs of judged seeds: accepted, rejected, not judged; precision over the judged ones."""

    seeds: int
    judged: int
    accepted: int
    unjudged: int
    precision: float
    rejected_kps: tuple[str, ...]
    unjudged_kps: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rejected_kps": list(self.rejected_kps), "unjudged_kps": list(self.unjudged_kps)}


def judged_precision(extractions: Mapping[str, Extraction] | Iterable[Extraction],
                     judgements: Sequence[Judgement]) -> Precision:
    """Share of an extractor's KPs on the judged seeds that the teacher accepts (unjudged KPs reported apart)."""
    by_id = extractions if isinstance(extractions, Mapping) else {e.seed_id: e for e in extractions}
    accepted = judged = seeds = 0
    rejected: list[str] = []
    unjudged: list[str] = []
    for j in judgements:
        ex = by_id.get(j.seed_id)
        if ex is None:
            continue
        seeds += 1
        for name in ex.kps:
            key = normalize_kp(name)
            if key in j.accept:
                accepted += 1
                judged += 1
            elif key in j.reject:
                judged += 1
                rejected.append(str(name))
            else:
                unjudged.append(str(name))
    return Precision(seeds, judged, accepted, len(unjudged), _r(accepted / judged if judged else 0.0),
                     tuple(rejected), tuple(unjudged))


def _r(x: float) -> float:
    return round(float(x), 4)
