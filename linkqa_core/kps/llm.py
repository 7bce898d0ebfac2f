"""The LLM knowledge-point extractor (DESIGN §2): several seeds per request, JSON schema out.

It plugs into :func:`~linkqa_core.kps.run_extraction` like the offline extractor::

    extractor = LLMExtractor(LLMSettings.from_env(), store=store, batch_size=8)
    report = run_extraction(store, extractor)
    extractor.failures          # [BadRow(line=<1-based seed position>, reason=...)]

How it works. Seeds go to the model in batches of ``batch_size``, each a numbered list
(question, options, answer, subject); the model answers ``{"seeds": [{"index": i, "kps":
[...], "discipline": ..., "difficulty": 1-5}]}`` under a JSON-schema ``response_format``.
Batches run concurrently through the shared :class:`~linkqa_core.llm.LLMClient` (its
``concurrency``, retries, budget and cache). Answers are parsed strictly: an answer that
is not that JSON object, or leaves seeds out or gives them fewer than two KPs, gets ONE
repair request (the broken answer and what is wrong with it, "valid JSON only"); seeds
still without a usable entry afterwards become :attr:`LLMExtractor.failures`, never
silently dropped. Per seed: KP names are normalised (:func:`~linkqa_core.kps.normalize_kp`),
empty and over-long ones dropped, duplicates folded, more than ``MAX_KPS`` cut; an unknown
discipline becomes ``None`` (the seed keeps its own); difficulty is clamped to 1–5.

With ``store`` given every request is cached, repairs included, so re-running an
extraction costs no call.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from ..errors import ConfigError
from .names import MAX_KPS, MIN_KPS, normalize_kp
from ..records import BadRow, Extraction, Seed
from ..taxonomy import DISCIPLINES

__all__ = ["LLMExtractor", "ExtractionStats", "KP_SCHEMA", "render_batch_prompt", "parse_batch"]

Progress = Callable[[int, int, str], None]

_MAX_KP_CHARS = 80
_MAX_QUESTION_CHARS = 4000
_MAX_BROKEN_CHARS = 8000
_DISCIPLINE_BY_LOWER = {d.lower(): d for d in DISCIPLINES}

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
  would list it ("Bayes' theorem", "Le Chatelier's principle", "price elasticity of demand"):
  not a sentence, not the answer itself, most important first;
- "discipline": exactly one of: {disciplines};
- "difficulty": 1 (recall of one fact) to 5 (expert-level, multi-step reasoning).

Answer with JSON only, one entry per seed, using the seed numbers below:
{{"seeds": [{{"index": 1, "kps": ["...", "..."], "discipline": "...", "difficulty": 3}}]}}

{seeds}"""

_REPAIR = """That answer cannot be used: {error}.
Reply again with valid JSON only (no prose, no code fences), in exactly this form:
{{"seeds": [{{"index": <seed number>, "kps": ["{lo} to {hi} short concept names"], "discipline": "<one of the listed disciplines>", "difficulty": <1-5>}}]}}
Give an entry for seed(s) {wanted}."""


@dataclass
class ExtractionStats:
    """What the last :meth:`LLMExtractor.extract` cost and how it went."""

    seeds: int = 0
    extracted: int = 0
    failed: int = 0
    requests: int = 0
    repairs: int = 0
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
        seeds="\n\n".join(_format_seed(i + 1, s) for i, s in enumerate(seeds)),
    )


# -- parsing ----------------------------------------------------------------------------

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


class _Malformed(ValueError):
    pass


def _clean_kps(raw: Any) -> list[str]:
    names: list[str] = []
    for item in raw:
        if not isinstance(item, str):
            continue
        name = normalize_kp(item)
        if not name or len(name) > _MAX_KP_CHARS or name in names:
            continue
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
    if not isinstance(raw, (int, float)) or raw != raw:  # NaN
        return None
    return float(min(5, max(1, round(raw))))


