"""Diffusion synthesis (DESIGN §6): one prompt per bundle, several new QA items back.

Items are stored one request at a time as results arrive, each under a *slot*
(``p<path>:<k>``) unique within the run, so a killed run started again skips the paths
already done, re-asks only the rest (and the request cache answers anything that was
paid for but not yet stored): the result equals an uninterrupted run.

With no endpoint configured the :class:`OfflineComposer` writes items from the bundle
itself, so the whole pipeline works on a fresh machine; its items say ``model =
"offline-composer"``.
"""

from __future__ import annotations

import json
import random
import re
import string
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Sequence

from ..errors import BudgetExceeded, ConfigError, InputError, NotFoundError
from ..records import Seed
from ..graph.sampling import run_paths
from ..store import Store

__all__ = [
    "DEFAULT_TEMPLATE",
    "TEMPLATE_FIELDS",
    "SynthesisConfig",
    "SynthesisReport",
    "BundleContext",
    "OFFLINE_MODEL",
    "render_prompt",
    "parse_items",
    "bundle_context",
    "preview_bundle",
    "synthesize",
    "estimate_synthesis_cost",
    "run_progress",
]

OFFLINE_MODEL = "offline-composer"
Progress = Callable[[int, int, str], None]

DEFAULT_TEMPLATE = """You write new exam questions that need several pieces of knowledge at once.

Knowledge points, in the order they link: {kps}
Discipline: {discipline}
Target difficulty (1 = easy, 5 = very hard): {difficulty}

Seed questions that together cover these knowledge points:
{seeds}

Write {n_items} new, self-contained question(s) in {discipline}. Each must combine at least
two of the knowledge points above, must not copy a seed, and must have one correct answer
that follows from the knowledge in the seeds. {format_rules}

Answer with JSON only, in this form:
{{"items": [{{"question": "...", "options": ["...", "...", "...", "..."], "answer": "<the correct option's text>",
"solution": "<worked solution>", "kps_used": ["..."], "difficulty": 1-5}}]}}"""

TEMPLATE_FIELDS = ("kps", "discipline", "difficulty", "seeds", "n_items", "format_rules")
_MC_RULES = "Give four options (A-D) with exactly one correct; 'answer' is the correct option's text."
_OPEN_RULES = "Give no options: an open question with a short, checkable final answer ('options': [])."

ITEM_SCHEMA: dict[str, Any] = {
    "name": "qa_items",
    "schema": {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "question": {"type": "string"},
                        "options": {"type": "array", "items": {"type": "string"}},
                        "answer": {"type": "string"},
                        "solution": {"type": "string"},
                        "kps_used": {"type": "array", "items": {"type": "string"}},
                        "difficulty": {"type": "number"},
                    },
                    "required": ["question", "answer", "solution"],
                },
            }
        },
        "required": ["items"],
    },
}


@dataclass(frozen=True)
class SynthesisConfig:
    """What a synthesis run asks for; stored with the run (never any credential)."""

    per_bundle: int = 2
    target_items: int | None = None
    template: str = DEFAULT_TEMPLATE
    multiple_choice: bool = True
    difficulty: float | None = None  # default: the run's difficulty_target
    max_top_up_rounds: int = 5

    def __post_init__(self) -> None:
        if not 1 <= self.per_bundle <= 20:
            raise ConfigError(f"items per bundle must be 1-20, got {self.per_bundle}")
        if self.target_items is not None and not 1 <= self.target_items <= 10_000_000:
            raise ConfigError(f"target number of items must be >= 1, got {self.target_items}")
        if self.difficulty is not None and not 1 <= self.difficulty <= 5:
            raise ConfigError(f"difficulty must be 1-5, got {self.difficulty}")
        check_template(self.template)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_template(template: str) -> None:
    """Refuse templates with unknown or malformed placeholders before any call is made."""
    try:
        names = {f[1] for f in string.Formatter().parse(template) if f[1] is not None}
    except ValueError as err:
        raise ConfigError(f"the prompt template is malformed: {err} (write literal braces as {{{{ and }}}})") from None
    unknown = names - set(TEMPLATE_FIELDS)
    if unknown:
        raise ConfigError(
            f"the prompt template uses unknown field(s) {', '.join(sorted('{' + n + '}' for n in unknown))}; "
            f"known: {', '.join('{' + n + '}' for n in TEMPLATE_FIELDS)}"
        )
    if "seeds" not in names or "kps" not in names:
        raise ConfigError("the prompt template must contain {kps} and {seeds}")


