"""Diffusion synthesis (DESIGN §6): one prompt per bundle, several new QA items back.

Items are stored one request at a time as results arrive, each under a *slot*
(``p<path>:<k>``) unique within the run, so a killed run started again skips the paths
already done, re-asks only the rest (and the request cache answers anything that was
paid for but not yet stored): the result equals an uninterrupted run. While it works, a
process holds the run's lease, so a second process on the same run is refused and a
killed one shows as "interrupted".

The item accounting, in one place (:func:`items_to_store`):

- an answer that parses gives its items, cut to the number asked (a model may give more);
- an answer that cannot be used (not JSON, no items, blank twice) or a request the
  endpoint refused for this item alone (400/413/422) gives one ``failed`` row with the
  reason and the raw text: the path is done, and more paths are sampled to reach the
  target;
- a request that failed for a reason that may pass (the endpoint kept failing, timed out,
  or was found down) gives nothing: the path stays planned and is asked again in the
  next round or on the next start. When the endpoint is down (``outage_after`` requests
  in a row gave up) the run stops with :class:`~linkqa_core.llm.failures.EndpointDown`
  and samples nothing new, so a resumed run ends with the same items as one that never
  saw the outage.

Budgets belong to the run: the client starts from what this run's synthesis calls
already spent (the call log), so a restarted command continues the same budget.

With no endpoint configured the :class:`~linkqa_core.synthesis.offline.OfflineComposer`
writes items from the bundle itself, so the whole pipeline works on a fresh machine;
its items say ``model = "offline-composer"``.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from ..errors import ConfigError, NotFoundError
from ..records import Bundle, Item, Path
from ..store import Store
from ..store.runs import run_lease
from ..tasks import Outcome, run_task
from .compose import Ask, SynthesisTask
from .offline import OFFLINE_MODEL, OfflineComposer
from .prompt import DEFAULT_TEMPLATE, check_template

__all__ = [
    "SynthesisConfig",
    "SynthesisReport",
    "STAGES",
    "bundles_of",
    "plan_asks",
    "items_to_store",
    "preview_bundle",
    "synthesize",
    "estimate_synthesis_cost",
    "run_progress",
]

Progress = Callable[[int, int, str], None]
EXHAUSTED_AFTER = 50
EXHAUSTED_YIELD = 0.1
"""A round that asked at least ``EXHAUSTED_AFTER`` paths and got under ``EXHAUSTED_YIELD``
good items per path ends the run's top-ups: the bundles' seeds give no more new items (the
offline composer never asks a pair twice), and more paths would only add failed rows."""
STAGES = ("synthesis",)
"""The call-log stages a synthesis budget counts."""


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
    retry_later: int = 0  # requests that failed for a reason that may pass: their paths stay planned
    estimated_calls: int = 0  # calls whose tokens were estimated (the server sent no usage)
    spent_before: int = 0  # tokens this run's synthesis had spent before this command


def bundles_of(store: Store, paths: Sequence[Path]) -> list[Bundle]:
    """Paths with their seeds in full (one query for all of them)."""
    by_id = {s.id: s for s in store.seeds.get(sorted({sid for p in paths for sid in p.seed_ids}))}
    return [Bundle(p, tuple(by_id[s] for s in p.seed_ids if s in by_id)) for p in paths]


def _difficulty(run_config: dict, cfg: SynthesisConfig) -> float:
    if cfg.difficulty is not None:
        return float(cfg.difficulty)
    return float((run_config or {}).get("difficulty_target", 3.0))


def _use_llm(settings: Any) -> bool:
    return settings is not None and getattr(settings, "configured", False)


def plan_asks(bundles: Sequence[Bundle], need: int, per_bundle: int, difficulty: float,
              multiple_choice: bool = True) -> tuple[list[Ask], int]:
    """Asks for bundles in order, ``per_bundle`` items each (fewer for the last), until
    ``need`` items are asked for; returns them and how many items are still not asked for.

    >>> plan_asks([], 5, 2, 3.0)
    ([], 5)
    """
    plan: list[Ask] = []
    for bundle in bundles:
        if need <= 0:
            break
        n = min(per_bundle, need)
        plan.append(Ask(bundle, n, difficulty, multiple_choice))
        need -= n
    return plan, need


def items_to_store(run_id: int, ask: Ask, o: Outcome[list[Item]], model: str) -> list[Item]:
    """The rows one answer gives (see the module docstring): its items, one failed row, or none."""
    if o.transient:
        return []
    path = ask.bundle.path
    res = o.result
    common = dict(run_id=run_id, path_id=path.id, discipline=ask.bundle.discipline,
                  seed_ids=tuple(s.id for s in ask.bundle.seeds), model=model)
    if o.error is not None or not o.value:
        reason = o.error or "malformed answer: no items"
        return [Item(question="", answer="", slot=f"p{path.index}:failed", status="failed", raw=o.raw,
                     gate_reason=reason, reasoning=res.reasoning if res else None,
                     prompt_tokens=(res.prompt_tokens or 0) if res else 0,
                     completion_tokens=(res.completion_tokens or 0) if res else 0, **common)]
    return [it.with_(slot=f"p{path.index}:{k}", reasoning=res.reasoning if res else None,
                     raw=res.content if res else None,
                     prompt_tokens=(res.prompt_tokens or 0) if res and k == 0 else 0,
                     completion_tokens=(res.completion_tokens or 0) if res and k == 0 else 0, **common)
            for k, it in enumerate(o.value[: ask.n_items])]


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

    ``settings`` is an :class:`~linkqa_core.llm.settings.LLMSettings`; ``None`` or an
    unconfigured one uses the offline composer. Raises :class:`~linkqa_core.errors.LeaseHeld`
    when another live process is working on the run, and
    :class:`~linkqa_core.llm.failures.EndpointDown` when the endpoint stopped answering
    (what is not done stays planned: run it again).
    """
    run = store.runs.get(run_id)
    n_paths = store.runs.path_count(run_id)
    if not n_paths:
        raise NotFoundError(f"run {run_id} has no paths: save a sample first (sample --save)")
    use_llm = _use_llm(settings)
    model = settings.model if use_llm else OFFLINE_MODEL
    target = cfg.target_items or n_paths * cfg.per_bundle
    with store.lease(run_lease(run_id), f"synthesis of run {run_id}"):
        config = dict(run.config)
        config["synthesis"] = synthesis_record(cfg, target, settings if use_llm else None)
        store.runs.update(run_id, config=config, status="synthesizing")
        report = SynthesisReport(run_id=run_id, target_items=target, model=model)
        client = None
        if use_llm:
            from ..llm.client import LLMClient
            from ..llm.ledger import Usage

            spent = Usage.from_store(store, run_id, STAGES)
            report.spent_before = spent.total_tokens
            client = LLMClient(settings, store=store, spent=spent)
        task: Any = SynthesisTask(cfg.template, model=model, run_id=run_id) if use_llm else OfflineComposer(run_id)
        try:
            _rounds(store, run_id, cfg, task, client, _difficulty(run.config, cfg), target, report, progress,
                    stop_event)
        except Exception as err:
            report.stopped = report.stopped or str(err)
            raise
        finally:
            report.items_ok = store.items.good_count(run_id)
            report.items_failed = store.items.counts(run_id).get("failed", 0)
            status = "synthesized" if report.items_ok >= target else ("stopped" if report.stopped else "partial")
            store.runs.update(run_id, status=status)
            if client is not None:
                client.close()
    return report


