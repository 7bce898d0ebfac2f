"""Knowledge points: extractors, name normalisation, aliases, difficulty estimates.

An extractor turns seeds into :class:`~linkqa_core.records.Extraction` records; the
offline one below needs no model and no network, so the whole pipeline runs on a fresh
machine. It is corpus-aware: a phrase is worth more as a KP when other seeds name it
too (that is what links seeds in the graph) but not when nearly every seed does.

>>> normalize_kp("  Bayes' Theorems. ")
"bayes' theorem"
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Callable, Iterable, Protocol, Sequence

from .errors import InputError, NotFoundError
from .records import Extraction, ExtractReport, Seed
from .store import Store

__all__ = [
    "Extractor",
    "OfflineExtractor",
    "normalize_kp",
    "singularize",
    "estimate_difficulty",
    "run_extraction",
    "merge_kps",
    "rename_kp",
    "kp_table",
    "suggest_merges",
    "MIN_KPS",
    "MAX_KPS",
]

MIN_KPS = 2
MAX_KPS = 8

Progress = Callable[[int, int, str], None]


class Extractor(Protocol):
    """Anything that names the KPs of seeds; the LLM extractor plugs in here."""

    name: str

    def extract(self, seeds: Sequence[Seed], progress: Progress | None = None) -> list[Extraction]:
        ...


# -- normalisation --------------------------------------------------------------------

_KEEP_S = {
    "physics", "mathematics", "economics", "ethics", "politics", "genetics", "statistics",
    "analysis", "basis", "thesis", "hypothesis", "species", "series", "news", "bayes", "lens",
    "gas", "bus", "virus", "status", "corpus", "atlas", "chaos", "means", "always", "this",
    "its", "his", "was", "has", "is", "as", "us", "yes", "thus", "less", "process", "class",
    "mass", "stress", "loss", "gross", "diabetes", "herpes", "aids", "arms", "earnings",
    "electronics", "linguistics", "logistics", "thermodynamics", "dynamics", "mechanics",
    "kinetics", "optics", "acoustics", "aesthetics", "semantics", "graphics", "diagnosis",
    "prognosis", "synthesis", "osmosis", "mitosis", "meiosis", "crisis", "axis", "emphasis",
    "paralysis", "dialysis", "psychosis", "neurosis", "sclerosis", "fibrosis", "cirrhosis",
    "tuberculosis", "campus", "census", "consensus", "bonus", "nucleus", "stimulus",
    "fungus", "uterus", "fetus", "bias", "canvas", "alias", "plus", "calculus", "sinus",
    "surplus", "apparatus", "hiatus", "lupus", "rhesus", "pancreas", "measles", "mumps",
    "rabies", "scabies", "shingles", "headquarters", "series", "marxis",
}
_IRREGULAR = {
    "children": "child", "people": "people", "men": "man", "women": "woman", "mice": "mouse",
    "teeth": "tooth", "feet": "foot", "geese": "goose", "criteria": "criterion",
    "phenomena": "phenomenon", "data": "data", "media": "media", "bacteria": "bacteria",
    "indices": "index", "matrices": "matrix", "vertices": "vertex", "analyses": "analysis",
    "hypotheses": "hypothesis", "theses": "thesis", "crises": "crisis", "axes": "axis",
    "diagnoses": "diagnosis", "nuclei": "nucleus", "stimuli": "stimulus", "fungi": "fungus",
    "alumni": "alumnus", "curricula": "curriculum", "spectra": "spectrum", "quanta": "quantum",
    "lives": "life", "wives": "wife", "knives": "knife", "leaves": "leaf", "halves": "half",
    "selves": "self", "shelves": "shelf", "wolves": "wolf", "calves": "calf",
}
_PUNCT_EDGE = re.compile(r"^[\s\W_]+|[\s\W_]+$")
_SPACES = re.compile(r"\s+")


def singularize(word: str) -> str:
    """Rule-based singular of an English noun; good enough to fold plural KP names."""
    w = word.lower()
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    if len(w) <= 3 or w in _KEEP_S or not w.endswith("s") or "'" in w:
        return w
    if w.endswith(("ss", "us", "is", "ics", "ous", "sis", "xis")):
        return w
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith(("sses", "ches", "shes", "xes", "zzes")):
        return w[:-2]
    if w.endswith("oes") and len(w) > 5:
        return w[:-2]
    return w[:-1]


def normalize_kp(name: str) -> str:
    """Canonical KP name: lower case, single spaces, no edge punctuation, singular head."""
    text = _SPACES.sub(" ", str(name)).strip().lower()
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    text = _PUNCT_EDGE.sub("", text)
    if text.endswith("'s"):
        text = text[:-2]
    if not text:
        return ""
    words = text.split(" ")
    words[-1] = singularize(words[-1])
    return " ".join(words)


# -- the offline extractor ------------------------------------------------------------

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


def load_aliases(store: Store) -> dict[str, str]:
    """alias -> canonical name."""
    return {
        row[0]: row[1]
        for row in store.query("SELECT a.alias, k.name FROM kp_aliases a JOIN kps k ON k.id = a.kp_id")
    }


def run_extraction(
    store: Store,
    extractor: Extractor | None = None,
    *,
    only_missing: bool = False,
    progress: Progress | None = None,
) -> ExtractReport:
    """Extract KPs for the stored seeds and replace their links, in one transaction.

    Names are normalised and mapped through the stored aliases, so merges made by a
    curator survive a re-extraction.
    """
    aliases = load_aliases(store)
    if extractor is None:
        extractor = OfflineExtractor(aliases=aliases)
    where = "rid NOT IN (SELECT seed_rid FROM seed_kps)" if only_missing else ""
    pairs = list(store.iter_seeds(where=where))
    if not pairs:
        if store.seed_count() == 0:
            raise InputError("no seeds in the database yet: ingest a file first")
        return ExtractReport(seeds=0, kps=store.counts()["kps"], extractor=extractor.name)
    rid_of = {seed.id: rid for rid, seed in pairs}
    seeds = [seed for _, seed in pairs]
    extractions = extractor.extract(seeds, progress=progress)
    by_id = {s.id: s for s in seeds}
    _save_extractions(store, extractions, rid_of, by_id, aliases)
    return ExtractReport(
        seeds=len({e.seed_id for e in extractions if e.kps}),
        kps=store.counts()["kps"],
        extractor=extractor.name,
        failed=list(getattr(extractor, "failures", [])),
    )


def _save_extractions(store: Store, extractions: Iterable[Extraction], rid_of: dict[str, int],
                      by_id: dict[str, Seed], aliases: dict[str, str]) -> None:
    with store.transaction() as conn:
        kp_ids = {row[1]: row[0] for row in conn.execute("SELECT id, name FROM kps")}
        links: list[tuple[int, int]] = []
        diff_updates: list[tuple[float, int]] = []
        disc_updates: list[tuple[str, int]] = []
        rids: list[tuple[int]] = []
        for ex in extractions:
            rid = rid_of.get(ex.seed_id)
            if rid is None:
                continue
            rids.append((rid,))
            names = []
            for raw in ex.kps:
                name = normalize_kp(raw)
                name = aliases.get(name, name)
                if name and name not in names:
                    names.append(name)
            for name in names[:MAX_KPS]:
                kid = kp_ids.get(name)
                if kid is None:
                    kid = conn.execute("INSERT INTO kps (name) VALUES (?)", (name,)).lastrowid
                    kp_ids[name] = kid
                links.append((rid, kid))
            seed = by_id[ex.seed_id]
            if seed.difficulty is None and ex.difficulty is not None:
                diff_updates.append((float(ex.difficulty), rid))
            if seed.discipline == "Other" and ex.discipline:
                disc_updates.append((ex.discipline, rid))
        conn.executemany("DELETE FROM seed_kps WHERE seed_rid = ?", rids)
        conn.executemany("INSERT OR IGNORE INTO seed_kps (seed_rid, kp_id) VALUES (?, ?)", links)
        conn.executemany("UPDATE seeds SET difficulty = ?, difficulty_estimated = 1 WHERE rid = ?", diff_updates)
        conn.executemany("UPDATE seeds SET discipline = ? WHERE rid = ?", disc_updates)
        store.bump()


# -- curating KPs ---------------------------------------------------------------------


def _kp_id(store: Store, name: str) -> int:
    norm = normalize_kp(name)
    kid = store.scalar("SELECT id FROM kps WHERE name = ?", (norm,))
    if kid is None:
        raise NotFoundError(f"no knowledge point named '{name}'")
    return int(kid)


def merge_kps(store: Store, sources: Sequence[str], target: str) -> int:
    """Fold ``sources`` into ``target`` (created if new); returns links moved.

    Each source name becomes an alias of the target, so re-extraction keeps the merge.
    Paths of saved runs are re-pointed too, so the coverage ledger stays consistent.
    """
    target_norm = normalize_kp(target)
    if not target_norm:
        raise InputError("the target KP name is empty")
    moved = 0
    with store.transaction() as conn:
        tid = conn.execute("SELECT id FROM kps WHERE name = ?", (target_norm,)).fetchone()
        tid = tid[0] if tid else conn.execute("INSERT INTO kps (name) VALUES (?)", (target_norm,)).lastrowid
        for src in sources:
            sid = _kp_id(store, src)
            if sid == tid:
                continue
            before = conn.total_changes
            conn.execute("INSERT OR IGNORE INTO seed_kps (seed_rid, kp_id) SELECT seed_rid, ? FROM seed_kps WHERE kp_id = ?", (tid, sid))
            moved += conn.total_changes - before
            conn.execute("DELETE FROM seed_kps WHERE kp_id = ?", (sid,))
            conn.execute("UPDATE path_kps SET kp_id = ? WHERE kp_id = ?", (tid, sid))
            conn.execute("UPDATE kp_aliases SET kp_id = ? WHERE kp_id = ?", (tid, sid))
            name = conn.execute("SELECT name FROM kps WHERE id = ?", (sid,)).fetchone()[0]
            conn.execute("INSERT OR REPLACE INTO kp_aliases (alias, kp_id) VALUES (?, ?)", (name, tid))
            conn.execute("DELETE FROM kps WHERE id = ?", (sid,))
        store.bump()
    return moved


def rename_kp(store: Store, old: str, new: str) -> None:
    """Rename a KP; renaming onto an existing name merges the two."""
    new_norm = normalize_kp(new)
    if not new_norm:
        raise InputError("the new KP name is empty")
    if store.scalar("SELECT id FROM kps WHERE name = ?", (new_norm,)) is not None:
        merge_kps(store, [old], new_norm)
        return
    kid = _kp_id(store, old)
    with store.transaction() as conn:
        old_name = conn.execute("SELECT name FROM kps WHERE id = ?", (kid,)).fetchone()[0]
        conn.execute("UPDATE kps SET name = ? WHERE id = ?", (new_norm, kid))
        conn.execute("INSERT OR REPLACE INTO kp_aliases (alias, kp_id) VALUES (?, ?)", (old_name, kid))
        store.bump()


def kp_table(store: Store, *, limit: int | None = None, search: str | None = None) -> list[dict]:
    """KPs with frequency, dominant discipline and mean difficulty, most frequent first."""
    sql = (
        "SELECT k.id, k.name, count(*) AS freq, avg(s.difficulty) AS mean_difficulty,"
        " (SELECT s2.discipline FROM seed_kps l2 JOIN seeds s2 ON s2.rid = l2.seed_rid"
        "  WHERE l2.kp_id = k.id GROUP BY s2.discipline ORDER BY count(*) DESC, s2.discipline LIMIT 1) AS discipline,"
        " count(DISTINCT s.discipline) AS n_disciplines"
        " FROM kps k JOIN seed_kps l ON l.kp_id = k.id JOIN seeds s ON s.rid = l.seed_rid"
    )
    params: list = []
    if search:
        sql += " WHERE k.name LIKE ?"
        params.append(f"%{normalize_kp(search) or search}%")
    sql += " GROUP BY k.id ORDER BY freq DESC, k.name"
    if limit:
        sql += " LIMIT ?"
        params.append(int(limit))
    return [dict(r) for r in store.query(sql, params)]


def suggest_merges(store: Store, limit: int = 50) -> list[tuple[str, str]]:
    """Pairs of KP names that differ only by hyphens, spaces or word order."""
    groups: dict[str, list[str]] = {}
    for (name,) in store.query("SELECT name FROM kps WHERE id IN (SELECT DISTINCT kp_id FROM seed_kps)"):
        key = " ".join(sorted(name.replace("-", " ").replace("'", "").split()))
        groups.setdefault(key, []).append(name)
    pairs = [(names[i], names[0]) for names in groups.values() if len(names) > 1 for i in range(1, len(names))]
    return sorted(pairs)[:limit]