@dataclass
class BundleContext:
    """One path with its seeds: everything a prompt or the offline composer needs."""

    run_id: int
    path_id: int
    index: int
    kps: list[str]
    discipline: str
    seeds: list[Seed]


@dataclass
class SynthesisReport:
    run_id: int
    target_items: int
    items_ok: int = 0
    items_failed: int = 0
    requests: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: list[str] = field(default_factory=list)
    paths_added: int = 0
    stopped: str | None = None
    model: str = OFFLINE_MODEL


def bundle_context(store: Store, run_id: int, paths: Sequence[dict] | None = None) -> list[BundleContext]:
    paths = run_paths(store, run_id) if paths is None else paths
    all_ids = sorted({sid for p in paths for sid in p["seed_ids"]})
    by_id = {s.id: s for s in store.get_seeds(all_ids)}
    return [
        BundleContext(run_id, p["path_id"], p["index"], p["kps"], p["discipline"] or "Other",
                      [by_id[s] for s in p["seed_ids"] if s in by_id])
        for p in paths
    ]


def _format_seed(i: int, seed: Seed) -> str:
    lines = [f"Seed {i} ({seed.subject or seed.discipline}): {seed.question.strip()}"]
    if seed.options:
        lines += [f"  {chr(65 + j)}. {opt}" for j, opt in enumerate(seed.options)]
        lines.append(f"  Correct: {seed.answer_letter + '. ' if seed.answer_letter else ''}{seed.answer}")
    else:
        lines.append(f"  Answer: {seed.answer}")
    return "\n".join(lines)


def render_prompt(ctx: BundleContext, cfg: SynthesisConfig, n_items: int, difficulty: float) -> str:
    return cfg.template.format(
        kps=" -> ".join(ctx.kps),
        discipline=ctx.discipline,
        difficulty=f"{difficulty:g}",
        seeds="\n\n".join(_format_seed(i + 1, s) for i, s in enumerate(ctx.seeds)),
        n_items=n_items,
        format_rules=_MC_RULES if cfg.multiple_choice else _OPEN_RULES,
    )


# -- parsing model output -------------------------------------------------------------

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


class ParseError(ValueError):
    pass


