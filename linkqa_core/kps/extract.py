"""Running an extractor over the stored seeds and storing what it names.

An extractor turns seeds into :class:`~linkqa_core.records.Extraction` records; the
offline one (:mod:`.offline`) needs no model and no network, so the whole pipeline runs
on a fresh machine; the LLM one (:mod:`.llm`) asks a model.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, Protocol, Sequence

from ..errors import InputError
from ..records import Extraction, ExtractReport, Seed
from ..store import Store
from .names import MAX_KPS, normalize_kp, trim_edges

__all__ = ["Extractor", "estimate_difficulty", "keep_summaries", "label_of", "run_extraction"]

Progress = Callable[[int, int, str], None]


class Extractor(Protocol):
    """Anything that names the KPs of seeds; the LLM extractor plugs in here."""

    name: str

    def extract(self, seeds: Sequence[Seed], progress: Progress | None = None) -> list[Extraction]:
        ...


# -- difficulty -----------------------------------------------------------------------

_LEVELS = (("elementary", 1.5), ("high school", 2.5), ("college", 3.5), ("professional", 4.0), ("graduate", 4.5))
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def estimate_difficulty(seed: Seed) -> float:
    """Heuristic 1–5 for seeds that came without a difficulty (marked as estimated).

    Level named in the subject (elementary 1.5, high school 2.5, college 3.5,
    professional 4, else 3), +0.5 for a long question (over 400 characters), +0.5 when
    it carries four or more numbers (a calculation), −0.5 for a very short one (under 60).
    """
    if seed.difficulty is not None:
        return float(seed.difficulty)
    subject = (seed.subject or "").lower()
    base = next((v for k, v in _LEVELS if k in subject), 3.0)
    q = seed.question
    if len(q) > 400:
        base += 0.5
    if len(_NUMBER.findall(q)) >= 4:
        base += 0.5
    if len(q) < 60:
        base -= 0.5
    return float(min(5, max(1, round(base))))


# -- storing extractions --------------------------------------------------------------


def label_of(raw: str) -> str:
    """The name as a curator should read it: spacing tidied, edge punctuation gone, case kept."""
    text = " ".join(str(raw).replace("\u2019", "'").replace("\u2018", "'").split())
    return trim_edges(text, _LABEL_EDGE.__contains__)


_LABEL_EDGE = frozenset(" .,;:!?\"()[]{}")


def run_extraction(
    store: Store,
    extractor: Extractor | None = None,
    *,
    only_missing: bool = False,
    progress: Progress | None = None,
) -> ExtractReport:
    """Extract KPs for the stored seeds and replace their links, in one transaction.

    Names are matched by their key (:func:`~linkqa_core.kps.names.normalize_kp`) through
    the stored aliases, so merges made by a curator survive a re-extraction; a new KP
    keeps the extractor's spelling as its label.
    """
    aliases = store.kps.aliases()
    if extractor is None:
        from .offline import OfflineExtractor

        extractor = OfflineExtractor(aliases=aliases)
    pairs = list(store.seeds.iter(without_kps=only_missing))
    if not pairs:
        if store.seeds.count() == 0:
            raise InputError("no seeds in the database yet: ingest a file first")
        return ExtractReport(seeds=0, kps=store.kps.count(), extractor=extractor.name)
    rid_of = {seed.id: rid for rid, seed in pairs}
    seeds = [seed for _, seed in pairs]
    extractions = extractor.extract(seeds, progress=progress)
    by_id = {s.id: s for s in seeds}
    _save_extractions(store, extractions, rid_of, by_id, aliases)
    keep_summaries(store, progress)
    from .quality import kp_quality

    quality = kp_quality(extractions, seeds).to_dict()
    if hasattr(extractor, "subject_fallbacks"):
        quality["subject_fallbacks"] = extractor.subject_fallbacks
    return ExtractReport(
        seeds=len({e.seed_id for e in extractions if e.kps}),
        kps=store.kps.count(),
        extractor=extractor.name,
        failed=list(getattr(extractor, "failures", [])),
        by_path=dict(getattr(extractor, "by_path", {}) or {}),
        quality=quality,
    )


def keep_summaries(store: Store, progress: Progress | None = None) -> None:
    """Compute now, and keep beside the file, what the studio's first visits read.

    The KP graph and its statistics (:mod:`~linkqa_core.graph.stored`), the counts, the
    seed summary, the KP frequencies and the merge suggestions (kept per data version):
    at ten million seeds they are a 43 CPU-s build and 7-20 s scans, paid once here at
    the end of a run that took far longer, instead of by the first visit of every new
    studio process.
    """
    if store.memory:
        return
    from ..graph.stored import current_graph, current_stats
    from .curate import MERGE_SUGGESTIONS, suggest_merges

    if progress:
        progress(1, 1, "building the KP graph")
    store.counts()
    store.seeds.attributes()
    store.kps.quality_counts(by_discipline=False)
    suggest_merges(store, limit=MERGE_SUGGESTIONS)
    current_stats(store, current_graph(store))


def _save_extractions(store: Store, extractions: Iterable[Extraction], rid_of: dict[str, int],
                      by_id: dict[str, Seed], aliases: dict[str, str]) -> None:
    links: dict[int, list[tuple[str, str]]] = {}
    diff_updates: list[tuple[float, int]] = []
    disc_updates: list[tuple[str, int]] = []
    for ex in extractions:
        rid = rid_of.get(ex.seed_id)
        if rid is None:
            continue
        names: dict[str, str] = {}
        for raw in ex.kps:
            key = normalize_kp(raw)
            key = aliases.get(key, key)
            if key and key not in names:
                names[key] = label_of(raw) or key
        links[rid] = list(names.items())[:MAX_KPS]
        seed = by_id[ex.seed_id]
        if seed.difficulty is None and ex.difficulty is not None:
            diff_updates.append((float(ex.difficulty), rid))
        if seed.discipline == "Other" and ex.discipline:
            disc_updates.append((ex.discipline, rid))
    with store.transaction():
        store.kps.replace_links(links)
        store.seeds.set_estimates(diff_updates, disc_updates)
