"""Scale data: seed–KP link sets shaped like the offline extractor's output on MMLU.

The model, fitted by ``--refit`` on ``shared/data/mmlu_test.jsonl`` (ingested and run
through :class:`linkqa_core.kps.OfflineExtractor`) and stored in ``zipf_fit.json``:

- **KP popularity**: a Zipf law with a Mandelbrot shift over a finite vocabulary,
  ``p(r) ∝ (r + b)^-s`` for ranks ``r = 1..V``. ``s``, ``b`` and ``V`` are fitted by
  Poisson maximum likelihood on the frequency spectrum (how many KPs are named by 1, 2,
  3, … seeds), which, unlike a log-log regression over the rank-frequency curve, uses
  the singletons that make up most of the vocabulary. ``b`` flattens the head: the
  extractor refuses single words named by more than 5 % of seeds. The plain log-log
  slope is stored too, for reference.
- **Vocabulary growth** (Heaps): distinct KPs in a random subsample of ``N`` MMLU seeds
  follow ``D(N) = K·N^beta`` (fitted by log-log regression). For a size ``N`` the
  vocabulary ``V(N)`` is solved so that the expected number of distinct KPs drawn is
  ``D(N)``; at the MMLU size that gives back the fitted ``V``.
- **KPs per seed**: the extractor's histogram on MMLU (it names 2–6; 7–8 get 0).
- **Disciplines, subjects, difficulty**: MMLU's subject counts mapped by
  :mod:`linkqa_core.taxonomy`, and per discipline the extractor's 1–5 difficulty mix.
- **Communities**: every KP has a home discipline (the head of the Zipf is dealt out so
  that each discipline holds its share of the probability mass, the tail at random by
  share). A seed draws each KP from its own discipline's KPs with probability ``q``,
  else from the whole vocabulary, so that overall popularity stays the fitted Zipf.
  ``q`` is calibrated so that the share of links (to KPs named at least twice) whose
  KP's majority discipline is the seed's equals MMLU's.

The fit follows the extractor: after a change to ``linkqa_core.kps`` run ``--refit``
(cached benchmark data are keyed by a digest of the fit, so they are regenerated).
``check_at_mmlu_size`` in the JSON sets the generated data at MMLU's size beside the
real extraction: vocabulary, singletons, frequency at ranks 1–10,000, edges, degree
percentiles, Louvain communities and modularity.

Everything is a pure function of ``--seed`` and ``zipf_fit.json``:

    python benchmarks/generate.py --size 100k --seed 0 --db /tmp/b.db --jsonl /tmp/b.jsonl
    python benchmarks/generate.py --refit          # recompute zipf_fit.json from MMLU
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FIT_PATH = Path(__file__).resolve().parent / "zipf_fit.json"
MMLU_PATH = ROOT.parent / "shared" / "data" / "mmlu_test.jsonl"
GENERATOR_VERSION = 1  # bump when the output for a given (size, seed, fit) changes
KMIN, KMAX = 2, 8
_HEAD = 4000  # Zipf ranks dealt to disciplines greedily by probability mass; the rest at random
_SPECTRUM_BINS = 40  # frequency-spectrum bins for the MLE: 1..39 and 40+

__all__ = ["parse_size", "load_fit", "refit", "generate", "ScaleData", "vocabulary_size",
           "write_store", "write_jsonl", "iter_rows", "fit_digest"]


def parse_size(text: str | int) -> int:
    """``"10k"`` -> 10000, ``"1M"`` -> 1000000, ``"2500"`` -> 2500."""
    if isinstance(text, int):
        return text
    t = str(text).strip().lower().replace("_", "").replace(",", "")
    mult = 1
    if t.endswith("k"):
        mult, t = 1_000, t[:-1]
    elif t.endswith("m"):
        mult, t = 1_000_000, t[:-1]
    value = float(t) * mult
    if value < 1 or value != int(value):
        raise ValueError(f"bad size {text!r}")
    return int(value)


def size_label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


# -- the Zipf–Mandelbrot vocabulary ---------------------------------------------------------


def zipf_probs(s: float, b: float, vocab: int) -> np.ndarray:
    r = np.arange(1, int(vocab) + 1, dtype=np.float64)
    p = (r + b) ** -s
    return p / p.sum()


def expected_distinct(s: float, b: float, vocab: int, draws: float) -> float:
    """Expected distinct ranks among ``draws`` Poisson draws: sum of 1 - exp(-draws·p)."""
    lam = draws * zipf_probs(s, b, vocab)
    return float(-np.expm1(-lam).sum())


def vocabulary_size(fit: dict[str, Any], n: int) -> int:
    """``V(N)``: the vocabulary whose expected distinct KPs at ``n`` seeds is Heaps' ``D(N)``."""
    z, h = fit["zipf_mandelbrot"], fit["heaps"]
    target = h["K"] * n ** h["beta"]
    draws = n * fit["kps_per_seed"]["mean"]
    s, b = z["s"], z["b"]
    lo, hi = max(int(target), 2), max(int(target) * 4, 16)
    while expected_distinct(s, b, hi, draws) < target:
        lo, hi = hi, hi * 4
        if hi > 2e8:
            raise ValueError(f"no vocabulary gives {target:.0f} distinct KPs at {n} seeds")
    while hi - lo > max(1, lo // 2000):  # bisection to 0.05 %
        mid = (lo + hi) // 2
        if expected_distinct(s, b, mid, draws) < target:
            lo = mid
        else:
            hi = mid
    return hi


# -- generated data -------------------------------------------------------------------------


@dataclass
class ScaleData:
    """Seeds and their KPs as arrays; KP ``r`` is Zipf rank ``r`` (0-based) of the vocabulary."""

    n: int
    seed: int
    disciplines: list[str]
    subjects: list[str]
    seed_discipline: np.ndarray  # int16 index into disciplines
    seed_subject: np.ndarray  # int16 index into subjects
    seed_difficulty: np.ndarray  # int8 1..5
    link_ptr: np.ndarray  # int64, n + 1: KPs of seed i are link_kp[link_ptr[i]:link_ptr[i+1]]
    link_kp: np.ndarray  # int64 Zipf ranks, 0-based
    kp_home: np.ndarray  # int16 home discipline of every vocabulary rank
    vocab: int
    q: float

    @property
    def n_links(self) -> int:
        return int(self.link_kp.shape[0])

    def kp_name(self, rank: int) -> str:
        return f"{_SLUG[self.disciplines[int(self.kp_home[rank])]]} concept {int(rank) + 1}"

    def kps_of(self, i: int) -> np.ndarray:
        return self.link_kp[self.link_ptr[i] : self.link_ptr[i + 1]]

    def link_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(seed_rid, kp_id)`` as stored by :func:`write_store` (rid = i + 1, kp id = rank + 1)."""
        rid = np.repeat(np.arange(1, self.n + 1, dtype=np.int64), np.diff(self.link_ptr))
        return rid, self.link_kp + 1

    def summary(self) -> dict[str, Any]:
        freq = np.bincount(self.link_kp)
        freq = freq[freq > 0]
        return {
            "seeds": self.n,
            "links": self.n_links,
            "kps": int(freq.size),
            "vocabulary": self.vocab,
            "max_freq": int(freq.max()) if freq.size else 0,
            "singleton_share": round(float((freq == 1).mean()), 4) if freq.size else 0.0,
            "mean_kps_per_seed": round(self.n_links / max(self.n, 1), 3),
        }


_SLUG = {
    "Mathematics": "math", "Physics": "phys", "Chemistry": "chem", "Biology": "bio",
    "Medicine & Health": "med", "Computer Science": "cs", "Engineering": "eng",
    "Economics & Business": "econ", "Law": "law", "Philosophy & Religion": "phil",
    "History": "hist", "Social Sciences": "soc", "Other": "misc",
}


def _homes(p: np.ndarray, shares: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Home discipline of every rank: the head greedily by mass deficit, the tail ∝ share."""
    v = p.shape[0]
    home = np.empty(v, dtype=np.int16)
    head = min(_HEAD, v)
    mass = np.zeros(shares.shape[0])
    cum = 0.0
    for r in range(head):
        cum += p[r]
        d = int(np.argmax(shares * cum - mass))
        home[r] = d
        mass[d] += p[r]
    if v > head:
        home[head:] = rng.choice(shares.shape[0], size=v - head, p=shares)
    return home


def generate(n: int, seed: int = 0, fit: dict[str, Any] | None = None, *, q: float | None = None,
             vocab: int | None = None) -> ScaleData:
    """``n`` seeds with 2–8 KPs each, deterministic from ``seed`` (and the fit)."""
    fit = load_fit() if fit is None else fit
    q = float(fit["in_discipline"]["q"] if q is None else q)
    disciplines = list(fit["disciplines"])
    shares = np.array([fit["disciplines"][d] for d in disciplines], dtype=np.float64)
    shares /= shares.sum()
    z = fit["zipf_mandelbrot"]
    vocab = vocabulary_size(fit, n) if vocab is None else int(vocab)
    p = zipf_probs(z["s"], z["b"], vocab)
    root = np.random.SeedSequence([seed, GENERATOR_VERSION])
    rng_vocab, rng_seed, rng_kp = (np.random.default_rng(s) for s in root.spawn(3))
    home = _homes(p, shares, rng_vocab)

    # per seed: discipline, subject, difficulty, number of KPs
    disc = rng_seed.choice(len(disciplines), size=n, p=shares).astype(np.int16)
    subjects: list[str] = []
    subject = np.zeros(n, dtype=np.int16)
    difficulty = np.zeros(n, dtype=np.int8)
    for d, name in enumerate(disciplines):
        rows = np.flatnonzero(disc == d)
        subj = fit["subjects"][name]
        names = sorted(subj)
        w = np.array([subj[s] for s in names], dtype=float)
        offset = len(subjects)
        subjects.extend(names)
        subject[rows] = offset + rng_seed.choice(len(names), size=rows.size, p=w / w.sum())
        dmix = np.array(fit["difficulty"][name], dtype=float)
        difficulty[rows] = 1 + rng_seed.choice(5, size=rows.size, p=dmix / dmix.sum())
    kh = fit["kps_per_seed"]["histogram"]
    kprob = np.array([kh.get(str(k), 0.0) for k in range(KMIN, KMAX + 1)], dtype=float)
    k = (KMIN + rng_seed.choice(KMAX - KMIN + 1, size=n, p=kprob / kprob.sum())).astype(np.int64)

    # KPs: draw candidates, keep each seed's first k distinct; redraw the rare short rows
    gcum = np.cumsum(p)
    local = []
    for d in range(len(disciplines)):
        idx = np.flatnonzero(home == d)
        local.append((idx, np.cumsum(p[idx])))
    width = KMAX + 2
    chosen = np.full((n, KMAX), -1, dtype=np.int64)
    todo = np.arange(n)
    while todo.size:
        m = todo.size
        u = rng_kp.random((m, width))
        in_disc = rng_kp.random((m, width)) < q
        cand = np.searchsorted(gcum, u * gcum[-1], side="right")
        dd = disc[todo]
        for d, (idx, cum) in enumerate(local):
            if idx.size == 0:
                continue
            rows = np.flatnonzero(dd == d)
            if rows.size == 0:
                continue
            sel = in_disc[rows]
            j = np.searchsorted(cum, u[rows][sel] * cum[-1], side="right")
            sub = cand[rows]
            sub[sel] = idx[np.minimum(j, idx.size - 1)]
            cand[rows] = sub
        np.minimum(cand, p.shape[0] - 1, out=cand)
        # first occurrence of each value in a row (stable sort keeps the earliest first)
        order = np.argsort(cand, axis=1, kind="stable")
        srt = np.take_along_axis(cand, order, axis=1)
        dup_sorted = np.zeros_like(srt, dtype=bool)
        dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
        dup = np.zeros_like(dup_sorted)
        np.put_along_axis(dup, order, dup_sorted, axis=1)
        keep = ~dup
        rank = np.cumsum(keep, axis=1)
        need = k[todo]
        ok = rank[:, -1] >= need
        keep &= rank <= need[:, None]
        rows_ok = np.flatnonzero(ok)
        sub_keep = keep[rows_ok]
        vals = cand[rows_ok][sub_keep]
        pos = (rank[rows_ok] - 1)[sub_keep]
        row_ix = np.repeat(todo[rows_ok], sub_keep.sum(axis=1))
        chosen[row_ix, pos] = vals
        todo = todo[~ok]
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(k, out=ptr[1:])
    link_kp = chosen[chosen >= 0]
    return ScaleData(n=n, seed=seed, disciplines=disciplines, subjects=subjects, seed_discipline=disc,
                     seed_subject=subject, seed_difficulty=difficulty, link_ptr=ptr, link_kp=link_kp,
                     kp_home=home, vocab=vocab, q=q)


# -- seed rows (text) ----------------------------------------------------------------------

_LETTERS = "ABCD"


def _filler(seed: int) -> str:
    """A fixed pseudo-text of made-up words, sliced for question and option text."""
    rng = np.random.default_rng([seed, 7919])
    syll = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"] + ["th", "st", "an", "er", "on", "is"]
    words = []
    for _ in range(4000):
        n = int(rng.integers(1, 5))
        words.append("".join(syll[int(i)] for i in rng.integers(0, len(syll), n)))
    picks = rng.integers(0, len(words), 120_000)
    return " ".join(words[int(i)] for i in picks)


def _lengths(quantiles: list[float], u: np.ndarray) -> np.ndarray:
    qs = np.asarray(quantiles, dtype=float)
    return np.rint(np.interp(u, np.linspace(0, 1, qs.size), qs)).astype(np.int64)


def iter_rows(data: ScaleData, fit: dict[str, Any] | None = None, batch: int = 50_000) -> Iterator[tuple]:
    """``(question, options, letter, answer, discipline, subject, difficulty)`` per seed, in rid order.

    Question and option lengths follow MMLU's; the question names the seed's first KPs
    and its index, so every seed is distinct (its content id is unique).
    """
    fit = load_fit() if fit is None else fit
    text = fit["text"]
    filler = _filler(data.seed)
    flen = len(filler) - 4000
    rng = np.random.default_rng([data.seed, GENERATOR_VERSION, 101])
    disc_names = data.disciplines
    subj_names = data.subjects
    names: dict[int, str] = {}
    for lo in range(0, data.n, batch):
        hi = min(lo + batch, data.n)
        m = hi - lo
        qlen = np.maximum(_lengths(text["question_len_quantiles"], rng.random(m)), 20)
        qoff = rng.integers(0, flen, m)
        olen = np.maximum(_lengths(text["option_len_quantiles"], rng.random((m, 4))), 3)
        ooff = rng.integers(0, flen, (m, 4))
        letter = rng.integers(0, 4, m)
        for j in range(m):
            i = lo + j
            kps = data.link_kp[data.link_ptr[i] : data.link_ptr[i + 1]]
            named = []
            for r in kps[:3]:
                r = int(r)
                nm = names.get(r)
                if nm is None:
                    nm = names[r] = data.kp_name(r)
                named.append(nm)
            start = int(qoff[j])
            question = (f"{filler[start:start + int(qlen[j])].strip()} ({', '.join(named)}; item {i + 1})?")
            opts = tuple(filler[int(a):int(a) + int(b)].strip() for a, b in zip(ooff[j], olen[j]))
            li = int(letter[j])
            yield (question, opts, _LETTERS[li], opts[li], disc_names[int(data.seed_discipline[i])],
                   subj_names[int(data.seed_subject[i])], int(data.seed_difficulty[i]))


def _seed_id_function():
    """The engine's content id (so that ingesting the JSONL gives the same ids as the fast path)."""
    try:
        from linkqa_core.ingest.load import seed_id
    except ImportError:  # pragma: no cover - only while seeds.py is being rewritten
        def seed_id(question: str, options, answer: str) -> str:
            key = "\x1e".join([" ".join(question.split()), "\x1f".join(" ".join(o.split()) for o in options),
                               " ".join(answer.split())])
            return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return seed_id


def write_jsonl(data: ScaleData, path: str | Path, fit: dict[str, Any] | None = None) -> int:
    """Seed rows as MMLU-shaped JSON lines (``question``, ``answer_a``…``d``, ``correct_answer``,
    ``topic``, ``difficulty``), for the ingest benchmark. Returns bytes written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dumps = json.dumps
    with open(path, "w", encoding="utf-8") as fh:
        buf = []
        for question, opts, letter, _answer, _disc, subject, diff in iter_rows(data, fit):
            buf.append(dumps({"question": question, "answer_a": opts[0], "answer_b": opts[1],
                              "answer_c": opts[2], "answer_d": opts[3], "correct_answer": letter,
                              "topic": subject, "difficulty": diff}))
            if len(buf) >= 20_000:
                fh.write("\n".join(buf) + "\n")
                buf = []
        if buf:
            fh.write("\n".join(buf) + "\n")
    return path.stat().st_size


def write_store(data: ScaleData, store, fit: dict[str, Any] | None = None, *, text: bool = True) -> dict[str, int]:
    """The fast path: seeds, KPs and links straight into an empty :class:`Store`, one transaction.

    Seeds get rid ``i + 1``, KPs id ``rank + 1``; the result is what ingest + extract
    would leave (seed text included, so that table scans read realistic pages).
    The ``seed_kps(kp_id)`` index is dropped for the bulk insert and rebuilt in the same
    transaction.
    """
    if store.seeds.count():
        raise ValueError(f"{store.path} already holds seeds; the generator writes into an empty store")
    now = time.time()
    seed_id = _seed_id_function()

    def seed_rows():
        if text:
            for i, (question, opts, letter, answer, disc, subject, diff) in enumerate(iter_rows(data, fit)):
                yield (i + 1, seed_id(question, opts, answer), question, answer, json.dumps(list(opts)), letter,
                       disc, subject, float(diff), "benchmark", now)
        else:
            for i in range(data.n):
                yield (i + 1, f"g{data.seed}-{i + 1}", f"seed {i + 1}", "-", None, None,
                       data.disciplines[int(data.seed_discipline[i])], data.subjects[int(data.seed_subject[i])],
                       float(data.seed_difficulty[i]), "benchmark", now)

    used = np.unique(data.link_kp)
    rid, kp_id = data.link_arrays()
    with store.transaction() as conn:
        conn.execute("DROP INDEX IF EXISTS seed_kps_kp")
        conn.executemany(
            "INSERT INTO seeds (rid, id, question, answer, options, answer_letter, discipline, subject,"
            " difficulty, difficulty_estimated, source, added_at) VALUES (?,?,?,?,?,?,?,?,?,0,?,?)",
            seed_rows(),
        )
        conn.executemany("INSERT INTO kps (id, name) VALUES (?, ?)",
                         ((int(r) + 1, data.kp_name(int(r))) for r in used))
        conn.executemany("INSERT INTO seed_kps (seed_rid, kp_id) VALUES (?, ?)",
                         zip(rid.tolist(), kp_id.tolist()))
        conn.execute("CREATE INDEX IF NOT EXISTS seed_kps_kp ON seed_kps(kp_id)")
        store.bump()  # what the store keeps per data version (counts, KP frequencies) is stale now
    return {"seeds": data.n, "kps": int(used.size), "links": data.n_links}


# -- the fit --------------------------------------------------------------------------------


def load_fit(path: str | Path = FIT_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def fit_digest(fit: dict[str, Any]) -> str:
    """Short hash of the generator-relevant fit, for naming cached data sets."""
    keys = ("zipf_mandelbrot", "heaps", "kps_per_seed", "disciplines", "subjects", "difficulty", "in_discipline", "text")
    blob = json.dumps({k: fit[k] for k in keys}, sort_keys=True) + f"v{GENERATOR_VERSION}"
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def _spectrum(freq: np.ndarray) -> np.ndarray:
    """KPs named by exactly k = 1..39 seeds, then by 40–59, 60–89, 90–134 and 135+ seeds."""
    single = np.bincount(np.minimum(freq, _SPECTRUM_BINS), minlength=_SPECTRUM_BINS + 1)[1:_SPECTRUM_BINS]
    edges = list(_TAIL_EDGES) + [np.inf]
    tail = [int(((freq >= a) & (freq < b)).sum()) for a, b in zip(edges[:-1], edges[1:])]
    return np.r_[single, tail].astype(float)


_TAIL_EDGES = (40, 60, 90, 135)


def _expected_spectrum(s: float, b: float, vocab: float, draws: float) -> np.ndarray:
    from scipy.special import gammaln, pdtr

    lam = draws * zipf_probs(s, b, int(vocab))
    ks = np.arange(1, _SPECTRUM_BINS)
    e = np.exp(np.log(lam)[:, None] * ks[None, :] - lam[:, None] - gammaln(ks + 1)[None, :]).sum(axis=0)
    cdf = [pdtr(a - 1, lam).sum() for a in _TAIL_EDGES]  # expected KPs named by fewer than a seeds
    tail = np.diff(np.r_[cdf, lam.size]).astype(float)
    return np.r_[e, np.maximum(tail, 1e-9)]


def _fit_zipf_mandelbrot(freq: np.ndarray) -> dict[str, Any]:
    from scipy.optimize import minimize

    n_k = _spectrum(freq)
    draws = float(freq.sum())
    d = freq.size

    def nll(x: np.ndarray) -> float:
        s, log_b1, log_v = x
        if not (0.2 < s < 3.0) or log_b1 < 0 or log_v < math.log(d) or log_v > math.log(5e7):
            return 1e18
        e = np.maximum(_expected_spectrum(s, math.exp(log_b1) - 1, math.exp(log_v), draws), 1e-12)
        return float(-(n_k * np.log(e) - e).sum())

    best = None
    for x0 in ((0.8, math.log(3.0), math.log(2.0 * d)), (1.0, math.log(100.0), math.log(3.0 * d)),
               (1.2, math.log(300.0), math.log(6.0 * d))):
        res = minimize(nll, np.array(x0), method="Nelder-Mead",
                       options={"xatol": 1e-5, "fatol": 1e-4, "maxiter": 4000})
        if best is None or res.fun < best.fun:
            best = res
    s, log_b1, log_v = (float(v) for v in best.x)
    e = _expected_spectrum(s, math.exp(log_b1) - 1, math.exp(log_v), draws)
    return {
        "s": round(s, 5), "b": round(math.exp(log_b1) - 1, 3), "vocabulary": int(round(math.exp(log_v))),
        "method": f"Poisson MLE on the frequency spectrum (KPs named by k = 1..{_SPECTRUM_BINS - 1} seeds,"
                  f" then bins from {', '.join(map(str, _TAIL_EDGES))}+), p(r) ∝ (r+b)^-s over r = 1..vocabulary",
        "spectrum_observed": [int(x) for x in n_k[:10]] + ["..."] + [int(x) for x in n_k[-len(_TAIL_EDGES):]],
        "spectrum_expected": [round(float(x), 1) for x in e[:10]] + ["..."]
                             + [round(float(x), 1) for x in e[-len(_TAIL_EDGES):]],
    }


def _fit_loglog(freq: np.ndarray) -> dict[str, Any]:
    f = np.sort(freq)[::-1].astype(float)
    r = np.arange(1, f.size + 1, dtype=float)
    m = f >= 2
    slope, icpt = np.polyfit(np.log(r[m]), np.log(f[m]), 1)
    pred = slope * np.log(r[m]) + icpt
    ss = np.sum((np.log(f[m]) - pred) ** 2)
    st = np.sum((np.log(f[m]) - np.log(f[m]).mean()) ** 2)
    return {"s": round(float(-slope), 5), "intercept": round(float(icpt), 4), "r2": round(float(1 - ss / st), 4),
            "over": "rank-frequency curve, ranks with freq >= 2 (reference only; the generator uses zipf_mandelbrot)"}


def _in_discipline_share(seed_disc: np.ndarray, kp: np.ndarray, n_disc: int) -> float:
    """Share of links, to KPs named by >= 2 seeds, whose KP's majority discipline is the seed's."""
    k = int(kp.max()) + 1 if kp.size else 0
    counts = np.bincount(kp * n_disc + seed_disc, minlength=k * n_disc).reshape(k, n_disc)
    freq = counts.sum(axis=1)
    major = counts.argmax(axis=1)
    m = freq[kp] >= 2
    return float((major[kp[m]] == seed_disc[m]).mean())


def _graph_shape(g) -> dict[str, Any]:
    """Edges, degrees, components and Louvain modularity: to compare real and generated."""
    from linkqa_core.graph.stats import graph_stats

    st = graph_stats(g, communities=True, max_community_edges=10**7)
    com = st.get("communities") or {}
    return {"nodes": st["nodes"], "edges": st["edges"], "mean_degree": st["mean_degree"],
            "degree_median": st["degree"]["median"], "degree_p99": round(st["degree"]["p99"], 1),
            "degree_max": st["degree"]["max"], "largest_component_share": st["largest_component_share"],
            "communities": com.get("count"), "modularity": com.get("modularity")}


def refit(data_path: str | Path = MMLU_PATH, out_path: str | Path | None = FIT_PATH, *, verbose: bool = True) -> dict[str, Any]:
    """Ingest MMLU into a temporary store, run the offline extractor and fit the model."""
    from linkqa_core import seeds as seeds_mod
    from linkqa_core.graph.build import build_graph, graph_from_links
    from linkqa_core.kps.extract import run_extraction
    from linkqa_core.store import Store

    def say(msg: str) -> None:
        if verbose:
            print(msg, file=sys.stderr)

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "mmlu.db")
        report = seeds_mod.ingest(store, str(data_path))
        say(f"ingested {report.added} seeds ({len(report.bad_rows)} bad rows)")
        run_extraction(store)
        g = build_graph(store)
        with store.reading() as conn:
            cur = conn.execute("SELECT seed_rid, kp_id FROM seed_kps ORDER BY seed_rid")
            cur.row_factory = None
            links = np.array(cur.fetchall(), dtype=np.int64)
            cur = conn.execute("SELECT rid, discipline, subject, difficulty, question, options FROM seeds")
            cur.row_factory = None
            seed_rows = cur.fetchall()
        store.close()

    disc_names = sorted({r[1] for r in seed_rows})
    d_index = {d: i for i, d in enumerate(disc_names)}
    n_seeds = len(seed_rows)
    disc_of = {r[0]: d_index[r[1]] for r in seed_rows}
    disc_count = np.bincount([d_index[r[1]] for r in seed_rows], minlength=len(disc_names))
    subjects: dict[str, dict[str, int]] = {d: {} for d in disc_names}
    diff_mix = {d: [0] * 5 for d in disc_names}
    for _rid, disc, subject, diff, _q, _o in seed_rows:
        subjects[disc][subject or disc] = subjects[disc].get(subject or disc, 0) + 1
        level = int(min(5, max(1, round(diff)))) if diff is not None else 3
        diff_mix[disc][level - 1] += 1
    per_seed = np.bincount(np.unique(links[:, 0], return_counts=True)[1], minlength=KMAX + 1)
    hist = {str(k): round(float(per_seed[k] / per_seed.sum()), 6) for k in range(KMIN, KMAX + 1)}
    freq = g.freq.astype(np.int64)

    say("fitting the Zipf–Mandelbrot law (spectrum MLE)…")
    zm = _fit_zipf_mandelbrot(freq)
    loglog = _fit_loglog(freq)

    # Heaps: distinct KPs in random subsamples of seeds
    rng = np.random.default_rng(0)
    rids = np.unique(links[:, 0])
    points = []
    for frac in (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.85, 1.0):
        pts = []
        for rep in range(3 if frac < 1 else 1):
            sub = rng.choice(rids, int(round(frac * rids.size)), replace=False)
            pts.append(np.unique(links[np.isin(links[:, 0], sub), 1]).size)
        points.append((int(round(frac * rids.size)), float(np.mean(pts))))
    # anchored at the full set, slope of the upper part of the curve (it bends down as the
    # fixed corpus saturates; the upper slope is the one that extrapolates)
    upper = [p for p in points if p[0] >= rids.size / 4]
    beta = float(np.polyfit(np.log([p[0] for p in upper]), np.log([p[1] for p in upper]), 1)[0])
    beta_all = float(np.polyfit(np.log([p[0] for p in points]), np.log([p[1] for p in points]), 1)[0])
    log_k = math.log(points[-1][1]) - beta * math.log(points[-1][0])

    # text lengths
    qlen = np.array([len(r[4]) for r in seed_rows])
    olen = np.array([len(o) for r in seed_rows if r[5] for o in json.loads(r[5])])
    qs = np.linspace(0, 1, 101)

    kp_dense = np.searchsorted(g.kp_ids, links[:, 1])
    seed_disc = np.array([disc_of[r] for r in links[:, 0]], dtype=np.int64)
    target_share = _in_discipline_share(seed_disc, kp_dense, len(disc_names))

    fit: dict[str, Any] = {
        "source": "shared/data/mmlu_test.jsonl through linkqa_core.ingest.load.ingest + kps.run_extraction (offline)",
        "fitted_at": time.strftime("%Y-%m-%d"),
        "observed": {
            "seeds": n_seeds, "links": int(links.shape[0]), "kps": int(freq.size), "edges": g.n_edges,
            "max_freq": int(freq.max()), "singleton_share": round(float((freq == 1).mean()), 4),
            "freq_at_rank": {str(r): int(np.sort(freq)[::-1][r - 1]) for r in (1, 4, 10, 100, 1000, 10000)},
        },
        "zipf_mandelbrot": zm,
        "zipf_loglog": loglog,
        "heaps": {"K": round(float(math.exp(log_k)), 5), "beta": round(float(beta), 5),
                  "points": [[n, round(d, 1)] for n, d in points],
                  "beta_all_points": round(beta_all, 5),
                  "method": "D(N) = K·N^beta through the full-set point, beta = log-log slope of distinct KPs"
                            " on seeds over random subsamples of at least a quarter of the MMLU seeds"},
        "kps_per_seed": {"histogram": hist, "mean": round(float(links.shape[0] / rids.size), 5)},
        "disciplines": {d: round(float(c / disc_count.sum()), 6) for d, c in zip(disc_names, disc_count)},
        "subjects": subjects,
        "difficulty": {d: [round(x / max(sum(v), 1), 6) for x in v] for d, v in diff_mix.items()},
        "in_discipline": {"target": round(target_share, 5), "q": None,
                          "statistic": "share of links to KPs named by >= 2 seeds whose KP's majority discipline"
                                       " is the seed's"},
        "text": {"question_len_quantiles": [round(float(x), 1) for x in np.quantile(qlen, qs)],
                 "option_len_quantiles": [round(float(x), 1) for x in np.quantile(olen, qs)]},
    }

    # calibrate q at the MMLU size: simulated statistic on a grid, closest wins
    say("calibrating the in-discipline share q…")
    best_q, best_err, grid = 0.0, 1e9, []
    for q in np.round(np.arange(0.40, 1.0001, 0.025), 3):
        sim = generate(n_seeds, seed=12345, fit=fit, q=float(q))
        rid, _ = sim.link_arrays()
        share = _in_discipline_share(sim.seed_discipline[rid - 1].astype(np.int64), sim.link_kp, len(disc_names))
        grid.append([float(q), round(share, 4)])
        if abs(share - target_share) < best_err:
            best_q, best_err = float(q), abs(share - target_share)
    fit["in_discipline"]["q"] = best_q
    fit["in_discipline"]["grid"] = grid

    # what the model gives at the MMLU size, next to what was observed
    say("checking the graph the model gives at the MMLU size…")
    sim = generate(n_seeds, seed=12345, fit=fit)
    sf = np.bincount(sim.link_kp)
    sf = np.sort(sf[sf > 0])[::-1]
    rid, kp_id = sim.link_arrays()
    sim_graph = graph_from_links(rid, kp_id, np.r_[0, sim.seed_discipline],
                                 np.r_[np.nan, sim.seed_difficulty.astype(float)], sim.disciplines)
    fit["observed"]["graph"] = _graph_shape(g)
    fit["check_at_mmlu_size"] = {
        "vocabulary": sim.vocab, "kps": int(sf.size), "links": sim.n_links, "max_freq": int(sf[0]),
        "singleton_share": round(float((sf == 1).mean()), 4),
        "freq_at_rank": {str(r): int(sf[r - 1]) for r in (1, 4, 10, 100, 1000, 10000) if r <= sf.size},
        "graph": _graph_shape(sim_graph),
    }
    if out_path is not None:
        Path(out_path).write_text(json.dumps(fit, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        say(f"wrote {out_path}")
    return fit


# -- command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--refit", action="store_true", help="recompute zipf_fit.json from the MMLU file")
    ap.add_argument("--data", default=str(MMLU_PATH), help="MMLU JSONL for --refit")
    ap.add_argument("--size", default="10k", help="seeds to generate: 10k, 100k, 1M, or a number")
    ap.add_argument("--seed", type=int, default=0, help="random seed (same seed, same data)")
    ap.add_argument("--db", default=None, help="write seeds, KPs and links into this (new) SQLite store")
    ap.add_argument("--jsonl", default=None, help="write MMLU-shaped seed rows to this JSONL file")
    args = ap.parse_args(argv)
    if args.refit:
        fit = refit(args.data, FIT_PATH)
        print(json.dumps({k: fit[k] for k in ("zipf_mandelbrot", "heaps", "in_discipline", "observed",
                                               "check_at_mmlu_size")}, indent=1, ensure_ascii=False))
        if not (args.db or args.jsonl):
            return 0
    n = parse_size(args.size)
    t = time.perf_counter()
    data = generate(n, seed=args.seed)
    print(f"generated {size_label(n)} seeds in {time.perf_counter() - t:.1f} s: {data.summary()}", file=sys.stderr)
    if args.db:
        from linkqa_core.store import Store

        t = time.perf_counter()
        with Store(args.db) as store:
            out = write_store(data, store)
        print(f"wrote {out} to {args.db} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    if args.jsonl:
        t = time.perf_counter()
        size = write_jsonl(data, args.jsonl)
        print(f"wrote {size / 1e6:.1f} MB to {args.jsonl} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