def _loads_lenient(text: str) -> Any:
    text = text.strip()
    candidates = [text] + [m.group(1) for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    start, end = text.find("["), text.rfind("]")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    last = None
    for cand in candidates:
        try:
            return json.loads(cand)
        except json.JSONDecodeError as err:
            last = err
    raise ParseError(f"not JSON ({last.msg} at line {last.lineno} column {last.colno})" if last else "empty answer")


def parse_items(content: str, *, multiple_choice: bool = True) -> list[dict[str, Any]]:
    """Validated item dicts from a model's answer; ParseError says what is wrong and where."""
    if not content or not content.strip():
        raise ParseError("empty answer")
    data = _loads_lenient(content)
    if isinstance(data, dict) and "items" in data:
        data = data["items"]
    elif isinstance(data, dict) and "question" in data:
        data = [data]
    if not isinstance(data, list) or not data:
        raise ParseError("no 'items' list in the answer")
    items = []
    for i, raw in enumerate(data, 1):
        if not isinstance(raw, dict):
            raise ParseError(f"item {i} is not an object")
        q, a = raw.get("question"), raw.get("answer")
        if not isinstance(q, str) or not q.strip():
            raise ParseError(f"item {i} has no question")
        if isinstance(a, (int, float)) and not isinstance(a, bool):
            a = str(a)
        if not isinstance(a, str) or not a.strip():
            raise ParseError(f"item {i} has no answer")
        options = raw.get("options") or None
        if options is not None:
            if not isinstance(options, list) or not all(isinstance(o, (str, int, float)) for o in options):
                raise ParseError(f"item {i}: options must be a list of strings")
            options = [str(o).strip() for o in options]
            letter = a.strip().rstrip(".)").lstrip("(").upper()
            if len(letter) == 1 and "A" <= letter < chr(65 + len(options)):
                a = options[ord(letter) - 65]
        diff = raw.get("difficulty")
        try:
            diff = None if diff is None else min(5.0, max(1.0, float(diff)))
        except (TypeError, ValueError):
            diff = None
        kps_used = raw.get("kps_used") or []
        items.append({
            "question": q.strip(),
            "options": options,
            "answer": a.strip(),
            "solution": str(raw.get("solution") or "").strip(),
            "kps_used": [str(k) for k in kps_used] if isinstance(kps_used, list) else [str(kps_used)],
            "difficulty": diff,
        })
    return items


# -- the offline composer -------------------------------------------------------------


class OfflineComposer:
    """Composes items from a bundle without a model: two linked seeds become one two-part item.

    The question asks both seed questions; the options pair each seed's correct answer
    with the other's distractors, so exactly one option is right. Honest but shallow: it
    exists so the pipeline, the app and the export work with no endpoint.
    """

    name = OFFLINE_MODEL

    def compose(self, ctx: BundleContext, n_items: int, difficulty: float, multiple_choice: bool) -> list[dict]:
        rng = random.Random(f"{ctx.run_id}:{ctx.index}")
        seeds = ctx.seeds
        items = []
        pairs = [(a, b) for i, a in enumerate(seeds) for b in seeds[i + 1 :]] or [(s, s) for s in seeds]
        for k in range(n_items):
            if not pairs:
                break
            a, b = pairs[k % len(pairs)]
            items.append(self._pair(a, b, ctx, rng, difficulty, multiple_choice))
        return items

    def _pair(self, a: Seed, b: Seed, ctx: BundleContext, rng: random.Random, difficulty: float,
              multiple_choice: bool) -> dict:
        shared = [kp for kp in ctx.kps][:3]
        question = (
            f"This two-part question links {', '.join(shared)}.\n"
            f"Part 1: {a.question.strip()}\nPart 2: {b.question.strip()}"
        )
        answer = f"Part 1: {a.answer}; Part 2: {b.answer}"
        options = None
        if multiple_choice:
            wrong_a = [o for o in (a.options or ()) if o != a.answer] or [f"not {a.answer}"]
            wrong_b = [o for o in (b.options or ()) if o != b.answer] or [f"not {b.answer}"]
            combos = {answer}
            tries = 0
            while len(combos) < 4 and tries < 50:
                tries += 1
                pa = a.answer if rng.random() < 0.34 else rng.choice(wrong_a)
                pb = b.answer if pa != a.answer and rng.random() < 0.5 else rng.choice(wrong_b)
                combos.add(f"Part 1: {pa}; Part 2: {pb}")
            options = sorted(combos)
            rng.shuffle(options)
        solution = (
            f"Composed offline from seeds {a.id} and {b.id} without a model. "
            f"Part 1: {a.answer.rstrip('.')}. Part 2: {b.answer.rstrip('.')}."
        )
        known = [d for d in (a.difficulty, b.difficulty) if d is not None]
        return {
            "question": question,
            "options": options,
            "answer": answer,
            "solution": solution,
            "kps_used": shared,
            "difficulty": float(min(5, round(max(known) + 0.5))) if known else difficulty,
        }


# -- running --------------------------------------------------------------------------


def _run_settings_difficulty(run: dict, cfg: SynthesisConfig) -> float:
    if cfg.difficulty is not None:
        return float(cfg.difficulty)
    return float((run.get("config") or {}).get("difficulty_target", 3.0))


def _done_paths(store: Store, run_id: int) -> set[int]:
    rows = store.query("SELECT DISTINCT path_id FROM items WHERE run_id = ? AND parent_id IS NULL", (run_id,))
    return {r[0] for r in rows}


def _good_count(store: Store, run_id: int) -> int:
    return int(store.scalar(
        "SELECT count(*) FROM items WHERE run_id = ? AND parent_id IS NULL AND status != 'failed'", (run_id,)
    ))


def _store_items(store: Store, ctx: BundleContext, items: list[dict], *, model: str, reasoning: str | None,
                 raw: str | None, prompt_tokens: int | None, completion_tokens: int | None) -> int:
    now = time.time()
    seed_ids = json.dumps([s.id for s in ctx.seeds])
    with store.transaction() as conn:
        for k, item in enumerate(items):
            conn.execute(
                "INSERT OR IGNORE INTO items (run_id, path_id, slot, status, question, options, answer, solution,"
                " kps_used, discipline, difficulty, seed_ids, model, reasoning, raw, prompt_tokens,"
                " completion_tokens, created_at, updated_at)"
                " VALUES (?, ?, ?, 'generated', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (ctx.run_id, ctx.path_id, f"p{ctx.index}:{k}", item["question"],
                 json.dumps(item["options"], ensure_ascii=False) if item["options"] else None,
                 item["answer"], item["solution"], json.dumps(item["kps_used"], ensure_ascii=False),
                 ctx.discipline, item["difficulty"], seed_ids, model, reasoning, raw,
                 prompt_tokens if k == 0 else 0, completion_tokens if k == 0 else 0, now, now),
            )
    return len(items)