def parse_batch(content: str, n: int) -> tuple[dict[int, tuple[tuple[str, ...], Optional[str], Optional[float]]],
                                                list[str]]:
    """Strictly parse one batch answer for seeds ``1..n``.

    Returns ``(found, problems)``: ``found`` maps a seed number to its cleaned
    ``(kps, discipline, difficulty)``; ``problems`` says what is wrong (empty when every
    seed has a usable entry). An answer that is not the expected JSON object gives no
    entries and one problem.
    """
    text = (content or "").strip()
    if not text:
        return {}, ["the answer is empty"]
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        return {}, [f"it is not valid JSON ({err.msg} at line {err.lineno} column {err.colno})"]
    if not isinstance(data, dict) or not isinstance(data.get("seeds"), list):
        return {}, ['it is not an object with a "seeds" list']
    found: dict[int, tuple[tuple[str, ...], Optional[str], Optional[float]]] = {}
    problems: list[str] = []
    for k, entry in enumerate(data["seeds"], 1):
        if not isinstance(entry, dict):
            problems.append(f"entry {k} is not an object")
            continue
        index = entry.get("index")
        if isinstance(index, float) and index.is_integer():
            index = int(index)
        if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= n:
            problems.append(f"entry {k} has index {index!r}, not a seed number 1-{n}")
            continue
        if index in found:
            continue
        raw_kps = entry.get("kps")
        if not isinstance(raw_kps, list):
            problems.append(f'seed {index}: "kps" is not a list of names')
            continue
        kps = _clean_kps(raw_kps)
        if len(kps) < MIN_KPS:
            problems.append(f"seed {index}: needs {MIN_KPS}-{MAX_KPS} knowledge points, got {len(kps)}")
            continue
        found[index] = (tuple(kps), _discipline(entry.get("discipline")), _difficulty(entry.get("difficulty")))
    missing = [i for i in range(1, n + 1) if i not in found and not any(p.startswith(f"seed {i}:") for p in problems)]
    if missing:
        problems.append(f"seed(s) {', '.join(map(str, missing))} missing from the answer")
    return found, problems


# -- the extractor ------------------------------------------------------------------------


