"""The LLM knowledge-point extractor (DESIGN §2): several seeds per request, JSON out, no holes.

It plugs into :func:`~linkqa_core.kps.run_extraction` like the offline extractor::

    extractor = LLMExtractor(load_settings(), store=store, batch_size=8)
    report = run_extraction(store, extractor)
    report.by_path      # {"llm": 1100, "llm-single": 30, "offline-fallback": 9, "failed": 0}

How it works, built for small and imperfect models as much as for big ones:

1. **Batches.** Seeds go to the model ``batch_size`` at a time, each a numbered block
   (question, options, answer, subject); the model answers ``{"seeds": [{"index": i,
   "kps": [...], "discipline": ..., "difficulty": 1-5}]}`` (asked for in the endpoint's
   structured-output mode). Answers are read leniently
   (:func:`~linkqa_core.llm.replies.loads_lenient`: fences, prose, ``<think>``; a bare
   list of entries; entries without an index when there is one per seed).
2. **One at a time.** A seed the batch answer left out, gave fewer than two KPs, or
   whose request failed is asked again on its own (a one-seed prompt: shorter to write,
   harder to lose).
3. **Offline fallback.** A seed that still has no usable answer gets the offline
   extractor's KPs (:class:`~linkqa_core.kps.offline.OfflineExtractor`, run over all the
   seeds so that its names match the corpus), so the graph has no holes; ``fallback=False``
   leaves it out instead.

KPs that merely repeat the prompt's own examples (:data:`EXAMPLE_KPS`) and do not occur
in the seed are dropped -- a small model copies them. Per seed, names are kept as
written, de-duplicated by their key (:func:`~linkqa_core.kps.normalize_kp`), empty and
over-long ones dropped, more than ``MAX_KPS`` cut; an unknown discipline becomes ``None``
(the seed keeps its own); difficulty is clamped to 1–5.

After :meth:`LLMExtractor.extract`, :attr:`~LLMExtractor.by_path` counts the seeds of
each path and :attr:`~LLMExtractor.failures` lists every seed the model could not
answer (``line`` = 1-based position, ``reason`` says why and whether the offline KPs
stand in). With ``store`` every request is cached, so re-running costs no call.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from ..errors import ConfigError
from ..llm.replies import loads_lenient
from ..records import BadRow, Extraction, Seed
from ..tasks import ReplyError, json_request
from ..taxonomy import DISCIPLINES
from .names import MAX_KPS, MIN_KPS, normalize_kp

__all__ = ["LLMExtractor", "ExtractionStats", "KP_SCHEMA", "EXAMPLE_KPS", "PATHS", "render_batch_prompt",
           "parse_batch"]

Progress = Callable[[int, int, str], None]
Found = tuple[tuple[str, ...], Optional[str], Optional[float]]

PATHS = ("llm", "llm-single", "offline-fallback", "failed")
"""How a seed got its KPs: the batch answer, a one-seed request, the offline extractor, or not at all."""
EXAMPLE_KPS = ("Bayes' theorem", "Le Chatelier's principle", "price elasticity of demand")
"""The examples the prompt gives of a good KP name (models copy them)."""

_MAX_KP_CHARS = 80
_MAX_QUESTION_CHARS = 4000
_DISCIPLINE_BY_LOWER = {d.lower(): d for d in DISCIPLINES}
_EXAMPLE_KEYS = {normalize_kp(k) for k in EXAMPLE_KPS}

KP_SCHEMA: dict[str, Any] = {
    "name": "seed_knowledge_points",
    "schema": {
        "type": "object",
        "properties": {
            "seeds": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer"},
                        "kps": {"type": "array", "items": {"type": "string"}, "minItems": MIN_KPS,
                                "maxItems": MAX_KPS},
                        "discipline": {"type": "string", "enum": list(DISCIPLINES)},
                        "difficulty": {"type": "integer", "minimum": 1, "maximum": 5},
                    },
                    "required": ["index", "kps", "discipline", "difficulty"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["seeds"],
        "additionalProperties": False,
    },
}

_SYSTEM = "You index exam questions by the knowledge they test. You answer with JSON only."

_INSTRUCTIONS = """Name the knowledge points that each of the {n} exam question(s) below tests.