def _store_failure(store: Store, ctx: BundleContext, reason: str, raw: str | None, model: str) -> None:
    now = time.time()
    with store.transaction() as conn:
        conn.execute(
            "INSERT OR IGNORE INTO items (run_id, path_id, slot, status, discipline, seed_ids, model, raw,"
            " gate_reason, created_at, updated_at) VALUES (?, ?, ?, 'failed', ?, ?, ?, ?, ?, ?, ?)",
            (ctx.run_id, ctx.path_id, f"p{ctx.index}:failed", ctx.discipline,
             json.dumps([s.id for s in ctx.seeds]), model, raw, reason, now, now),
        )


def _top_up_paths(store: Store, run_id: int, extra: int) -> int:
    """Sample ``extra`` more paths for a run, continuing its coverage: the run grows."""
    import numpy as np

    from ..graph.build import build_graph
    from ..graph.sampling import SampleResult, insert_paths
    from ..graph.bundles import choose_bundles
    from ..graph.walks import WalkParams, value_walks

    run = store.get_run(run_id)
    cfg = run["config"] or {}
    params = WalkParams.from_dict(cfg)
    graph = build_graph(store)
    visits = np.zeros(graph.n_nodes, dtype=np.int64)
    for kp_id, count in store.query(
        "SELECT pk.kp_id, count(*) FROM path_kps pk JOIN paths p ON p.id = pk.path_id WHERE p.run_id = ?"
        " GROUP BY pk.kp_id", (run_id,)
    ):
        i = graph.index_of(kp_id)
        if i is not None:
            visits[i] = count
    start = int(store.scalar("SELECT coalesce(max(idx) + 1, 0) FROM paths WHERE run_id = ?", (run_id,)))
    walks = value_walks(graph, params, extra, seed=int(cfg.get("seed", 0)) + 7919 * (start + 1), prior_visits=visits)
    bundles = choose_bundles(graph, walks, min_seeds=int(cfg.get("min_seeds", 3)), max_seeds=int(cfg.get("max_seeds", 5)))
    tmp = SampleResult(params, extra, 0, "fresh", {}, {}, walks, bundles, walks, graph)
    records = tmp.paths(store)
    with store.transaction() as conn:
        insert_paths(conn, run_id, records, graph, start=start)
    return len(records)