class LLMExtractor:
    """KPs, discipline and difficulty of seeds from an OpenAI-compatible model.

    ``settings`` is an :class:`~linkqa_core.llm.LLMSettings`; ``store`` (a
    :class:`~linkqa_core.store.Store`) turns on the request cache and the call log;
    ``client`` reuses an open :class:`~linkqa_core.llm.LLMClient` (not closed here).
    After :meth:`extract`, :attr:`failures` lists the seeds that got no usable answer
    (``line`` = 1-based position in the input, ``reason`` = "seed <id>: why") and
    :attr:`stats` what it cost.
    """

    name = "llm"

    def __init__(self, settings: Any, store: Any = None, batch_size: int = 8, client: Any = None, *,
                 run_id: Optional[int] = None, temperature: Optional[float] = None,
                 max_tokens: Optional[int] = None):
        if client is None and (settings is None or not getattr(settings, "configured", False)):
            raise ConfigError("the LLM extractor needs an endpoint and a model: set OPENAI_BASE_URL "
                              "(or OPENAI_API_KEY) and LINKQA_MODEL, or use the offline extractor")
        if not isinstance(batch_size, int) or not 1 <= batch_size <= 100:
            raise ConfigError(f"seeds per LLM request (batch size) must be 1-100, got {batch_size}")
        self.settings = settings if settings is not None else client.settings
        self.store = store
        self.batch_size = batch_size
        self.client = client
        self.run_id = run_id
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.failures: list[BadRow] = []
        self.stats = ExtractionStats()

    def __repr__(self) -> str:
        return f"<LLMExtractor {getattr(self.settings, 'model', '?')!r} batch_size={self.batch_size}>"

    # -- requests ------------------------------------------------------------------------

    def _request(self, messages: list[dict[str, str]], *, stage: str, variant: int = 0) -> Any:
        from ..llm.client import ChatRequest

        return ChatRequest(messages=messages, temperature=self.temperature, max_tokens=self.max_tokens,
                           response_format={"type": "json_schema", "json_schema": KP_SCHEMA},
                           stage=stage, run_id=self.run_id, variant=variant)

    def _first_messages(self, batch: Sequence[Seed]) -> list[dict[str, str]]:
        return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": render_batch_prompt(batch)}]

    def _count(self, result: Any) -> None:
        s = self.stats
        if result.cached:
            s.cached += 1
        elif result.attempts:
            s.requests += 1
        s.prompt_tokens += result.prompt_tokens or 0
        s.completion_tokens += result.completion_tokens or 0

    # -- the protocol ------------------------------------------------------------------------

    def extract(self, seeds: Sequence[Seed], progress: Progress | None = None, *,
                stop_event: threading.Event | None = None) -> list[Extraction]:
        """Extractions for the seeds that got a usable answer, in input order.

        Raises :class:`~linkqa_core.errors.LLMError` when the endpoint refuses every
        request (wrong key, model or URL); any other failure is per seed, in
        :attr:`failures`.
        """
        from ..llm.client import LLMClient

        self.failures = []
        self.stats = ExtractionStats(seeds=len(seeds))
        total = len(seeds)
        if total == 0:
            return []
        batches = [list(range(k, min(k + self.batch_size, total))) for k in range(0, total, self.batch_size)]
        results: dict[int, tuple[tuple[str, ...], Optional[str], Optional[float]]] = {}
        failed: dict[int, str] = {}
        done = 0
        own = self.client is None
        client = LLMClient(self.settings, self.store) if own else self.client
        try:
            first_msgs = [self._first_messages([seeds[i] for i in b]) for b in batches]
            reqs = [self._request(m, stage="kps") for m in first_msgs]
            to_repair: list[tuple[int, str, list[str]]] = []  # (batch, broken content, problems)

            def on_first(bi: int, res: Any) -> None:
                nonlocal done
                self._count(res)
                batch = batches[bi]
                if res.error:
                    for i in batch:
                        failed[i] = f"LLM request failed: {res.error}"
                    done += len(batch)
                else:
                    found, problems = parse_batch(res.content, len(batch))
                    for number, value in found.items():
                        results[batch[number - 1]] = value
                    done += len(found)
                    if problems:
                        to_repair.append((bi, res.content, problems))
                if progress:
                    progress(done, total, f"{self.stats.requests + self.stats.cached}/{len(batches)} requests")

            first = client.complete_many(reqs, on_result=on_first, stop_event=stop_event)
            self._mark_unstarted(first, batches, results, failed)

            repair_plan = []
            for bi, broken, problems in sorted(to_repair):
                wanted = [n for n in range(1, len(batches[bi]) + 1) if batches[bi][n - 1] not in results]
                if not wanted:
                    continue
                error = "; ".join(problems)
                if len(error) > 600:
                    error = error[:600] + " …"
                shown = broken if len(broken) <= _MAX_BROKEN_CHARS else broken[:_MAX_BROKEN_CHARS] + " …"
                messages = first_msgs[bi] + [
                    {"role": "assistant", "content": shown},
                    {"role": "user", "content": _REPAIR.format(error=error, lo=MIN_KPS, hi=MAX_KPS,
                                                               wanted=", ".join(map(str, wanted)))},
                ]
                repair_plan.append((bi, wanted, error, self._request(messages, stage="kps-repair", variant=1)))

            def on_repair(k: int, res: Any) -> None:
                nonlocal done
                self._count(res)
                self.stats.repairs += 1
                bi, wanted, first_error, _ = repair_plan[k]
                batch = batches[bi]
                if res.error:
                    for n in wanted:
                        failed[batch[n - 1]] = f"malformed answer ({first_error}); the repair request failed: {res.error}"
                    done += len(wanted)
                else:
                    found, problems = parse_batch(res.content, len(batch))
                    for n in wanted:
                        if n in found:
                            results[batch[n - 1]] = found[n]
                        else:
                            why = next((p.split(": ", 1)[1] for p in problems if p.startswith(f"seed {n}:")), None)
                            if why is None and not found:
                                why = "; ".join(p for p in problems if not p.startswith(("seed ", "seed(s) ")))
                            why = why or "left out of the answer"
                            failed[batch[n - 1]] = f"no usable answer after one repair: {why}"
                    done += len(wanted)
                if progress:
                    progress(done, total, f"repairing malformed answers ({self.stats.repairs}/{len(repair_plan)})")

            if repair_plan:
                second = client.complete_many([r for *_, r in repair_plan], on_result=on_repair,
                                              stop_event=stop_event)
                self._mark_unstarted(second, [[batches[bi][n - 1] for n in wanted] for bi, wanted, _, _ in repair_plan],
                                     results, failed)
        finally:
            if own:
                client.close()

        for i in range(total):
            if i not in results and i not in failed:
                failed[i] = "no usable answer from the model"
        self.failures = [BadRow(line=i + 1, reason=f"seed {seeds[i].id}: {failed[i]}") for i in sorted(failed)]
        self.stats.extracted = len(results)
        self.stats.failed = len(self.failures)
        if progress:
            progress(total, total, f"{len(results)} seeds extracted, {len(self.failures)} failed")
        return [Extraction(seeds[i].id, *results[i]) for i in sorted(results)]

    @staticmethod
    def _mark_unstarted(results: Sequence[Any], groups: Sequence[Sequence[int]], done: dict, failed: dict[int, str]
                        ) -> None:
        """Requests that never started (budget reached, stopped) are not passed to
        ``on_result``; their seeds fail with that reason."""
        for res, group in zip(results, groups):
            if res.error and not res.attempts and not res.cached:
                for i in group:
                    if i not in done and i not in failed:
                        failed[i] = f"not asked: {res.error}"
