"""The offline KP extractor: domain terms found by corpus statistics, no model, no network.

A KP should name a concept a teacher would recognise ("hermitian operator", "Le
Chatelier's principle", "negligence") and be shared by several seeds, since shared KPs
are what link seeds in the graph. The extractor reads every seed once, then chooses.
docs/method.md gives every rule and constant; in short:

**Candidates.** The question and its correct answer are cut into runs of words between
stop words, verbs, adverbs, vague modifiers, numbers and punctuation (word classes from
:mod:`.lexicon`, noun/verb forms settled by the seed set's own usage). Every span of one
to three words of a run that ends in a word that can be a noun is a candidate:
"registered voters revealed" yields "registered voters", never a fragment ending in a
verb, a determiner or a number word. A capitalised possessive stays inside a name ("Le
Chatelier's principle"); a common one ends the run.

**Statistics over the seed set**, per candidate key (:func:`~.names.normalize_kp`):
``df``, discipline ``focus``, subject ``hub`` share, and for phrases ``lift`` and
``cohesion`` (how much more than chance the words meet; how often the rarest word occurs
inside the phrase).

**Eligible**: a single word that is not an everyday word (wordfreq Zipf < 4.5), not a hub
of a subject (12% of its seeds) and, when fairly common (Zipf >= 4), focused on one
discipline; a phrase of everyday words only when shared and cohesive (lift >= 3);
nothing named by half a subject's seeds (a question template).

**Choice.** A first choice per seed says which KPs seeds agree on; each seed then keeps
the candidates two or more seeds chose (a KP no other seed chose links nothing: kept only
to reach ``min_kps``); a seed still short takes relaxed candidates; a seed whose text has
no nouns gets its subject's name, the last resort (counted in ``subject_fallbacks``).

**Names as written.** Each KP is returned in its most common written form (capitals of
names kept, sentence-initial capitals dropped), the same form for every seed.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Sequence

from ..errors import InputError
from ..records import Extraction, Seed
from .extract import Progress, estimate_difficulty
from .lexicon import BREAK, GENERAL_ZIPF, NOUN, NOUN_OR_VERB, PARTICIPLE, VAGUE, Usage, word_class, zipf
from .names import MAX_KPS, MIN_KPS, PLURAL_NAMES, key_of, normalize_kp, singularize

__all__ = ["OfflineExtractor", "ExtractorSettings"]

_LENGTH = (0.0, 1.0, 1.6, 1.9, 2.0)


@dataclass(frozen=True)
class ExtractorSettings:
    """The extractor's constants, in one place (each explained in docs/method.md)."""

    max_words: int = 3
    general_zipf: float = GENERAL_ZIPF  # single words at least this common in English are not KPs
    focused_zipf: float = 4.0  # single words at least this common must be focused on one discipline
    min_focus: float = 0.7  # share of one discipline among the seeds naming such a word
    hub_share: float = 0.12  # single words named by this share of a subject's seeds are not KPs
    template_share: float = 0.5  # nothing named by this share of a subject's seeds is a KP
    min_group: int = 10  # subjects smaller than this are not judged for hubs and templates
    min_lift: float = 3.0  # how much more often than chance the words of an everyday phrase meet
    unshared_fill: int = 2  # KPs no other seed chose fill a seed up to this many
    singleton_weight: float = 0.25  # link term of a phrase named by one seed, times log(1+N)


# -- reading ----------------------------------------------------------------------------

# Anything but letters (of any script), apostrophes, hyphens and spaces ends a run of words, and so does a
# dash between spaces; the captured separator tells whether a sentence ended.
_SEP = re.compile(r"((?:[^\w\s'\u2019\-]|[\d_])+|\s[-'\u2019]+(?=\s)|--+)")
_SENTENCE_END = frozenset(".?!:")
_PLURAL_HEADS = frozenset(name.rsplit(" ", 1)[-1] for name in PLURAL_NAMES)


@dataclass(frozen=True)
class _Entry:
    """One distinct written token."""

    cls: int  # lexicon class before usage is weighed
    text: str  # as written inside a phrase ("Chatelier's")
    lower: str
    end_text: str  # as written when it ends a phrase ("Chatelier")
    end_lower: str
    ends_run: bool  # a common possessive ("defendant's") closes its phrase