def synthesis_record(cfg: SynthesisConfig, target: int, settings: Any) -> dict[str, Any]:
    """What a run's config keeps of a synthesis (``settings`` None: offline), whichever backend
    ran it, so exports of the same run are the same; never a credential."""
    return {**cfg.to_dict(), "target_items": target,
            "model": settings.model if settings is not None else OFFLINE_MODEL,
            "endpoints": len(settings.base_urls or []) if settings is not None else 0,
            "budget_tokens": settings.budget_tokens if settings is not None else None,
            "budget_usd": settings.budget_usd if settings is not None else None}


def _rounds(store: Store, run_id: int, cfg: SynthesisConfig, task: Any, client: Any, difficulty: float,
            target: int, report: SynthesisReport, progress: Progress | None,
            stop_event: threading.Event | None) -> None:
    """Ask for the paths not yet done; sample more paths while the target is out of reach."""
    from ..graph.sampling import extend_sample

    seen = (0, 0)  # good items and answered paths before the last round that asked: its yield sizes the next
    for round_no in range(cfg.max_top_up_rounds + 1):
        have = store.items.good_count(run_id)
        if have >= target:
            return
        if stop_event is not None and stop_event.is_set():
            report.stopped = "stopped by the curator"
            return
        done = store.items.done_path_ids(run_id)
        todo = [p for p in store.runs.paths(run_id) if p.id not in done]
        # sample more paths when the paths left, at the last round's yield, cannot reach the
        # target; offline (free) rounds also ask by that yield, paid rounds for exactly what is missing
        asked = len(done) - seen[1]
        if asked >= EXHAUSTED_AFTER and have - seen[0] < EXHAUSTED_YIELD * asked:
            report.errors.append(f"the last round's {asked:,} paths gave {have - seen[0]:,} items: these seeds give "
                                 f"no more new ones; stopped at {have:,} of {target:,}")
            return
        per_path = _yield_per_path(have - seen[0], asked, cfg.per_bundle)
        missing = target - have
        want = math.ceil(missing * cfg.per_bundle / per_path) if client is None else missing
        plan, need = plan_asks(bundles_of(store, todo), want, cfg.per_bundle, difficulty, cfg.multiple_choice)
        short = missing - len(todo) * per_path  # items the paths left will likely not give
        if short >= 1 and round_no < cfg.max_top_up_rounds:
            report.paths_added += extend_sample(store, run_id, math.ceil(1.1 * short / per_path))
        if plan:
            seen = (have, len(done))
            _ask(store, run_id, task, client, plan, target, report, progress, stop_event)
            if report.stopped:
                return