For every seed give:
- "kps": {lo} to {hi} knowledge points, each a short canonical concept name as a textbook index
  would list it ({examples}):
  not a sentence, not the answer itself, most important first;
- "discipline": exactly one of: {disciplines};
- "difficulty": 1 (recall of one fact) to 5 (expert-level, multi-step reasoning).

Answer with JSON only, one entry per seed, using the seed numbers below:
{{"seeds": [{{"index": 1, "kps": ["...", "..."], "discipline": "...", "difficulty": 3}}]}}

{seeds}"""


@dataclass
class ExtractionStats:
    """What the last :meth:`LLMExtractor.extract` cost and how it went."""

    seeds: int = 0
    extracted: int = 0
    failed: int = 0
    requests: int = 0
    singles: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def _format_seed(number: int, seed: Seed) -> str:
    question = seed.question.strip()
    if len(question) > _MAX_QUESTION_CHARS:
        question = question[:_MAX_QUESTION_CHARS] + " …"
    lines = [f"Seed {number} (subject: {seed.subject or seed.discipline}):", f"Question: {question}"]
    if seed.options:
        lines.append("Options: " + "; ".join(f"{chr(65 + j)}. {o}" for j, o in enumerate(seed.options)))
    lines.append(f"Answer: {seed.answer}")
    return "\n".join(lines)


def render_batch_prompt(seeds: Sequence[Seed]) -> str:
    """The user message for one batch; seeds are numbered from 1."""
    return _INSTRUCTIONS.format(
        n=len(seeds), lo=MIN_KPS, hi=MAX_KPS, disciplines=", ".join(DISCIPLINES),
        examples=", ".join(f'"{k}"' for k in EXAMPLE_KPS),
        seeds="\n\n".join(_format_seed(i + 1, s) for i, s in enumerate(seeds)),
    )


# -- parsing ----------------------------------------------------------------------------


def _seed_text(seed: Seed) -> str:
    text = " ".join([seed.question, *(seed.options or ()), seed.answer]).lower()
    return " ".join(text.replace("\u2019", "'").split())


def _clean_kps(raw: Sequence[Any], seed_text: Optional[str]) -> list[str]:
    """Names as written (spacing tidied), one per key, without copied prompt examples."""
    names: list[str] = []
    keys: set[str] = set()
    for item in raw:
        if not isinstance(item, str):
            continue
        name = " ".join(item.split()).strip(" .,;:")
        key = normalize_kp(name)
        if not key or len(name) > _MAX_KP_CHARS or key in keys:
            continue
        if key in _EXAMPLE_KEYS and seed_text is not None and key not in seed_text \
                and name.lower().replace("\u2019", "'") not in seed_text:
            continue
        keys.add(key)
        names.append(name)
    return names[:MAX_KPS]


def _discipline(raw: Any) -> Optional[str]:
    if not isinstance(raw, str):
        return None
    return _DISCIPLINE_BY_LOWER.get(" ".join(raw.split()).lower())


def _difficulty(raw: Any) -> Optional[float]:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        try:
            raw = float(raw.strip())
        except ValueError:
            return None
    if not isinstance(raw, (int, float)) or raw != raw or raw in (float("inf"), float("-inf")):
        return None
    return float(min(5, max(1, round(raw))))


def _entries(data: Any, n: int) -> Optional[list[Any]]:
    """The list of per-seed entries in an answer, however the model shaped it."""
    if isinstance(data, dict) and isinstance(data.get("seeds"), list):
        return data["seeds"]
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and "kps" in data and n == 1:
        return [data]
    return None


def _index(entry: dict, k: int, count: int, n: int) -> Any:
    index = entry.get("index")
    if index is None and count == n:
        return k  # one entry per seed, in order, numbers left out
    if isinstance(index, str) and index.strip().isdigit():
        return int(index.strip())
    if isinstance(index, float) and index.is_integer():
        return int(index)
    return index


def parse_batch(content: Optional[str], n: int, seeds: Optional[Sequence[Seed]] = None
                ) -> tuple[dict[int, Found], list[str]]:
    """Read one batch answer for seeds ``1..n``, leniently.

    Returns ``(found, problems)``: ``found`` maps a seed number to its cleaned
    ``(kps, discipline, difficulty)``; ``problems`` says what is wrong (empty when every
    seed has a usable entry). With ``seeds`` (the batch, in order), KPs copied from the
    prompt's examples that the seed does not mention are dropped.
    """
    try:
        data = loads_lenient(content)
    except ReplyError as err:
        return {}, ["the answer is empty" if str(err) == "empty answer" else f"it is {err}"]
    entries = _entries(data, n)
    if entries is None:
        return {}, ['it is not an object with a "seeds" list']
    found: dict[int, Found] = {}
    problems: list[str] = []
    for k, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            problems.append(f"entry {k} is not an object")
            continue
        index = _index(entry, k, len(entries), n)
        if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= n:
            problems.append(f"entry {k} has index {index!r}, not a seed number 1-{n}")
            continue
        if index in found:
            continue
        raw_kps = entry.get("kps")
        if isinstance(raw_kps, str):
            raw_kps = [p for p in re.split(r"[;,\n]", raw_kps)]
        if not isinstance(raw_kps, list):
            problems.append(f'seed {index}: "kps" is not a list of names')
            continue
        text = _seed_text(seeds[index - 1]) if seeds is not None and index <= len(seeds) else None
        kps = _clean_kps(raw_kps, text)
        if len(kps) < MIN_KPS:
            copied = text is not None and len(_clean_kps(raw_kps, None)) >= MIN_KPS
            why = "only the prompt's own example KPs" if copied else f"{len(kps)}"
            problems.append(f"seed {index}: needs {MIN_KPS}-{MAX_KPS} knowledge points, got {why}")
            continue
        found[index] = (tuple(kps), _discipline(entry.get("discipline")), _difficulty(entry.get("difficulty")))
    missing = [i for i in range(1, n + 1) if i not in found and not any(p.startswith(f"seed {i}:") for p in problems)]
    if missing:
        problems.append(f"seed(s) {', '.join(map(str, missing))} missing from the answer")
    return found, problems


def _why(n: int, problems: list[str]) -> str:
    """The reason seed number ``n`` of a batch got no entry."""
    own = next((p.split(": ", 1)[1] for p in problems if p.startswith(f"seed {n}:")), None)
    if own:
        return own
    general = [p for p in problems if not p.startswith(("seed ", "seed(s) ", "entry "))]
    return "; ".join(general) if general else "left out of the answer"


# -- the extractor ------------------------------------------------------------------------


class LLMExtractor:
    """KPs, discipline and difficulty of seeds from an OpenAI-compatible model.

    ``settings`` is an :class:`~linkqa_core.llm.settings.LLMSettings`; ``store`` turns on
    the request cache and the call log; ``client`` reuses an open
    :class:`~linkqa_core.llm.client.LLMClient` (not closed here). ``fallback`` gives seeds
    the model could not answer the offline extractor's KPs.
    """

    name = "llm"

    def __init__(self, settings: Any, store: Any = None, batch_size: int = 8, client: Any = None, *,
                 run_id: Optional[int] = None, temperature: Optional[float] = None,
                 max_tokens: Optional[int] = None, fallback: bool = True):
        if client is None and (settings is None or not getattr(settings, "configured", False)):
            raise ConfigError("the LLM extractor needs an endpoint and a model: set OPENAI_BASE_URL "
                              "(or OPENAI_API_KEY) and LINKQA_MODEL, or use the offline extractor")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 100:
            raise ConfigError(f"seeds per LLM request (batch size) must be 1-100, got {batch_size}")
        self.settings = settings if settings is not None else client.settings
        self.store = store
        self.batch_size = batch_size
        self.client = client
        self.run_id = run_id
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.fallback = fallback
        self.failures: list[BadRow] = []
        self.by_path: dict[str, int] = {}
        self.stats = ExtractionStats()

    def __repr__(self) -> str:
        return f"<LLMExtractor {getattr(self.settings, 'model', '?')!r} batch_size={self.batch_size}>"

    def _request(self, seeds: Sequence[Seed], stage: str) -> Any:
        messages = [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": render_batch_prompt(seeds)}]
        return json_request(messages, KP_SCHEMA, stage=stage, run_id=self.run_id, temperature=self.temperature,
                            max_tokens=self.max_tokens)

    def _count(self, result: Any) -> None:
        s = self.stats
        if result.cached:
            s.cached += 1
        elif result.attempts:
            s.requests += 1
        s.prompt_tokens += result.prompt_tokens or 0
        s.completion_tokens += result.completion_tokens or 0

    def extract(self, seeds: Sequence[Seed], progress: Progress | None = None, *,
                stop_event: threading.Event | None = None) -> list[Extraction]:
        """Extractions for the seeds, in input order (fallback ones included).

        Raises :class:`~linkqa_core.errors.LLMError` when the endpoint refuses every
        request (wrong key, model or URL) or is down; any other failure is per seed.
        """
        from ..llm.client import LLMClient

        self.failures, self.by_path = [], {}
        self.stats = ExtractionStats(seeds=len(seeds))
        total = len(seeds)
        if total == 0:
            return []
        results: dict[int, Found] = {}
        path: dict[int, str] = {}
        failed: dict[int, str] = {}
        own = self.client is None
        client = LLMClient(self.settings, self.store) if own else self.client
        try:
            batches = [list(range(k, min(k + self.batch_size, total))) for k in range(0, total, self.batch_size)]
            self._pass(client, seeds, batches, "kps", "llm", results, path, failed, progress, stop_event)
            retry = sorted(i for i in failed if not failed[i].startswith("not asked"))
            if retry:
                self.stats.singles = len(retry)
                for i in retry:
                    failed[i] = f"{failed[i]}; asked alone: "
                self._pass(client, seeds, [[i] for i in retry], "kps-single", "llm-single", results, path, failed,
                           progress, stop_event)
        finally:
            if own:
                client.close()
        if self.fallback and failed:
            self._fall_back(seeds, failed, results, path)
        for i in range(total):
            if i not in results and i not in failed:
                failed[i] = "no usable answer from the model"
        self.failures = [BadRow(line=i + 1, reason=f"seed {seeds[i].id}: {failed[i]}") for i in sorted(failed)]
        counts = {p: sum(1 for v in path.values() if v == p) for p in PATHS[:3]}
        counts["failed"] = total - len(results)
        self.by_path = {p: n for p, n in counts.items() if n}
        self.stats.extracted = len(results)
        self.stats.failed = counts["failed"]
        if progress:
            progress(total, total, ", ".join(f"{k} {v}" for k, v in self.by_path.items()))
        return [Extraction(seeds[i].id, *results[i]) for i in sorted(results)]

    def _pass(self, client: Any, seeds: Sequence[Seed], batches: list[list[int]], stage: str, label: str,
              results: dict[int, Found], path: dict[int, str], failed: dict[int, str],
              progress: Progress | None, stop_event: threading.Event | None) -> None:
        """Ask for ``batches``; seeds with a usable entry go to ``results`` under ``label``."""
        total = len(seeds)

        def on_result(bi: int, res: Any) -> None:
            self._count(res)
            batch = batches[bi]
            if res.error:
                for i in batch:
                    failed[i] = failed.get(i, "") + f"the request failed: {res.error}"
            else:
                found, problems = parse_batch(res.content, len(batch), [seeds[i] for i in batch])
                for n, i in enumerate(batch, 1):
                    if n in found:
                        results[i], path[i] = found[n], label
                        failed.pop(i, None)
                    else:
                        failed[i] = failed.get(i, "") + _why(n, problems)
            if progress:
                progress(len(results), total, f"{label}: {self.stats.requests + self.stats.cached} requests")

        reqs = [self._request([seeds[i] for i in b], stage) for b in batches]
        out = client.complete_many(reqs, on_result=on_result, stop_event=stop_event)
        for res, batch in zip(out, batches):
            if not res.started:  # budget reached or stopped: never asked
                for i in batch:
                    if i not in results:
                        failed[i] = f"not asked: {res.error}"

    def _fall_back(self, seeds: Sequence[Seed], failed: dict[int, str], results: dict[int, Found],
                   path: dict[int, str]) -> None:
        """The offline extractor's KPs for the seeds the model could not answer (run over
        every seed, so that its names are the corpus's own)."""
        from .offline import OfflineExtractor

        offline = {e.seed_id: e for e in OfflineExtractor().extract(list(seeds))}
        for i in sorted(failed):
            e = offline.get(seeds[i].id)
            if e is None or not e.kps or failed[i].startswith("not asked"):
                continue
            results[i] = (tuple(e.kps), e.discipline, e.difficulty)
            path[i] = "offline-fallback"
            failed[i] += " -- the offline extractor's KPs stand in"