def _entry(raw: str) -> _Entry:
    raw = raw.replace("\u2019", "'").strip("-'") if not raw.endswith("s'") else raw.replace("\u2019", "'").lstrip("-'")
    possessive = raw.endswith("'s") or raw.endswith("s'")
    base = raw[:-2] if raw.endswith("'s") else raw.rstrip("'")
    if len(base) < 2 or base.islower() and (len(base) == 2 or base in VAGUE):
        cls = BREAK
    else:
        cls = word_class(base.lower())
    if possessive and base[:1].isupper() and cls != BREAK:  # a name's possessive stays inside the phrase
        return _Entry(cls, raw, raw.lower(), base, base.lower(), False)
    return _Entry(cls, base, base.lower(), base, base.lower(), possessive)


class _Corpus:
    """Every seed's words as token ids (``id*2 + sentence-initial``, ``-1`` between runs)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.entries: list[_Entry] = []
        self.usage = Usage()
        self.seeds: list[list[int]] = []

    def add(self, *texts: str) -> None:
        out: list[int] = []
        index, entries, usage = self.index, self.entries, self.usage
        for text in texts:
            initial = True
            parts = _SEP.split(text)
            for n, part in enumerate(parts):
                if n % 2:  # a separator
                    out.append(-1)
                    initial = initial or any(c in _SENTENCE_END for c in part)
                    continue
                words = part.split()
                # a word glued to digits is part of a formula or code ("HClO3", "Asp235Phe")
                if words and n + 1 < len(parts) and parts[n + 1][:1].isdigit() and not part[-1:].isspace():
                    words.pop()
                if words and n > 0 and parts[n - 1][-1:].isdigit() and not part[:1].isspace():
                    words.pop(0)
                before = ""
                for raw in words:
                    vid = index.get(raw)
                    if vid is None:
                        vid = index[raw] = len(entries)
                        entries.append(_entry(raw))
                    e = entries[vid]
                    if e.cls == BREAK:
                        out.append(-1)
                    else:
                        if e.cls >= NOUN_OR_VERB:
                            usage.see(before, e.lower)
                        out.append(vid * 2 + initial)
                    before = e.lower
                    initial = False
            out.append(-1)
        self.seeds.append(out)

    def settle(self) -> None:
        """Final classes, and per token what phrases need (lists indexed by token id, for speed)."""
        entries = self.entries
        self.cls = [self.usage.resolve(e.lower, e.cls) for e in entries]
        self.lower = [e.lower for e in entries]
        self.singular = [singularize(e.end_lower) for e in entries]
        self.ends_run = [e.ends_run for e in entries]
        self.plural_head = [e.end_lower in _PLURAL_HEADS for e in entries]
        self.weak_lead = [_weak_lead(e) for e in entries]


def _weak_lead(e: _Entry) -> int:
    """2: an ``-s`` form that is also a verb ("causes"); 1: a verb-only participle; 0: otherwise.

    A phrase opening with either, or ending in an ``-s`` form that is also a verb
    ("female presents"), may be a verb with its subject or object; it is a candidate only
    when two or more seeds name it ("accounts receivable", "operating system").
    """
    if e.cls == NOUN_OR_VERB and e.lower.endswith("s") and not e.lower.endswith("ss"):
        return 2
    return 1 if e.cls == PARTICIPLE else 0


class _Seen:
    """Candidates of one seed: key -> token spans (indices into ``tokens``)."""

    __slots__ = ("tokens", "spans", "words")

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.spans: dict[str, list[tuple[int, int]]] = {}
        self.words: set[str] = set()


def _candidates(corpus: _Corpus, ids: list[int], max_words: int, words_of: dict[str, tuple[str, ...]],
                weak: dict[str, int]) -> _Seen:
    """Spans of one to ``max_words`` words of a run that end in a noun, keyed as normalize_kp would."""
    seen = _Seen()
    cls, lower, singular, ends_run, plural_head = corpus.cls, corpus.lower, corpus.singular, corpus.ends_run, corpus.plural_head
    tokens, spans = seen.tokens, seen.spans
    start = 0
    for t in ids:
        if t >= 0:
            v = t >> 1
            if cls[v] != BREAK:
                tokens.append(t)
                if not ends_run[v]:
                    continue
        end = len(tokens)
        for j in range(start, end):
            vj = tokens[j] >> 1
            if cls[vj] != NOUN:
                continue
            key = singular[vj]
            for i in range(j, max(start - 1, j - max_words), -1):
                if i < j:
                    key = lower[tokens[i] >> 1] + " " + key
                k = key
                if plural_head[vj] and i < j:
                    k = key_of([lower[x >> 1] for x in tokens[i:j]] + [corpus.entries[vj].end_lower])
                got = spans.get(k)
                if got is None:
                    spans[k] = [(i, j + 1)]
                    if k not in words_of:
                        words_of[k] = tuple(singular[x >> 1] for x in tokens[i : j + 1])
                        lead = corpus.weak_lead[tokens[i] >> 1] if i < j else 0
                        if lead or corpus.weak_lead[vj] == 2:  # "causes meteor showers", "female presents"
                            weak[k] = lead or 3
                else:
                    got.append((i, j + 1))
        start = end
    seen.words = {singular[v] for v in {t >> 1 for t in tokens}}
    return seen


def _written(corpus: _Corpus, tokens: Sequence[int]) -> tuple[str, float]:
    """A span as written, and its weight as evidence of the name's form.

    A sentence-initial capital says nothing: that word is lowered (unless it is written
    in capitals throughout) and the form counts for little.
    """
    entries = corpus.entries
    words = [entries[t >> 1].text for t in tokens[:-1]] + [entries[tokens[-1] >> 1].end_text]
    if tokens[0] & 1:
        first = words[0]
        if first[:1].isupper() and first[1:].islower() and all(w.islower() for w in words[1:]):
            words[0] = first[0].lower() + first[1:]
        return " ".join(words), 0.01
    return " ".join(words), 1.0


# -- statistics -------------------------------------------------------------------------


@dataclass
class _Stats:
    """Corpus statistics of every candidate key."""

    n: int
    df: Counter[str]
    word_df: Counter[str]
    focus: dict[str, float]  # largest share of one discipline among the seeds naming a shared key
    hub: dict[str, float]  # largest share of one subject's seeds naming a shared key


def _statistics(seeds: Sequence[Seed], seen: list[_Seen], settings: ExtractorSettings) -> _Stats:
    df: Counter[str] = Counter()
    word_df: Counter[str] = Counter()
    for s in seen:
        df.update(s.spans.keys())
        word_df.update(s.words)
    by_disc: dict[str, Counter[str]] = defaultdict(Counter)
    by_group: dict[str, Counter[str]] = defaultdict(Counter)
    group_size: Counter[str] = Counter()
    for seed, s in zip(seeds, seen):
        shared = [k for k in s.spans if df[k] > 1]
        by_disc[seed.discipline].update(shared)
        group = seed.subject or seed.discipline
        group_size[group] += 1
        by_group[group].update(shared)
    focus: dict[str, float] = {}
    for counts in by_disc.values():
        for k, c in counts.items():
            if c / df[k] > focus.get(k, 0.0):
                focus[k] = c / df[k]
    hub: dict[str, float] = {}
    for group, counts in by_group.items():
        size = group_size[group]
        if size >= settings.min_group:
            for k, c in counts.items():
                if c / size > hub.get(k, 0.0):
                    hub[k] = c / size
    return _Stats(len(seeds), df, word_df, focus, hub)


# -- scoring ----------------------------------------------------------------------------


class _Scorer:
    """Eligibility and score of candidate keys (the rules of the module docstring), cached per key."""

    def __init__(self, stats: _Stats, words_of: dict[str, tuple[str, ...]], weak: dict[str, int],
                 settings: ExtractorSettings):
        self.stats, self.words_of, self.weak, self.settings = stats, words_of, weak, settings
        self.cache: dict[str, float] = {}
        self.relaxed_cache: dict[str, float] = {}

    def lift(self, key: str) -> float:
        """How much more often a phrase's first word comes with the rest than by chance.

        ``df(phrase)·N / (df(first word)·df(rest))``: "birth control" 9.5, "United
        States" 15, "large number" 1.2, "first time" 0.4.
        """
        st = self.stats
        first = self.words_of[key][0]
        rest = key.split(" ", 1)[1]
        return st.df[key] * st.n / max(1, st.word_df[first] * max(st.df[rest], st.df[key]))

    def score(self, key: str) -> float:
        """Score of an eligible candidate; 0 for one that cannot be a KP."""
        got = self.cache.get(key)
        if got is None:
            got = self.cache[key] = self._score(key)
        return got

    def _score(self, key: str) -> float:
        st, cfg = self.stats, self.settings
        df = st.df[key]
        hub = st.hub.get(key, 0.0)
        if hub >= cfg.template_share:
            return 0.0
        words = self.words_of[key]
        n = max(st.n, 2)
        link = math.log1p(df) * math.log1p(n / df) if df > 1 else cfg.singleton_weight * math.log1p(n)
        focus = st.focus.get(key, 1.0)
        if len(words) == 1:
            z = zipf(key)
            if z >= cfg.general_zipf or hub >= cfg.hub_share or (z >= cfg.focused_zipf and focus < cfg.min_focus):
                return 0.0
            return link * focus * focus * min(1.0, (cfg.general_zipf - z) / 1.5)
        if key in self.weak and df < 2:  # a verb reading is likely and no other seed backs the phrase
            return 0.0
        if df < 2:
            association = 0.5
        else:
            lift = self.lift(key)
            if lift < cfg.min_lift and all(zipf(w) >= cfg.general_zipf for w in words):
                return 0.0
            cohesion = df / max(1, min(st.word_df[w] for w in words))  # 1: its rarest word occurs only here
            association = max(min(1.0, math.log(max(lift, 1.0)) / math.log(20.0)), cohesion)
        return _LENGTH[min(len(words), 4)] * link * focus * (0.4 + association)

    def relaxed(self, key: str) -> float:
        """Score when a seed has too few KPs: any candidate but a template or a likely verb; phrases, then rarer words."""
        got = self.relaxed_cache.get(key)
        if got is None:
            st = self.stats
            if st.hub.get(key, 0.0) >= self.settings.template_share or self.weak.get(key, 0):
                got = 0.0
            else:
                words = self.words_of[key]
                shared = 1.0 if st.df[key] > 1 else 0.5
                got = _LENGTH[min(len(words), 4)] * shared * max(0.1, (7.0 - zipf(key)) / 7.0)
            self.relaxed_cache[key] = got
        return got


# -- choosing ---------------------------------------------------------------------------


def _pick(ranked: Sequence[tuple[float, str]], spans: dict[str, list[tuple[int, int]]], limit: int,
          taken: list[int], chosen: list[str]) -> None:
    """Add keys in rank order while there is room, never two covering the same words.

    ``taken[0]`` is a bit mask of the token positions already covered.
    """
    for _, key in ranked:
        if len(chosen) >= limit:
            return
        if key in chosen:
            continue
        mask = 0
        for a, b in spans[key]:
            m = ((1 << (b - a)) - 1) << a
            if not taken[0] & m:
                mask |= m
        if mask:
            chosen.append(key)
            taken[0] |= mask


class OfflineExtractor:
    """Domain terms by corpus statistics and an English lexicon; no model, no network.

    >>> from linkqa_core.ingest.load import load_seeds, sample_path
    >>> seeds = load_seeds(sample_path()).seeds
    >>> found = OfflineExtractor().extract(seeds)
    >>> len(found) == len(seeds), seeds[0].question, found[0].kps
    (True, 'The element (4, 2) of Z_12 x Z_8 has order', ('elements', 'abstract algebra'))
    """

    name = "offline"

    def __init__(self, *, min_kps: int = MIN_KPS, max_kps: int = 6, aliases: dict[str, str] | None = None,
                 settings: ExtractorSettings | None = None):
        if not MIN_KPS <= min_kps <= max_kps <= MAX_KPS:
            raise InputError(f"KPs per seed must satisfy {MIN_KPS} <= min <= max <= {MAX_KPS}")
        self.min_kps = min_kps
        self.max_kps = max_kps
        self.aliases = aliases or {}
        self.settings = settings or ExtractorSettings()
        self.subject_fallbacks = 0  # seeds whose text named fewer than min_kps nouns (last run)

    def extract(self, seeds: Sequence[Seed], progress: Progress | None = None) -> list[Extraction]:
        total = len(seeds)
        corpus = _Corpus()
        for i, seed in enumerate(seeds):
            corpus.add(seed.question, seed.answer)
            if progress and i % 2000 == 0:
                progress(i, 2 * total, "reading phrases")
        corpus.settle()
        words_of: dict[str, tuple[str, ...]] = {}
        weak: dict[str, int] = {}
        seen = [_candidates(corpus, ids, self.settings.max_words, words_of, weak) for ids in corpus.seeds]
        stats = _statistics(seeds, seen, self.settings)
        scorer = _Scorer(stats, words_of, weak, self.settings)
        if progress:
            progress(total, 2 * total, "choosing KPs")
        chosen = self._choose(seen, scorer)
        display = self._display(corpus, seen, chosen)
        out: list[Extraction] = []
        self.subject_fallbacks = 0
        for seed, keys in zip(seeds, chosen):
            names = self._names(keys, display)
            if len(names) < self.min_kps:
                self.subject_fallbacks += 1
                for fallback in (seed.subject or seed.discipline, seed.discipline):
                    if fallback and normalize_kp(fallback) not in {normalize_kp(n) for n in names}:
                        names.append(self.aliases.get(normalize_kp(fallback), fallback))
                    if len(names) >= self.min_kps:
                        break
            out.append(Extraction(seed.id, tuple(names), None, estimate_difficulty(seed)))
        if progress:
            progress(2 * total, 2 * total, "done")
        return out

    def _choose(self, seen: list[_Seen], scorer: _Scorer) -> list[list[str]]:
        """Each seed's best candidates, preferring those that other seeds choose too.

        A first choice per seed (best eligible candidates, no two on the same words)
        says which KPs seeds agree on. Then each seed keeps, in rank order, the candidates
        that two or more seeds chose; a KP no other seed chose links nothing, so it is
        kept only to reach ``min_kps``; a seed still short takes relaxed candidates.
        """
        ranked_all: list[list[tuple[float, str]]] = []
        first: Counter[str] = Counter()
        for s in seen:
            ranked = sorted(((sc, k) for k in s.spans if (sc := scorer.score(k)) > 0), key=lambda t: (-t[0], t[1]))
            chosen: list[str] = []
            _pick(ranked, s.spans, self.max_kps, [0], chosen)
            first.update(chosen)
            ranked_all.append(ranked)
        out: list[list[str]] = []
        for s, ranked in zip(seen, ranked_all):
            chosen = []
            taken = [0]
            _pick([t for t in ranked if first[t[1]] > 1], s.spans, self.max_kps, taken, chosen)
            if len(chosen) < self.settings.unshared_fill:
                _pick(ranked, s.spans, max(self.min_kps, self.settings.unshared_fill), taken, chosen)
            if len(chosen) < self.min_kps:
                relaxed = sorted(((scorer.relaxed(k), k) for k in s.spans), key=lambda t: (-t[0], t[1]))
                _pick([t for t in relaxed if t[0] > 0], s.spans, self.min_kps, taken, chosen)
            out.append(chosen)
        return out

    @staticmethod
    def _display(corpus: _Corpus, seen: list[_Seen], chosen: list[list[str]]) -> dict[str, str]:
        """Each chosen key's most common written form (sentence-initial forms count for little)."""
        forms: dict[str, dict[str, float]] = {}
        for s, keys in zip(seen, chosen):
            for k in keys:
                f = forms.setdefault(k, {})
                for a, b in s.spans[k]:
                    text, weight = _written(corpus, s.tokens[a:b])
                    f[text] = f.get(text, 0.0) + weight
        return {k: max(f.items(), key=lambda kv: kv[1])[0] for k, f in forms.items()}

    def _names(self, keys: Sequence[str], display: dict[str, str]) -> list[str]:
        names: list[str] = []
        seen_keys: set[str] = set()
        for k in keys:
            target = self.aliases.get(k)
            name, key = (target, target) if target else (display[k], k)
            if key not in seen_keys:
                seen_keys.add(key)
                names.append(name)
        return names
