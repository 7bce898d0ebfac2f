"""The offline KP extractor: phrase statistics over the whole seed set, no model, no network.

It is corpus-aware: a phrase is worth more as a KP when other seeds name it too (that is
what links seeds in the graph) but not when nearly every seed does.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

from ..errors import InputError
from ..records import Extraction, Seed
from .names import MAX_KPS, MIN_KPS, normalize_kp, singularize
from .extract import Progress, estimate_difficulty

__all__ = ["OfflineExtractor"]

_STOP = set(
    """
    a about above according across actually after again against all almost along already also although always am
    among an and another any anyone anything are around as at away back be became because become becomes been before
    being below best better between both but by can cannot could did do does doing done down due during each either
    else enough etc even ever every example except far few following for from further get gets given go goes going
    got had has have having he her here hers herself him himself his how however i if in instead into is it its
    itself just least less like likely made make makes many may me might more most much must my myself near need
    neither never new next no none nor not nothing now of off often on once one only or other others otherwise our
    ours ourselves out over own per perhaps rather really same second several shall she should since so some
    something sometimes still such than that the their theirs them themselves then there therefore these they this
    those though three through thus to together too two under unless until up upon us use used uses using usually
    very via was we well were what whatever when whenever where whereas whether which while who whom whose why will
    with within without would yet you your yours yourself yourselves
    statement statements true false correct incorrect answer answers question questions following best describes
    describe described describing option options choice choices likely unlikely most least which what whose
    select true-false both neither none all above below called known considered refers refer referred term
    terms type types kind kinds way ways thing things part parts number numbers value values result results
    case cases first third fourth fifth last time times year years day days use used person people man woman
    i ii iii iv v vi vii viii ix x mr mrs ms dr st frac dfrac cfrac cdot sqrt mathrm mathbf textbf left right begin ldots cdots
    take takes took taken come comes came find finds found give gives gave said say says provide provides
    provided include includes included including lead leads led base based perform performs performed write
    writes wrote written mean meant suppose supposed make know knows knew think thinks want wants seem seems
    appear appears occur occurs occurred involve involves involved require requires required tend tends help
    helps keep keeps let lets begin begins began run runs move moves live lives believe believes bring brings
    happen happens happened show shows showed shown stand stands lose loses lost pay pays paid meet meets
    continue continues learn learns understand follow follows stop stops create creates created speak read
    allow allows allowed add adds added spend grow grows open opens win offer offers remember buy wait serve
    send expect expects expected build stay fall falls cut reach reached kill remain remains suggest suggests
    suggested raise raised pass passed sell decide decided return explain explains hope develop develops
    carry break receive receives received agree agrees support supports produce produces produced choose
    represent represents represented indicate indicates indicated determine determines determined identify
    identified contain contains contained associate associated obtain obtained assume assumed apply applied
    past rest note throughout initially clearly directly typically lower higher greater larger smaller
    given giving get got go went put puts set sets tell told ask asked asking call see seen saw look looks
    feel felt become try tried leave left turn turned mentioned likely certain certainly following
    regarding concerning related relating due able unable another whereby thereby therein hereby
    generally especially particularly primarily mainly mostly simply actually probably possibly typical
    consider considered increase increases increased decrease decreased reduce reduced change changes
    prevail prevails recover recovers
    changed affect affects affected known known best worst good bad better new old high low
    """.split()
)
# Single words this common are not KPs on their own, only inside a phrase.
_GENERIC = set(
    """
    able amount area base basic called certain change changes common company consider cost different effect
    effects end factor factors form general good great group high important increase increased individual
    information large level low main major make man many means member method model most name order place
    point possible power problem process product rate reason relationship role set show small state states
    study system total way work world year
    """.split()
)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'\u2019\-]*[A-Za-z0-9]|[A-Za-z]")
_BREAK = re.compile(r"[.,;:!?()\[\]{}\"\u201c\u201d|/=+*<>\n\t]|\s-\s|\u2014|\u2013")


def _phrases(text: str) -> list[str]:
    """Candidate phrases: runs of content words between stop words and punctuation."""
    out: list[str] = []
    for chunk in _BREAK.split(text):
        run: list[str] = []
        for raw in _WORD.findall(chunk) + [""]:
            word = raw.lower().replace("\u2019", "'")
            if word.endswith("'s"):
                word = word[:-2]
            if not word or word in _STOP or len(word) < 2 or any(ch.isdigit() for ch in word):
                if run:
                    out.extend(_ngrams(run))
                    run = []
                continue
            run.append(word)
    return out


def _ngrams(run: list[str]) -> list[str]:
    if len(run) <= 3:
        grams = [run]
    else:  # long runs are usually several concepts; keep their 2- and 3-word windows
        grams = [run[i : i + n] for n in (2, 3) for i in range(len(run) - n + 1)]
    phrases = []
    for g in grams:
        g = list(g)
        g[-1] = singularize(g[-1])
        phrases.append(" ".join(g))
        if len(g) > 1:  # the single head words are candidates too
            phrases.extend(singularize(w) for w in g)
    return phrases


def _discipline_focus(seeds: Sequence[Seed], candidates: list[list[str]], df: Counter[str]) -> dict[str, float]:
    """Largest share of one discipline among the seeds naming a phrase.

    Words spread evenly over all disciplines ("cause", "human") are generic; words
    concentrated in one ("glycogen", "fallacy") are knowledge. Only shared phrases need it.
    """
    per: dict[str, Counter[str]] = {}
    for seed, cands in zip(seeds, candidates):
        for p in cands:
            if df[p] > 1:
                per.setdefault(p, Counter())[seed.discipline] += 1
    return {p: max(c.values()) / df[p] for p, c in per.items()}


def _boilerplate(seeds: Sequence[Seed], candidates: list[list[str]], share: float = 0.5,
                 min_group: int = 10) -> frozenset[str]:
    """Phrases of a question template: named by half or more of the seeds of one subject.

    MMLU's "moral scenarios" all read "...does the main character do something clearly
    morally wrong, according to ordinary moral standards..."; those phrases say nothing
    about any one question and would become hubs that every path runs through.
    """
    groups: Counter[str] = Counter()
    per: Counter[tuple[str, str]] = Counter()
    for seed, cands in zip(seeds, candidates):
        group = seed.subject or seed.discipline
        groups[group] += 1
        for p in cands:
            per[(group, p)] += 1
    return frozenset(p for (group, p), c in per.items()
                     if groups[group] >= min_group and c >= share * groups[group])


def _overlap(a: str, b: str) -> bool:
    """True when two phrases share half the words of the shorter (n-gram windows of one run)."""
    wa, wb = set(a.split(" ")), set(b.split(" "))
    return len(wa & wb) * 2 >= min(len(wa), len(wb)) and len(wa & wb) > 0 and min(len(wa), len(wb)) > 1


def _seed_text(seed: Seed) -> str:
    return f"{seed.question}\n{seed.answer}"


class OfflineExtractor:
    """Phrase statistics over the whole seed set; no model, no network.

    Score of a candidate phrase in a seed: ``length bonus × log(1+df) × log(N/df)``, where
    ``df`` is how many seeds name it: shared phrases link seeds, near-universal ones do
    not inform. Phrases inside an already chosen phrase are skipped. When a seed yields
    fewer than two, its subject name fills in.
    """

    name = "offline"

    def __init__(self, *, min_kps: int = MIN_KPS, max_kps: int = 6, aliases: dict[str, str] | None = None):
        if not MIN_KPS <= min_kps <= max_kps <= MAX_KPS:
            raise InputError(f"KPs per seed must satisfy {MIN_KPS} <= min <= max <= {MAX_KPS}")
        self.min_kps = min_kps
        self.max_kps = max_kps
        self.aliases = aliases or {}

    def extract(self, seeds: Sequence[Seed], progress: Progress | None = None) -> list[Extraction]:
        total = len(seeds)
        candidates: list[list[str]] = []
        df: Counter[str] = Counter()
        for i, seed in enumerate(seeds):
            cands = list(dict.fromkeys(p for p in _phrases(_seed_text(seed)) if self._usable(p)))
            candidates.append(cands)
            df.update(cands)
            if progress and i % 2000 == 0:
                progress(i, 2 * total, "reading phrases")
        n = max(total, 2)
        self._focus = _discipline_focus(seeds, candidates, df)
        self._boilerplate = _boilerplate(seeds, candidates)
        out: list[Extraction] = []
        for i, (seed, cands) in enumerate(zip(seeds, candidates)):
            out.append(Extraction(seed.id, self._choose(seed, cands, df, n), None, estimate_difficulty(seed)))
            if progress and i % 2000 == 0:
                progress(total + i, 2 * total, "choosing KPs")
        if progress:
            progress(2 * total, 2 * total, "done")
        return out

    _focus: dict[str, float] = {}
    _boilerplate: frozenset[str] = frozenset()

    @staticmethod
    def _usable(phrase: str) -> bool:
        words = phrase.split(" ")
        if len(words) == 1:
            return len(phrase) >= 4 and phrase not in _GENERIC and phrase not in _STOP
        return len(phrase) >= 5

    def _choose(self, seed: Seed, cands: list[str], df: Counter[str], n: int) -> tuple[str, ...]:
        scored = []
        for p in cands:
            if p in self._boilerplate:
                continue
            d = df[p]
            words = p.count(" ") + 1
            if words == 1 and (d > 0.05 * n or p.endswith(("ly", "ed"))):
                continue
            share = math.log(1 + d) if d > 1 else 0.35
            focus = self._focus.get(p, 1.0) ** (2 if words == 1 else 1)
            scored.append(((0.6 + 0.7 * (words - 1)) * share * focus * math.log(n / d + 1), p))
        scored.sort(key=lambda t: (-t[0], t[1]))
        chosen: list[str] = []
        for _, p in scored:
            name = self.aliases.get(p, p)
            if any(name in c or c in name or _overlap(name, c) for c in chosen):
                continue
            chosen.append(name)
            if len(chosen) >= self.max_kps:
                break
        if len(chosen) < self.min_kps and seed.subject:
            subject = normalize_kp(seed.subject)
            if subject and subject not in chosen:
                chosen.append(self.aliases.get(subject, subject))
        if len(chosen) < self.min_kps:
            chosen.append(normalize_kp(seed.discipline))
        return tuple(dict.fromkeys(chosen))