def synthesize(
    store: Store,
    run_id: int,
    cfg: SynthesisConfig = SynthesisConfig(),
    settings: Any = None,
    *,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
) -> SynthesisReport:
    """Generate items for a saved run until ``target_items`` good ones exist (resumable).

    ``settings`` is an :class:`~linkqa_core.llm.LLMSettings`; ``None`` or an unconfigured
    one uses the offline composer.
    """
    run = store.get_run(run_id)
    if not store.scalar("SELECT count(*) FROM paths WHERE run_id = ?", (run_id,)):
        raise NotFoundError(f"run {run_id} has no paths: save a sample first (sample --save)")
    difficulty = _run_settings_difficulty(run, cfg)
    use_llm = settings is not None and getattr(settings, "configured", False)
    model = settings.model if use_llm else OFFLINE_MODEL
    n_paths = int(store.scalar("SELECT count(*) FROM paths WHERE run_id = ?", (run_id,)))
    target = cfg.target_items or n_paths * cfg.per_bundle
    config = dict(run["config"] or {})
    config["synthesis"] = {**cfg.to_dict(), "target_items": target, "model": model,
                           "endpoints": len(getattr(settings, "base_urls", []) or []) if use_llm else 0}
    store.update_run(run_id, config=config, status="synthesizing")
    report = SynthesisReport(run_id=run_id, target_items=target, model=model)
    client = None
    if use_llm:
        from ..llm.client import LLMClient

        client = LLMClient(settings, store=store)
    try:
        for round_no in range(cfg.max_top_up_rounds + 1):
            have = _good_count(store, run_id)
            if have >= target:
                break
            if stop_event is not None and stop_event.is_set():
                report.stopped = "stopped by the curator"
                break
            done = _done_paths(store, run_id)
            todo = [c for c in bundle_context(store, run_id) if c.path_id not in done]
            need = target - have
            plan: list[tuple[BundleContext, int]] = []
            for ctx in todo:
                if need <= 0:
                    break
                n = min(cfg.per_bundle, need)
                plan.append((ctx, n))
                need -= n
            if need > 0:
                if round_no == cfg.max_top_up_rounds:
                    break
                extra = -(-need // cfg.per_bundle)
                report.paths_added += _top_up_paths(store, run_id, extra)
                if not plan:
                    continue
            if client is None:
                _run_offline(store, plan, difficulty, cfg, report, progress, target, stop_event)
            else:
                _run_llm(store, client, plan, difficulty, cfg, report, progress, target, stop_event, settings)
            if report.stopped:
                break
    finally:
        report.items_ok = _good_count(store, run_id)
        report.items_failed = int(store.scalar(
            "SELECT count(*) FROM items WHERE run_id = ? AND status = 'failed'", (run_id,)))
        status = "synthesized" if report.items_ok >= target else ("stopped" if report.stopped else "partial")
        store.update_run(run_id, status=status)
        if client is not None:
            client.close()
    return report


def _run_offline(store, plan, difficulty, cfg, report, progress, target, stop_event) -> None:
    composer = OfflineComposer()
    for ctx, n in plan:
        if stop_event is not None and stop_event.is_set():
            report.stopped = "stopped by the curator"
            return
        items = composer.compose(ctx, n, difficulty, cfg.multiple_choice)
        if items:
            _store_items(store, ctx, items, model=OFFLINE_MODEL, reasoning=None, raw=None,
                         prompt_tokens=0, completion_tokens=0)
        else:
            _store_failure(store, ctx, "bundle has no seeds to compose from", None, OFFLINE_MODEL)
        report.requests += 1
        if progress:
            progress(min(_good_count(store, ctx.run_id), target), target, f"{report.requests} bundles composed offline")


def _run_llm(store, client, plan, difficulty, cfg, report, progress, target, stop_event, settings) -> None:
    from ..llm.client import ChatRequest

    reqs = [
        ChatRequest(
            messages=[{"role": "user", "content": render_prompt(ctx, cfg, n, difficulty)}],
            model=settings.model,
            response_format={"type": "json_schema", "json_schema": ITEM_SCHEMA},
            stage="synthesis",
            run_id=ctx.run_id,
        )
        for ctx, n in plan
    ]
    lock = threading.Lock()
    from ..llm.client import BUDGET_REACHED, STOPPED

    def on_result(i: int, res: Any) -> None:
        ctx, n = plan[i]
        with lock:
            report.requests += 1
            report.cached += int(bool(res.cached))
            report.prompt_tokens += res.prompt_tokens or 0
            report.completion_tokens += res.completion_tokens or 0
        if res.error in (BUDGET_REACHED, STOPPED):
            return  # never sent: the path stays open for a later run
        if res.error:
            with lock:
                report.errors.append(f"path {ctx.index}: {res.error}")
            _store_failure(store, ctx, res.error, res.content or None, settings.model)
        else:
            try:
                items = parse_items(res.content, multiple_choice=cfg.multiple_choice)[:n]
                _store_items(store, ctx, items, model=res.model or settings.model, reasoning=res.reasoning,
                             raw=res.content, prompt_tokens=res.prompt_tokens, completion_tokens=res.completion_tokens)
            except ParseError as err:
                with lock:
                    report.errors.append(f"path {ctx.index}: malformed answer: {err}")
                _store_failure(store, ctx, f"malformed answer: {err}", res.content, settings.model)
        if progress:
            progress(min(_good_count(store, ctx.run_id), target), target,
                     f"{report.requests} requests, {report.prompt_tokens + report.completion_tokens:,} tokens, "
                     f"{len(report.errors)} errors")

    from ..llm.client import BUDGET_REACHED, STOPPED

    try:
        results = client.complete_many(reqs, on_result=on_result, stop_event=stop_event)
    except BudgetExceeded as err:
        report.stopped = str(err)
        return
    unstarted = [r.error for r in results if r.error in (BUDGET_REACHED, STOPPED)]
    if BUDGET_REACHED in unstarted or any("budget" in e for e in report.errors):
        report.stopped = "token or money budget reached"
    elif unstarted or (stop_event is not None and stop_event.is_set()):
        report.stopped = "stopped by the curator"


def preview_bundle(store: Store, run_id: int, path_index: int, cfg: SynthesisConfig = SynthesisConfig(),
                   settings: Any = None) -> dict[str, Any]:
    """The prompt of one bundle and what the model (or the offline composer) answers; nothing stored."""
    run = store.get_run(run_id)
    paths = [p for p in run_paths(store, run_id) if p["index"] == path_index]
    if not paths:
        raise NotFoundError(f"run {run_id} has no path {path_index}")
    ctx = bundle_context(store, run_id, paths)[0]
    difficulty = _run_settings_difficulty(run, cfg)
    prompt = render_prompt(ctx, cfg, cfg.per_bundle, difficulty)
    out: dict[str, Any] = {"prompt": prompt, "kps": ctx.kps, "seeds": [s.id for s in ctx.seeds]}
    if settings is not None and getattr(settings, "configured", False):
        from ..llm.client import ChatRequest, LLMClient

        client = LLMClient(settings, store=store)
        try:
            res = client.complete(ChatRequest(messages=[{"role": "user", "content": prompt}], model=settings.model,
                                              response_format={"type": "json_schema", "json_schema": ITEM_SCHEMA},
                                              stage="preview", run_id=run_id))
        finally:
            client.close()
        out.update(model=settings.model, content=res.content, reasoning=res.reasoning, error=res.error,
                   tokens=(res.prompt_tokens or 0) + (res.completion_tokens or 0))
        if not res.error:
            try:
                out["items"] = parse_items(res.content, multiple_choice=cfg.multiple_choice)
            except ParseError as err:
                out["error"] = f"malformed answer: {err}"
    else:
        items = OfflineComposer().compose(ctx, cfg.per_bundle, difficulty, cfg.multiple_choice)
        out.update(model=OFFLINE_MODEL, content=json.dumps({"items": items}, ensure_ascii=False, indent=1),
                   reasoning=None, error=None, items=items, tokens=0)
    return out


def estimate_synthesis_cost(store: Store, run_id: int, cfg: SynthesisConfig, settings: Any, *,
                            output_tokens_per_item: int = 350, reasoning_tokens_per_request: int = 1500) -> dict:
    """Requests × (prompt + output + reasoning tokens) × price, before anything is spent."""
    run = store.get_run(run_id)
    ctxs = bundle_context(store, run_id)
    if not ctxs:
        raise NotFoundError(f"run {run_id} has no paths")
    n_paths = len(ctxs)
    target = cfg.target_items or n_paths * cfg.per_bundle
    requests = -(-target // cfg.per_bundle)
    difficulty = _run_settings_difficulty(run, cfg)
    sample_prompts = [render_prompt(c, cfg, cfg.per_bundle, difficulty) for c in ctxs[:20]]
    prompt_tokens = int(sum(len(p) for p in sample_prompts) / len(sample_prompts) / 4)  # ~4 characters a token
    output = output_tokens_per_item * cfg.per_bundle
    price_in = getattr(settings, "price_in_per_mtok", 0.0) or 0.0
    price_out = getattr(settings, "price_out_per_mtok", 0.0) or 0.0
    tokens_in = requests * prompt_tokens
    tokens_out = requests * (output + reasoning_tokens_per_request)
    return {
        "requests": requests,
        "target_items": target,
        "prompt_tokens_each": prompt_tokens,
        "output_tokens_each": output,
        "reasoning_tokens_each": reasoning_tokens_per_request,
        "total_tokens": tokens_in + tokens_out,
        "usd": round(tokens_in / 1e6 * price_in + tokens_out / 1e6 * price_out, 4),
        "paths_to_add": max(0, requests - n_paths),
    }


def run_progress(store: Store, run_id: int) -> dict[str, Any]:
    """Counts a page polls to show a run's live progress (read from the database)."""
    run = store.get_run(run_id)
    rows = dict(store.query("SELECT status, count(*) FROM items WHERE run_id = ? GROUP BY status", (run_id,)))
    tokens = store.query(
        "SELECT coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0), count(*),"
        " sum(status = 'error'), sum(cached) FROM llm_calls WHERE run_id = ?", (run_id,)
    )[0]
    target = ((run.get("config") or {}).get("synthesis") or {}).get("target_items")
    good = sum(v for k, v in rows.items() if k != "failed")
    return {
        "status": run["status"],
        "target_items": target,
        "items": good,
        "by_status": rows,
        "failed": rows.get("failed", 0),
        "prompt_tokens": tokens[0],
        "completion_tokens": tokens[1],
        "calls": tokens[2],
        "call_errors": tokens[3] or 0,
        "cached_calls": tokens[4] or 0,
    }
