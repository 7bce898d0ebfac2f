"""Difficulty enhancement (DESIGN §7): reach a target difficulty mix by rewriting items harder.

Per discipline there is a target mix of difficulty levels 1–5
(:class:`DifficultyTargets`, default ``3:0.3, 4:0.4, 5:0.3`` everywhere). :func:`enhance`
rates a run's items, compares each discipline's realised mix with its target, and rewrites
the items that keep it below target -- lowest difficulty first, just as many as the
target's share *at or above* each level asks for -- with one in-depth operation each, in
the spirit of Evol-Instruct:

==========================  ===========================================================
``add_constraint``          add a condition the solver must take into account
``deepen``                  ask for the underlying principle or mechanism
``concretise``              turn the general question into a specific, concrete case
``add_reasoning_steps``     require an intermediate result before the answer
``join_kp``                 bring in a KP of the item's path that it does not use yet
==========================  ===========================================================

Each rewrite is re-rated and checked, then stored as a NEW item (``parent_id`` = the
parent's id, ``operation``, ``slot = "<parent slot>/r<round>"``); the parent becomes
``superseded`` once its child is kept. Elimination -- each child that is dropped is kept
as ``rejected`` with its reason in ``gate_reason``:

- *adds nothing*: word-shingle Jaccard with the parent (question and options) at or above
  ``near_copy`` (0.85): ``"adds nothing: near-copy of parent #12 (Jaccard 0.93)"``;
- *not harder*: the rater does not rate it above its parent: ``"rewrite is not harder (2 -> 2)"``;
- with a model: asked twice without the answer (two variants, two temperatures) the model
  gives different answers, or not the stated one: ``"model cannot answer consistently (...)"``;
- with a model: a judge shown the linked seeds says the answer does not follow from them:
  ``"answer does not follow from the linked seeds (...)"``.

A kept child still under target may be rewritten again in the next round, up to
``max_rounds`` rounds per run (the count is stored in the run's config, so a second call
continues instead of starting over; raise ``max_rounds`` to go further). Everything is
resumable: a parent that already has a child for a round is skipped, and every model
request is cached. While it works a process holds the run's lease (a second ``enhance``
or ``synthesize`` on the run is refused; a killed one shows as "interrupted"); a budget
continues from what the run's enhancement calls already spent; a rewrite whose request
failed for a reason that may pass (the endpoint kept failing) is not recorded, so the
next call asks again.

Ratings. The rater is the scale of the mix: with a model, :class:`LLMRater` re-rates every
``generated`` item (cached); offline, items keep the difficulty synthesis gave them and
:class:`OfflineRater` rates only those without one. A child's difficulty is its parent's
plus the rater's difference between child and parent, so parent and child are on one
scale whatever rated the parent.

Without a model the :class:`OfflineRewriter` (``model = "offline-rewriter"``) does the
operations it can do honestly -- ``add_constraint``, ``add_reasoning_steps``, ``join_kp``
-- deterministically, keeping the answer one of the options; ``deepen`` and ``concretise``
need a model. Its rewrites are shallow, and the offline checks (near-copy, not harder)
drop the ones that change nothing.

"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ..errors import ConfigError, InputError
from ..quality.text import jaccard, shingles
from ..records import Item
from ..store import Store
from ..store.runs import run_lease
from ..tasks import Outcome, run_task
from .checks import LLMChecker, REASON_UNCHECKED
from .raters import LLMRater, OfflineRater, Rater
from .rewrite import LLMRewriter, OfflineRewriter, Rewrite, RewriteContext, validate
from .targets import LEVELS, DifficultyTargets, level_of, mix_gap, mix_of, needed

__all__ = ["NEAR_COPY", "LIVE_STATUSES", "STAGES", "EnhanceReport", "difficulty_mix", "enhance"]

NEAR_COPY = 0.85
LIVE_STATUSES = ("generated", "accepted")
REASON_NEAR_COPY = "adds nothing (near-copy of parent)"
REASON_NOT_HARDER = "rewrite is not harder"
STAGES = ("difficulty-rate", "difficulty-rewrite", "difficulty-check", "difficulty-judge")
"""The call-log stages an enhancement budget counts."""

Progress = Callable[[int, int, str], None]


@dataclass
class EnhanceReport:
    """What :func:`enhance` did. Mixes are ``{discipline: {level: count}}`` over live items."""

    run_id: int
    targets: dict[str, dict[int, float]]
    rater: str
    rewriter: str
    mix_before: dict[str, dict[int, int]] = field(default_factory=dict)
    mix_after: dict[str, dict[int, int]] = field(default_factory=dict)
    gap_before: float = 0.0
    gap_after: float = 0.0
    rated: int = 0
    rounds: int = 0
    rounds_done: int = 0
    attempted: int = 0
    kept: int = 0
    eliminated: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    requests: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_calls: int = 0  # calls whose tokens were estimated (the server sent no usage)
    errors: list[str] = field(default_factory=list)
    stopped: str | None = None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tokens"] = self.tokens
        return d


# -- enhance ------------------------------------------------------------------------------------


def difficulty_mix(store: Store, run_id: int) -> dict[str, dict[int, int]]:
    """Counts by level 1–5 per discipline over a run's live items (``generated`` or
    ``accepted``; not superseded, rejected or failed). Unrated items are not counted."""
    store.runs.get(run_id)
    return mix_of(store.items.of_run(run_id, LIVE_STATUSES))


def _contexts(store: Store, items: Sequence[Item]) -> dict[int, RewriteContext]:
    """Path KPs and linked seeds of each item, keyed by item id."""
    paths = store.runs.paths_by_id([it.path_id for it in items if it.path_id is not None])
    seed_ids = sorted({s for it in items for s in it.seed_ids})
    seeds = {s.id: s for s in store.seeds.get(seed_ids)}
    seed_kps = store.seeds.kp_names(seed_ids)
    return {
        it.id: RewriteContext(list(paths[it.path_id].kps) if it.path_id in paths else [],
                              [seeds[s] for s in it.seed_ids if s in seeds], seed_kps)
        for it in items if it.id is not None
    }


def _item_shingles(item: Item) -> set[str]:
    out = shingles(item.question)
    for o in item.options or ():
        out |= shingles(o)
    return out


def _select(store: Store, run_id: int, targets: DifficultyTargets, rnd: int) -> list[Item]:
    """The items to rewrite in round ``rnd``: per discipline, lowest difficulty first, as many
    as the largest shortfall of the target share at or above a level."""
    live = [it for it in store.items.of_run(run_id, LIVE_STATUSES) if it.difficulty is not None]
    taken = store.items.slots_ending(run_id, f"/r{rnd}")
    by_disc: dict[str, list[Item]] = {}
    for it in live:
        by_disc.setdefault(it.discipline, []).append(it)
    chosen: list[Item] = []
    for disc in sorted(by_disc):
        group = by_disc[disc]
        counts = {lvl: 0 for lvl in LEVELS}
        for it in group:
            counts[level_of(it.difficulty)] += 1  # type: ignore[index]
        need, top = needed(counts, targets.for_discipline(disc))
        if need <= 0:
            continue
        eligible = [it for it in group if it.status == "generated" and level_of(it.difficulty) < top  # type: ignore[operator]
                    and f"{it.slot}/r{rnd}" not in taken]
        eligible.sort(key=lambda it: (it.difficulty, it.id))
        chosen.extend(eligible[:need])
    return chosen


def enhance(
    store: Store,
    run_id: int,
    targets: DifficultyTargets = DifficultyTargets(),
    settings: Any = None,
    *,
    max_rounds: int = 2,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
    rater: Rater | None = None,
    client: Any = None,
    near_copy: float = NEAR_COPY,
) -> EnhanceReport:
    """Rewrite a run's items harder until each discipline meets its target mix (or the
    rounds run out); returns the mix before and after and what was eliminated, and why.

    ``settings`` is an :class:`~linkqa_core.llm.client.LLMSettings`; ``None`` or an unconfigured
    one works offline (:class:`OfflineRater`, :class:`OfflineRewriter`). ``client`` reuses
    an open :class:`~linkqa_core.llm.client.LLMClient`. ``rater`` overrides the rater; a given
    rater re-rates every ``generated`` item. ``max_rounds`` is the total number of rounds
    for the run, over all calls.
    """
    if not isinstance(targets, DifficultyTargets):
        targets = DifficultyTargets.from_dict(targets) if isinstance(targets, Mapping) else \
            DifficultyTargets.parse(str(targets))
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or not 0 <= max_rounds <= 20:
        raise ConfigError(f"max_rounds must be a whole number 0-20, got {max_rounds!r}")
    if not 0 < near_copy <= 1:
        raise ConfigError(f"the near-copy threshold must be above 0 and at most 1, got {near_copy}")
    store.runs.get(run_id)  # NotFoundError with a clear message
    with store.lease(run_lease(run_id), f"enhancement of run {run_id}"):
        if not store.items.total(run_id):
            raise InputError(f"run {run_id} has no items yet: synthesize first")
        config = dict(store.runs.get(run_id).config)
        config["difficulty"] = {**(config.get("difficulty") or {}), "targets": targets.spec(),
                                "max_rounds": max_rounds, "near_copy": near_copy,
                                "budget_tokens": getattr(settings, "budget_tokens", None),
                                "budget_usd": getattr(settings, "budget_usd", None)}
        store.runs.update(run_id, config=config, status="enhancing")
        finished = False
        try:
            report = _enhance(store, run_id, targets, settings, max_rounds, progress, stop_event, rater, client,
                              near_copy)
            finished = True
        finally:
            store.runs.update(run_id, status="enhanced" if finished else "stopped")
    if progress:
        progress(1, 1, f"{report.kept} of {report.attempted} rewrites kept in {report.rounds} round(s)")
    return report


def _enhance(store: Store, run_id: int, targets: DifficultyTargets, settings: Any, max_rounds: int,
             progress: Progress | None, stop_event: threading.Event | None, rater: Rater | None, client: Any,
             near_copy: float) -> EnhanceReport:
    own_client = False
    if client is None and settings is not None and getattr(settings, "configured", False):
        from ..llm.client import LLMClient
        from ..llm.ledger import Usage

        client = LLMClient(settings, store, spent=Usage.from_store(store, run_id, STAGES))
        own_client = True
    use_llm = client is not None
    rerate_all = rater is not None or use_llm
    if rater is None:
        rater = LLMRater(client) if use_llm else OfflineRater()
    rewriter: Any = LLMRewriter(client, run_id) if use_llm else OfflineRewriter(store)
    checker = LLMChecker(client) if use_llm else None
    usage0 = client.usage if use_llm else None
    report = EnhanceReport(run_id=run_id, targets=targets.to_dict(), rater=rater.name, rewriter=rewriter.name)

    def stopped() -> bool:
        if stop_event is not None and stop_event.is_set():
            report.stopped = report.stopped or "stopped by the curator"
        if use_llm and client.budget_reached:
            report.stopped = report.stopped or "token or money budget reached"
        return report.stopped is not None

    try:
        # 1. rate: every generated item with a model (cached), else only the unrated ones
        live = store.items.of_run(run_id, LIVE_STATUSES)
        to_rate = [it for it in live if it.difficulty is None or (rerate_all and it.status == "generated")]
        if to_rate:
            if progress:
                progress(0, len(to_rate), f"rating {len(to_rate)} items ({rater.name})")
            ratings = rater.rate_many(to_rate, run_id=run_id, stop_event=stop_event)
            updates = [(it.id, float(r.level)) for it, r in zip(to_rate, ratings) if r is not None]
            report.rated = store.items.set_difficulty(updates)
            missing = len(to_rate) - len(updates)
            if missing:
                report.errors.append(f"{missing} item(s) could not be rated")
            if progress:
                progress(len(to_rate), len(to_rate), f"rated {len(updates)} items")
        report.mix_before = difficulty_mix(store, run_id)
        report.gap_before = mix_gap(report.mix_before, targets)

        # 2. rounds
        state = store.runs.get(run_id).config.get("difficulty") or {}
        done = int(state.get("rounds_done", 0))
        report.rounds_done = done
        for rnd in range(done + 1, max_rounds + 1):
            if stopped():
                break
            parents = _select(store, run_id, targets, rnd)
            if not parents:
                break
            finished = _round(store, run_id, rnd, parents, rater, rewriter, checker, report, near_copy,
                              progress, stop_event)
            report.rounds += 1
            if not finished or stopped():
                break
            report.rounds_done = rnd
            config = dict(store.runs.get(run_id).config)
            config["difficulty"] = {**(config.get("difficulty") or {}), "targets": targets.spec(),
                                    "max_rounds": max_rounds, "rounds_done": rnd, "rater": rater.name,
                                    "rewriter": rewriter.name, "near_copy": near_copy}
            store.runs.update(run_id, config=config)
        report.mix_after = difficulty_mix(store, run_id)
        report.gap_after = mix_gap(report.mix_after, targets)
    finally:
        if use_llm:
            u = client.usage
            report.requests = u.requests - usage0.requests
            report.cached = u.cached - usage0.cached
            report.prompt_tokens = u.prompt_tokens - usage0.prompt_tokens
            report.completion_tokens = u.completion_tokens - usage0.completion_tokens
            report.estimated_calls = u.estimated - usage0.estimated
        if own_client:
            client.close()
    return report


    return report


def _round(store: Store, run_id: int, rnd: int, parents: Sequence[Item], rater: Any, rewriter: Any,
           checker: LLMChecker | None, report: EnhanceReport, near_copy: float, progress: Progress | None,
           stop_event: threading.Event | None) -> bool:
    """One round: rewrite, rate, check, store. Returns False when it was cut short."""
    contexts = _contexts(store, parents)
    ops = rewriter.operations
    jobs: list[Rewrite] = []
    for p in parents:
        start = ((p.id or 0) + rnd - 1) % len(ops)
        for k in range(len(ops)):
            job = Rewrite(p, ops[(start + k) % len(ops)], contexts[p.id], f"{p.slot}/r{rnd}")  # type: ignore[index]
            if rewriter.prepare(job):
                jobs.append(job)
                break
    if not jobs:
        return True
    total = len(jobs)
    if progress:
        progress(0, total, f"round {rnd}: rewriting {total} items")
    outcomes = run_task(rewriter, jobs, client=getattr(rewriter, "client", None), stop_event=stop_event)
    complete = True

    def child_of(job: Rewrite, o: Outcome[Item], child: Item | None, status: str, reason: str | None,
                 difficulty: float | None) -> Item:
        res = o.result
        base = child if child is not None else Item(question="", answer="", discipline=job.parent.discipline,
                                                     path_id=job.parent.path_id, seed_ids=job.parent.seed_ids)
        return base.with_(run_id=run_id, parent_id=job.parent.id, slot=job.slot, status=status, gate_reason=reason,
                          operation=job.op, difficulty=difficulty, model=(res.model if res else None) or rewriter.name,
                          reasoning=res.reasoning if res else None, raw=(res.content or None) if res else None,
                          prompt_tokens=(res.prompt_tokens or 0) if res else 0,
                          completion_tokens=(res.completion_tokens or 0) if res else 0)

    rows: list[Item] = []
    pending: list[tuple[Rewrite, Outcome[Item], Item]] = []
    for job, o in zip(jobs, outcomes):
        if o.transient:  # never asked, or the endpoint kept failing: ask again next time
            complete = False
            continue
        report.attempted += 1
        error = o.error
        if error is None:
            bad = validate(o.value)  # type: ignore[arg-type]
            if bad:
                error = f"malformed rewrite: {bad}"
        elif o.result is not None and not error.startswith("malformed"):
            error = f"rewrite request failed: {error}"
        if error is not None:
            report.failed += 1
            report.errors.append(f"item {job.parent.id}: {error}")
            rows.append(child_of(job, o, None, "failed", error, None))
            continue
        child = o.value
        assert child is not None
        sim = jaccard(_item_shingles(job.parent), _item_shingles(child))
        if sim >= near_copy:
            reason = f"adds nothing: near-copy of parent #{job.parent.id} (Jaccard {math.floor(sim * 100) / 100:.2f})"
            rows.append(child_of(job, o, child, "rejected", reason, job.parent.difficulty))
            report.eliminated[REASON_NEAR_COPY] = report.eliminated.get(REASON_NEAR_COPY, 0) + 1
            continue
        pending.append((job, o, child))

    # re-rate: parent and child by the same rater, so the difference is on one scale
    if pending:
        if progress:
            progress(len(rows), total, f"round {rnd}: rating {len(pending)} rewrites")
        ratings = rater.rate_many([x for j, _, c in pending for x in (j.parent, c)], run_id=run_id,
                                  stop_event=stop_event)
        survivors: list[tuple[Rewrite, Outcome[Item], Item, float]] = []
        for k, (job, o, child) in enumerate(pending):
            rp, rc = ratings[2 * k], ratings[2 * k + 1]
            if rp is None or rc is None:
                unrated = {2 * k, 2 * k + 1} & getattr(rater, "transient", set())
                if unrated or (stop_event is not None and stop_event.is_set()):
                    complete = False
                    report.attempted -= 1
                    continue
                reason = f"{REASON_UNCHECKED}: the rater gave no rating"
                rows.append(child_of(job, o, child, "rejected", reason, None))
                report.eliminated[REASON_UNCHECKED] = report.eliminated.get(REASON_UNCHECKED, 0) + 1
                continue
            base = job.parent.difficulty if job.parent.difficulty is not None else float(rp.level)
            new = float(min(5, max(1, base + rc.level - rp.level)))
            if rc.level <= rp.level:
                reason = f"{REASON_NOT_HARDER} ({base:g} -> {new:g})"
                rows.append(child_of(job, o, child, "rejected", reason, new))
                report.eliminated[REASON_NOT_HARDER] = report.eliminated.get(REASON_NOT_HARDER, 0) + 1
                continue
            survivors.append((job, o, child, new))

        checks: list[tuple[str | None, str | None, bool]] = [(None, None, False)] * len(survivors)
        if checker is not None and survivors:
            if progress:
                progress(len(rows), total, f"round {rnd}: checking {len(survivors)} rewrites")
            checks = checker.check_many([(j, c) for j, _, c, _ in survivors], run_id=run_id, stop_event=stop_event)
        for (job, o, child, new), (kind, reason, unstarted) in zip(survivors, checks):
            if unstarted:
                complete = False
                report.attempted -= 1
                continue
            if kind is not None:
                rows.append(child_of(job, o, child, "rejected", reason, new))
                report.eliminated[kind] = report.eliminated.get(kind, 0) + 1
                continue
            rows.append(child_of(job, o, child, "generated", None, new))

    report.kept += store.items.insert_rewrites(rows)
    if progress:
        progress(total, total, f"round {rnd}: {sum(r.status == 'generated' for r in rows)} of {total} rewrites kept")
    return complete