def _yield_per_path(good: int, paths_done: int, per_bundle: int) -> float:
    """Good items per path in the last round (``per_bundle`` before any was asked), at least a tenth.

    Top-up paths are sized by it: when bundles give fewer items than asked (pairs used up,
    gates refusing, a weak model), asking ``need / per_bundle`` more paths falls short round
    after round. The last round's yield, not the run's, because later paths give less as
    their seeds' pairs are used up.
    """
    if paths_done == 0:
        return float(per_bundle)
    return min(float(per_bundle), max(good / paths_done, 0.1))


def _ask(store: Store, run_id: int, task: Any, client: Any, plan: list[Ask], target: int,
         report: SynthesisReport, progress: Progress | None, stop_event: threading.Event | None) -> None:
    def on_outcome(o: Outcome[list[Item]]) -> None:
        ask = plan[o.index]
        res = o.result
        report.requests += 1
        if res is not None:
            report.cached += int(bool(res.cached))
            report.prompt_tokens += res.prompt_tokens or 0
            report.completion_tokens += res.completion_tokens or 0
            report.estimated_calls += int(bool(res.estimated))
        if o.transient:
            report.retry_later += 1
        rows = items_to_store(run_id, ask, o, task.name if res is None else (res.model or task.model))
        _store(store, _within_target(rows, target - store.items.good_count(run_id)))
        if o.error:
            report.errors.append(f"path {ask.bundle.path.index}: {o.error}")
        if progress:
            good = min(store.items.good_count(run_id), target)
            what = (f"{report.requests} bundles composed offline" if res is None else
                    f"{report.requests} requests, {report.prompt_tokens + report.completion_tokens:,} tokens, "
                    f"{len(report.errors)} errors")
            progress(good, target, what)

    outcomes = run_task(task, plan, client=client, on_outcome=on_outcome, stop_event=stop_event)
    unstarted = [o for o in outcomes if o.unstarted]
    if unstarted and client is not None and client.budget_reached:
        report.stopped = "token or money budget reached"
    elif unstarted or (stop_event is not None and stop_event.is_set()):
        report.stopped = "stopped by the curator"


def _within_target(rows: list[Item], room: int) -> list[Item]:
    """The rows of one answer with at most ``room`` good items: a round asks for a little more
    than the target when bundles give less than asked, and the run still ends at the number
    the curator asked for (failed rows are kept: they say what went wrong)."""
    kept: list[Item] = []
    for row in rows:
        if row.status == "failed":
            kept.append(row)
        elif room > 0:
            kept.append(row)
            room -= 1
    return kept


def _store(store: Store, rows: list[Item]) -> None:
    """Store one answer's rows; an answer the database cannot take becomes one failed row
    (the batch and the answers already stored are kept)."""
    if not rows:
        return
    try:
        store.items.insert(rows)
    except (UnicodeError, ValueError, OverflowError) as err:
        first = rows[0]
        store.items.insert([Item(question="", answer="", slot=f"{first.slot.split(':')[0]}:failed", status="failed",
                                 gate_reason=f"the answer cannot be stored ({type(err).__name__})",
                                 run_id=first.run_id, path_id=first.path_id, discipline=first.discipline,
                                 seed_ids=first.seed_ids, model=first.model)])


def preview_bundle(store: Store, run_id: int, path_index: int, cfg: SynthesisConfig = SynthesisConfig(),
                   settings: Any = None) -> dict[str, Any]:
    """The prompt of one bundle and what the model (or the offline composer) answers; nothing stored."""
    run = store.runs.get(run_id)
    paths = store.runs.paths(run_id, index=path_index)
    if not paths:
        raise NotFoundError(f"run {run_id} has no path {path_index}")
    ask = Ask(bundles_of(store, paths)[0], cfg.per_bundle, _difficulty(run.config, cfg), cfg.multiple_choice)
    model_task = SynthesisTask(cfg.template, model=getattr(settings, "model", None), run_id=run_id)
    out: dict[str, Any] = {"prompt": model_task.prompt(ask), "kps": list(ask.bundle.kps),
                           "seeds": [s.id for s in ask.bundle.seeds]}
    if _use_llm(settings):
        from ..llm.client import LLMClient

        with LLMClient(settings, store=store) as client:
            o = run_task(model_task, [ask], client=client)[0]
        res = o.result
        out.update(model=settings.model, content=res.content if res else "", reasoning=res.reasoning if res else None,
                   error=o.error, tokens=(res.total_tokens if res else 0))
        if o.ok:
            out["items"] = [it.to_dict() for it in o.value]
    else:
        o = run_task(OfflineComposer(run_id), [ask])[0]
        items = [it.to_dict() for it in o.value or []]
        out.update(model=OFFLINE_MODEL, content=json.dumps({"items": items}, ensure_ascii=False, indent=1),
                   reasoning=None, error=o.error, items=items, tokens=0)
    return out


def estimate_synthesis_cost(store: Store, run_id: int, cfg: SynthesisConfig, settings: Any, *,
                            output_tokens_per_item: int = 350, reasoning_tokens_per_request: int = 1500) -> dict:
    """Requests × (prompt + output + reasoning tokens) × price, before anything is spent."""
    run = store.runs.get(run_id)
    paths = store.runs.paths(run_id)
    if not paths:
        raise NotFoundError(f"run {run_id} has no paths")
    target = cfg.target_items or len(paths) * cfg.per_bundle
    requests = -(-target // cfg.per_bundle)
    difficulty = _difficulty(run.config, cfg)
    task = SynthesisTask(cfg.template)
    sample_prompts = [task.prompt(Ask(b, cfg.per_bundle, difficulty, cfg.multiple_choice))
                      for b in bundles_of(store, paths[:20])]
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
        "paths_to_add": max(0, requests - len(paths)),
    }


def run_progress(store: Store, run_id: int) -> dict[str, Any]:
    """Counts a page polls to show a run's live progress (read from the database)."""
    run = store.runs.get(run_id)
    rows = store.items.counts(run_id)
    spend = store.llm.spend(run_id)
    target = (run.config.get("synthesis") or {}).get("target_items")
    return {
        "status": run.status,
        "target_items": target,
        "items": store.items.good_count(run_id),  # synthesised items; rewrites are counted by status
        "by_status": rows,
        "failed": rows.get("failed", 0),
        "prompt_tokens": spend.prompt_tokens,
        "completion_tokens": spend.completion_tokens,
        "calls": spend.calls,
        "call_errors": spend.errors,
        "cached_calls": spend.cached,
    }
