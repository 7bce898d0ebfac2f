"""The CI guard, ``python benchmarks/run.py --quick``: the engine's results, then its speed.

Results (exact, no tolerance but the distribution check's own):

- ``graph result``: :func:`build_graph`'s graph equals the networkx baseline's, node by
  node and edge by edge (:func:`baselines.compare_graphs`);
- ``walks result``: the timed walks are walks of that graph: as many paths as asked,
  lengths within the knobs, every step an edge, no KP twice in a path, the visit counts
  and start disciplines consistent;
- ``distribution``: engine and baseline walks agree in distribution
  (:func:`baselines.distribution_check`, its own z-rule);
- ``ingest result``: :func:`ingest` read, added and stored exactly the generator's rows:
  counts, no bad rows, and a digest of every stored seed's content (id, text, options,
  answer, discipline, subject, difficulty; ordered by id) equal to the digest of the
  generator's database.

Speed, for graph, walks and ingest, engine and baseline timed in alternating rounds in
this process (so that load elsewhere on the machine lands on both sides alike):

- ``<stage> cpu``: ``ratio = baseline CPU time / engine CPU time`` (per build, path or
  row), taken in each round (the baseline's call over the best of the engine's calls
  just before it) and the median over the rounds, must be ``>= max(floor, tolerance x
  recorded)`` (both per stage). CPU time is what a slower kernel shows in; pairing
  calls made back to back cancels most of what a busy machine does to both (the ratio
  of each side's best call over the whole run swung twice as much under load).
- ``<stage> wait``: the engine's wall/CPU over its calls, divided by the baseline's, must
  be ``<= wait_limit``. Time the engine spends off the CPU (sleeping, waiting on a lock
  or a child) is invisible to CPU time; preemption by other processes stretches both
  sides' wall time alike, so it cancels.

A stage whose speed check fails is measured again, up to ``retries`` more times, and
judged on its best reading: noise has to spoil every reading to fail the guard, a
regression spoils them all. When the process got less than ``busy_share`` of a CPU
during a failing reading (the machine is oversubscribed: then the walks ratio can drop
by a third, as much as a 1.5x regression), it pauses ``busy_pause_s`` before measuring
again, and a final failure says so; it still fails, as nothing was measured cleanly. ``--record-guard`` stores the median ratio of
``--record-runs`` runs (and the spread seen) in ``guard.json``.

The walks are timed first, on graphs built before anything else: the networkx walk's
speed depends on where its graph's objects sit in memory, which the graph stage's
repeated builds scatter (that alone moved the walks ratio by 20 %).

Planted regressions (``--plant``): :mod:`benchmarks.plants`; result checks that need no
timing: :mod:`benchmarks.result_checks`. This module is longer than our ~500 lines
because the stages, the rule and the run share one ``Setup`` and one verdict, and read
best together.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from benchmarks import generate as gen
from benchmarks.plants import parse_plant, planted
from benchmarks.result_checks import content_diff, seed_digest, walk_problems

__all__ = ["Reading", "Check", "run_guard", "judge_ratio", "judge_wait", "main"]

GUARD_STAGES = ("graph", "walks", "distribution", "ingest")
SPEED_STAGES = ("graph", "walks", "ingest")

# -- measurement -------------------------------------------------------------------------------


@dataclass
class Reading:
    """CPU and wall seconds of every engine and baseline call of one measurement of a stage.

    ``engine_units`` / ``base_units`` are the work per call (paths, rows, builds), so that
    ratios compare time per unit when the two sides do different amounts.
    """

    stage: str
    engine_units: float
    base_units: float
    engine_cpu: list[float] = field(default_factory=list)
    engine_wall: list[float] = field(default_factory=list)
    base_cpu: list[float] = field(default_factory=list)
    base_wall: list[float] = field(default_factory=list)

    def per_unit(self, side: str, clock: str = "cpu") -> float:
        """Best (smallest) seconds per unit of one side, for display."""
        times = getattr(self, f"{side}_{clock}")
        units = self.engine_units if side == "engine" else self.base_units
        return min(times) / units

    def round_ratios(self) -> list[float]:
        """Per round: baseline CPU time per unit / the engine's best CPU time per unit in
        that round. The two were measured back to back, under the same conditions."""
        k = len(self.engine_cpu) // len(self.base_cpu)
        return [(b / self.base_units) / (min(self.engine_cpu[i * k:(i + 1) * k]) / self.engine_units)
                for i, b in enumerate(self.base_cpu)]

    def ratio(self) -> float:
        """The median of :meth:`round_ratios` (one baseline call per round)."""
        return statistics.median(self.round_ratios())

    def wait(self) -> float:
        """The engine's wall/CPU over all its calls, divided by the baseline's.

        Preemption by other processes stretches both sides' wall time alike (their calls
        alternate), so this stays near 1; time the engine spends off the CPU (sleeping,
        waiting) raises it.
        """
        return (sum(self.engine_wall) / sum(self.engine_cpu)) / (sum(self.base_wall) / sum(self.base_cpu))

    def cpu_share(self) -> float:
        """CPU time / wall time over every call: the share of a CPU this process got."""
        cpu = sum(self.engine_cpu) + sum(self.base_cpu)
        return cpu / (sum(self.engine_wall) + sum(self.base_wall))

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "cpu_share": self.cpu_share(), "engine_units": self.engine_units, "base_units": self.base_units,
                "engine_cpu": self.engine_cpu, "engine_wall": self.engine_wall, "base_cpu": self.base_cpu,
                "base_wall": self.base_wall, "ratio": self.ratio(), "wait": self.wait()}


def _timed_call(fn: Callable[[], Any], cpu: list[float], wall: list[float]) -> Any:
    gc.collect()
    c, t = time.process_time(), time.perf_counter()
    out = fn()
    wall.append(time.perf_counter() - t)
    cpu.append(time.process_time() - c)
    return out


def interleaved(reading: Reading, engine: Callable[[int], Any], baseline: Callable[[int], Any], rounds: int,
                engine_calls: int = 1, after_engine: Callable[[Any], None] | None = None) -> tuple[Any, Any]:
    """``rounds`` rounds of ``engine_calls`` engine calls then one baseline call.

    Alternating keeps both sides under the same conditions: a burst of load elsewhere on
    the machine lands on both, not on one. The callables get a call number (for seeds).
    Each side's previous result is released (and collected) before its next call's clock
    starts; ``after_engine`` sees each engine result, untimed. Returns the last results.
    """
    eng = base = None
    k = 0
    for _ in range(rounds):
        for _ in range(engine_calls):
            k += 1
            eng = None
            eng = _timed_call(lambda: engine(k), reading.engine_cpu, reading.engine_wall)
            if after_engine is not None:
                after_engine(eng)
        k += 1
        base = None
        base = _timed_call(lambda: baseline(k), reading.base_cpu, reading.base_wall)
    return eng, base


# -- checks ----------------------------------------------------------------------------------


@dataclass
class Check:
    """One line of the verdict: ``name`` (e.g. ``graph cpu``), pass or fail, and what was seen."""

    name: str
    ok: bool
    line: str
    data: dict[str, Any] = field(default_factory=dict)


def judge_ratio(stage: str, readings: list[Reading], guard: dict[str, Any]) -> Check:
    """CPU ratio >= max(floor, tolerance x recorded), on the best of ``readings``."""
    spec = guard["ratios"][stage]
    recorded = float(spec["recorded"])
    tol = float(spec["tolerance"])
    threshold = max(float(spec["floor"]), tol * recorded)
    values = [r.ratio() for r in readings]
    best = max(values)
    r = readings[values.index(best)]
    line = (f"{best:.2f}x (median of {len(r.base_cpu)} rounds; recorded {recorded:.2f}x, threshold {threshold:.2f}x"
            f" = max(floor {spec['floor']:g}, {tol:g} x recorded)); best engine {_fmt_unit(stage, r.per_unit('engine'))},"
            f" baseline {_fmt_unit(stage, r.per_unit('base'))} CPU")
    if len(values) > 1:
        line += f"; readings {', '.join(f'{v:.2f}x' for v in values)}"
    ok = best >= threshold
    share = max(x.cpu_share() for x in readings)
    if not ok and share < float(guard["busy_share"]):
        line += (f"; this process got at most {share:.2f} of a CPU while measuring: the machine is oversubscribed,"
                 f" which has moved this ratio by up to a third (walks) -- re-run on a quieter machine before"
                 f" blaming the code")
    return Check(f"{stage} cpu", ok, line, {"values": values, "threshold": threshold, "cpu_share": share})


def judge_wait(stage: str, readings: list[Reading], guard: dict[str, Any]) -> Check:
    """Engine wall/CPU <= wait_limit x the baseline's, on the best of ``readings``."""
    limit = float(guard["wait_limit"])
    values = [r.wait() for r in readings]
    best = min(values)
    r = readings[values.index(best)]
    e = sum(r.engine_wall) / sum(r.engine_cpu)
    b = sum(r.base_wall) / sum(r.base_cpu)
    line = (f"{best:.2f} (limit {limit:g}): engine wall/CPU {e:.2f}, baseline {b:.2f}; engine"
            f" {_fmt_unit(stage, r.per_unit('engine', 'wall'))} wall vs {_fmt_unit(stage, r.per_unit('engine'))} CPU")
    if len(values) > 1:
        line += f"; readings {', '.join(f'{v:.2f}' for v in values)}"
    if best > limit:
        line += " -- the engine spends time off the CPU (sleeping or waiting)"
    return Check(f"{stage} wait", best <= limit, line, {"values": values, "limit": limit})


JUDGES = (judge_ratio, judge_wait)


def _fmt_unit(stage: str, seconds_per_unit: float) -> str:
    if stage == "graph":
        return f"{seconds_per_unit * 1e3:.1f} ms/build"
    if stage == "walks":
        return f"{seconds_per_unit * 1e6:.2f} us/path"
    return f"{seconds_per_unit * 1e6:.1f} us/row"


# -- the stages ------------------------------------------------------------------------------
# Engine functions are looked up on their modules at call time (``graph_build.build_graph``),
# so that a plant installed on the module is what runs.


@dataclass
class Setup:
    """What every stage needs: the guard's settings, the data, the workdir and the knobs."""

    guard: dict[str, Any]
    n: int
    db: str
    jsonl: str
    workdir: Path
    params: Any
    seed_base: int = 0  # moves on at each repeated measurement, so repeats walk new seeds


def measure_graph(s: Setup) -> tuple[Reading, Any, Any]:
    from benchmarks.baselines import nx_build_graph
    from linkqa_core.graph import build as graph_build
    from linkqa_core.store import Store

    rounds, calls = s.guard["rounds"]["graph"], s.guard["engine_calls"]["graph"]
    reading = Reading("graph", 1, 1)
    with Store(s.db) as store:
        graph_build.build_graph(store)  # warm-up: numba compile or cache load, excluded
        g, nxg = interleaved(reading, lambda _k: graph_build.build_graph(store), lambda _k: nx_build_graph(store),
                             rounds, calls)
    return reading, g, nxg


def untimed_graphs(s: Setup) -> tuple[Any, Any]:
    """The engine's and networkx's graphs, for stages that walk them without the graph stage."""
    from benchmarks.baselines import nx_build_graph
    from linkqa_core.graph import build as graph_build
    from linkqa_core.store import Store

    with Store(s.db) as store:
        return graph_build.build_graph(store), nx_build_graph(store)


def measure_walks(s: Setup, g, nxg) -> tuple[Reading, list[Any]]:
    from benchmarks.baselines import nx_value_walks
    from linkqa_core.graph import walks as graph_walks

    wp, bp = s.guard["walk_paths"], s.guard["baseline_paths"]
    rounds, calls = s.guard["rounds"]["walks"], s.guard["engine_calls"]["walks"]
    reading = Reading("walks", wp, bp)
    graph_walks.value_walks(g, s.params, 10, seed=0)  # warm-up, excluded
    seeds = s.seed_base * 1000
    results: list[Any] = []
    interleaved(reading, lambda k: graph_walks.value_walks(g, s.params, wp, seed=seeds + k),
                lambda k: nx_value_walks(nxg, s.params, bp, seed=seeds + k), rounds, calls,
                after_engine=results.append)
    return reading, results


@dataclass
class IngestOutcome:
    """What one timed ingest did: its report's counts and the stored content's digest."""

    rows_read: int
    added: int
    duplicates: int
    bad_rows: int
    stored: int
    digest: str


def measure_ingest(s: Setup, expected_digest: str) -> tuple[Reading, list[IngestOutcome], Path | None]:
    """Engine ingest and the raw reference, each into a fresh file (opened before the clock).

    Returns the reading, each engine call's outcome and, if one stored other content than
    expected, a copy of that database (for the failure line)."""
    from benchmarks.run import cpu_with_children, raw_insert
    from linkqa_core.ingest import load as ingest_load
    from linkqa_core.store import Store

    rounds, calls = s.guard["rounds"]["ingest"], s.guard["engine_calls"]["ingest"]
    reading = Reading("ingest", s.n, s.n)
    outcomes: list[IngestOutcome] = []
    bad_copy: Path | None = None

    def timed_into(path: Path, fn: Callable[[Any], Any], cpu: list[float], wall: list[float]) -> Any:
        for p in s.workdir.glob(f"{path.name}*"):
            p.unlink()
        with Store(path) as store:
            gc.collect()
            c, t = cpu_with_children(), time.perf_counter()
            out = fn(store)
            wall.append(time.perf_counter() - t)
            cpu.append(cpu_with_children() - c)
        return out

    for _ in range(rounds):
        for _ in range(calls):
            path = s.workdir / "ingest-engine.db"
            report = timed_into(path, lambda st: ingest_load.ingest(st, s.jsonl), reading.engine_cpu, reading.engine_wall)
            stored, digest = seed_digest(path)
            outcomes.append(IngestOutcome(report.rows_read, report.added, report.duplicates, len(report.bad_rows),
                                          stored, digest))
            if digest != expected_digest and bad_copy is None:
                bad_copy = s.workdir / "ingest-differs.db"
                shutil.copy(path, bad_copy)
        rows = timed_into(s.workdir / "ingest-raw.db", lambda st: raw_insert(st, s.jsonl), reading.base_cpu,
                          reading.base_wall)
        if rows != s.n:
            raise RuntimeError(f"the raw ingest reference read {rows:,} rows, expected {s.n:,}")
    for p in s.workdir.glob("ingest-*.db*"):
        if bad_copy is None or p != bad_copy:
            p.unlink()
    return reading, outcomes, bad_copy


def check_ingest(outcomes: list[IngestOutcome], n: int, reference_db: str, expected_digest: str,
                 bad_copy: Path | None) -> Check:
    want = (n, n, n, 0, 0, expected_digest)
    bad = [o for o in outcomes if (o.rows_read, o.added, o.stored, o.bad_rows, o.duplicates, o.digest) != want]
    o = bad[0] if bad else outcomes[0]
    counts = (f"{o.rows_read:,} rows read, {o.added:,} added, {o.stored:,} stored, {o.bad_rows:,} bad,"
              f" {o.duplicates:,} duplicates")
    if not bad:
        return Check("ingest result", True, f"{counts} (each of {len(outcomes)} ingests); content digest = the"
                                            f" generator's ({expected_digest[:12]})")
    line = f"{len(bad)} of {len(outcomes)} ingests wrong: "
    if (o.rows_read, o.added, o.stored, o.bad_rows, o.duplicates) != (n, n, n, 0, 0):
        line += f"expected {n:,} rows read, added and stored, 0 bad, 0 duplicates; got {counts}"
    else:
        line += f"counts right ({counts})"
    if o.digest != expected_digest:
        line += f"; content digest {o.digest[:12]} != generator's {expected_digest[:12]}"
        if bad_copy is not None:
            line += f": {content_diff(bad_copy, reference_db)}"
    return Check("ingest result", False, line)


def check_graph(g, nxg) -> Check:
    from benchmarks.baselines import compare_graphs

    cmp = compare_graphs(g, nxg)
    if cmp["same"]:
        return Check("graph result", True, f"engine graph = networkx graph: {g.n_nodes:,} nodes, {g.n_edges:,} edges,"
                                           f" all weights and node attributes", cmp)
    return Check("graph result", False, f"engine graph != networkx graph: nodes {cmp['nodes']}, edges {cmp['edges']},"
                                        f" total weight {cmp['total_weight']}, {cmp['node_mismatches']:,} node and"
                                        f" {cmp['edge_mismatches']:,} edge mismatches (engine, networkx)", cmp)


def check_walks(g, results: list[Any], params, n_paths: int) -> Check:
    for i, w in enumerate(results):
        problems = walk_problems(g, w, params, n_paths)
        if problems:
            return Check("walks result", False, f"timed walk {i + 1}: " + "; ".join(problems))
    lengths = results[-1].lengths
    return Check("walks result", True, f"{len(results)} x {n_paths:,} paths: every step an edge, no KP twice in a path,"
                                       f" lengths {lengths.min()}-{lengths.max()} (mean {lengths.mean():.2f})")


def check_distribution(s: Setup, g, nxg) -> Check:
    from benchmarks.baselines import distribution_check

    paths, repeats = s.guard["dist_paths"], s.guard["dist_repeats"]
    res = distribution_check(g, nxg, s.params, paths, repeats=repeats)
    worst_name, worst = max(res["metrics"].items(), key=lambda kv: abs(kv[1]["z"]))
    where = f"{paths:,} paths x {repeats} seeds, {res['rule']}"
    if res["agree"]:
        return Check("distribution", True, f"{len(res['metrics'])} metrics agree ({where}); largest |z| {abs(worst['z']):.1f}"
                                           f" ({worst_name})", res)
    bad = [f"{m} engine {r['engine']:.4f} vs networkx {r['baseline']:.4f} (z {r['z']:+.1f})"
           for m, r in res["metrics"].items() if not r["agree"]]
    return Check("distribution", False, f"{len(bad)} of {len(res['metrics'])} metrics differ ({where}): " + "; ".join(bad),
                 res)


def _guarded(name: str, fn: Callable[[], Check]) -> Check:
    """A check that raises is a failed check with a one-line message."""
    try:
        return fn()
    except Exception as err:  # noqa: BLE001 - any failure of the engine under test is a finding
        return _raised(name, err)


# -- the guard -------------------------------------------------------------------------------


@dataclass
class Outcome:
    checks: list[Check]
    readings: dict[str, list[Reading]]
    elapsed_s: float

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def _raised(name: str, err: Exception) -> Check:
    return Check(name, False, f"raised {type(err).__name__}: {err}".splitlines()[0][:300])


def run_guard(guard: dict[str, Any], data: dict[str, Any], workdir: Path, *, stages: tuple[str, ...] = GUARD_STAGES,
              judge: bool = True, say: Callable[[str], None] = lambda m: None) -> Outcome:
    """Measure and check ``stages`` once. With ``judge=False`` (recording) speed is measured, not judged.

    Each stage's result is checked on what its timed calls returned; a stage that raises
    fails its result check with the error's first line, and the guard goes on.
    """
    from linkqa_core.graph.walks import WalkParams

    t0 = time.perf_counter()
    s = Setup(guard, gen.parse_size(guard["size"]), data["db"], data["jsonl"], workdir, WalkParams())
    checks: list[Check] = []
    readings: dict[str, list[Reading]] = {}
    retries = int(guard["retries"]) if judge else 0

    def speed(stage: str, first: Reading, again: Callable[[], Reading]) -> None:
        """Judge the stage's ratios; measure again while one fails, up to ``retries`` times."""
        readings[stage] = [first]
        if not judge:
            return
        for _ in range(retries):
            if all(j(stage, readings[stage], guard).ok for j in JUDGES):
                break
            share = readings[stage][-1].cpu_share()
            if share < float(guard["busy_share"]):
                say(f"  {stage}: outside the rule while this process got {share:.2f} of a CPU; pausing"
                    f" {guard['busy_pause_s']} s for the machine to calm down, then measuring again …")
                time.sleep(float(guard["busy_pause_s"]))
            else:
                say(f"  {stage}: outside the rule, measuring again …")
            s.seed_base += 1
            readings[stage].append(again())
        checks.extend(j(stage, readings[stage], guard) for j in JUDGES)

    # Walks first, on graphs built before anything else: the networkx walk's speed depends
    # on where its graph's objects sit in memory, which the graph stage's repeated builds
    # would scatter.
    if {"walks", "distribution"} & set(stages):
        try:
            g, nxg = untimed_graphs(s)
        except Exception as err:  # noqa: BLE001 - a failure of the engine under test is a finding
            checks.append(_raised("graph result", err))
            return Outcome(checks, readings, time.perf_counter() - t0)
        if "walks" in stages:
            say("walks: engine vs networkx, interleaved …")
            try:
                reading, results = measure_walks(s, g, nxg)
                checks.append(_guarded("walks result",
                                       lambda: check_walks(g, results, s.params, guard["walk_paths"])))
                del results
                speed("walks", reading, lambda: measure_walks(s, g, nxg)[0])
            except Exception as err:  # noqa: BLE001
                checks.append(_raised("walks result", err))
        if "distribution" in stages:
            say(f"distribution: {guard['dist_paths']:,} paths x {guard['dist_repeats']} seeds, engine vs networkx …")
            checks.append(_guarded("distribution", lambda: check_distribution(s, g, nxg)))
        del g, nxg
        gc.collect()
    if "graph" in stages:
        say("graph: engine vs networkx, interleaved …")
        try:
            reading, g, nxg = measure_graph(s)
            checks.append(_guarded("graph result", lambda: check_graph(g, nxg)))
            del g, nxg
            speed("graph", reading, lambda: measure_graph(s)[0])
        except Exception as err:  # noqa: BLE001
            checks.append(_raised("graph result", err))
        gc.collect()
    if "ingest" not in stages:
        return Outcome(checks, readings, time.perf_counter() - t0)

    say("ingest: engine vs raw json.loads + INSERT, interleaved …")
    try:
        _, expected = seed_digest(s.db)
        reading, outcomes, bad_copy = measure_ingest(s, expected)
        checks.append(_guarded("ingest result", lambda: check_ingest(outcomes, s.n, s.db, expected, bad_copy)))
        speed("ingest", reading, lambda: measure_ingest(s, expected)[0])
    except Exception as err:  # noqa: BLE001
        checks.append(_raised("ingest result", err))
    return Outcome(checks, readings, time.perf_counter() - t0)


def print_outcome(out: Outcome, guard: dict[str, Any], n: int, plants: list[str]) -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"quick benchmark guard at {gen.size_label(n)} seeds ({out.elapsed_s:.0f} s; load average {load:.1f}"
          f" on {os.cpu_count()} CPUs)" + (f" -- PLANTED: {', '.join(plants)}" if plants else ""))
    width = max(len(c.name) for c in out.checks)
    for c in out.checks:
        print(f"{c.name:<{width}}  {'ok  ' if c.ok else 'FAIL'}  {c.line}")
    print(f"rule: {guard['rule']}")
    if out.failed:
        print("GUARD FAILED: " + "; ".join(f"{c.name}" for c in out.failed))
    else:
        print("guard passed")


def record(guard: dict[str, Any], runs: list[dict[str, Any]], guard_path: Path) -> None:
    """Store the median CPU ratio of each stage over ``runs`` (the JSON of unjudged guard
    runs, one process each) and the spread of the ratios and waits in ``guard_path``."""
    spread: dict[str, Any] = {}
    for stage in SPEED_STAGES:
        ratios = [r["readings"][stage][0]["ratio"] for r in runs]
        waits = [r["readings"][stage][0]["wait"] for r in runs]
        guard["ratios"][stage]["recorded"] = round(statistics.median(ratios), 3)
        spread[stage] = {"ratio": [round(min(ratios), 3), round(max(ratios), 3)],
                         "wait": [round(min(waits), 3), round(max(waits), 3)]}
    guard["recorded"] = {"on": f"{platform.node()} {time.strftime('%Y-%m-%d')}", "runs": len(runs),
                         "min_max": spread}
    text = json.dumps(guard, indent=1)
    text = re.sub(r"\[\s+([-\d.]+),\s+([-\d.]+)\s+\]", r"[\1, \2]", text)  # [min, max] on one line
    text = re.sub(r'\{\s+("graph": \d+),\s+("walks": \d+),\s+("ingest": \d+)\s+\}', r"{\1, \2, \3}", text)
    guard_path.write_text(text + "\n")


def _record_runs(args, guard_path: Path) -> list[dict[str, Any]]:
    """``--record-runs`` unjudged guard runs, each in a fresh process: a process's memory
    layout moves the ratios by a few percent, so one process would not show the spread."""
    runs = []
    for i in range(args.record_runs):
        with tempfile.TemporaryDirectory(prefix="guard-record-") as tmp:
            out = Path(tmp) / "run.json"
            cmd = [sys.executable, str(Path(__file__).resolve().parent / "run.py"), "--quick", "--no-judge",
                   "--guard", str(guard_path), "--out", str(out), "--seed", str(args.seed)]
            if args.data_dir:
                cmd += ["--data-dir", str(args.data_dir)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0 or not out.exists():
                sys.stdout.write(proc.stdout)
                raise SystemExit(f"not recorded: run {i + 1} failed ({proc.returncode}); {proc.stderr[-500:]}")
            runs.append(json.loads(out.read_text()))
        r = runs[-1]["readings"]
        print(f"run {i + 1} of {args.record_runs}: " + ", ".join(f"{k} {v[0]['ratio']:.2f}x" for k, v in r.items()),
              flush=True)
    return runs


def main(args) -> int:
    """``run.py --quick``: the guard (``--record-guard``: record it; ``--plant``: break it on purpose)."""
    from benchmarks.run import DATA_DIR, meta, prepare_data, say, write_out

    guard_path = Path(args.guard)
    guard = json.loads(guard_path.read_text())
    n = gen.parse_size(guard["size"])
    plants = list(args.plant or [])
    for p in plants:
        parse_plant(p)
    stages = tuple(x.strip() for x in (args.only or ",".join(GUARD_STAGES)).split(",") if x.strip())
    if set(stages) - set(GUARD_STAGES):
        raise SystemExit(f"--only: unknown guard stages {sorted(set(stages) - set(GUARD_STAGES))};"
                         f" choose from {', '.join(GUARD_STAGES)}")
    if args.record_guard:
        if plants or stages != GUARD_STAGES:
            raise SystemExit("--record-guard records every stage of the unplanted guard: drop --plant and --only")
        prepare_data(n, args.seed, Path(args.data_dir or DATA_DIR), jsonl=True)
        runs = _record_runs(args, guard_path)
        record(guard, runs, guard_path)
        print(f"recorded in {guard_path}: median CPU ratio of {len(runs)} runs (one process each); min-max "
              + "; ".join(f"{k} ratio {v['ratio'][0]:.2f}-{v['ratio'][1]:.2f}x, wait {v['wait'][0]:.2f}-{v['wait'][1]:.2f}"
                          for k, v in guard["recorded"]["min_max"].items()))
        return 0
    data = prepare_data(n, args.seed, Path(args.data_dir or DATA_DIR), jsonl=True)
    judge = not args.no_judge
    with tempfile.TemporaryDirectory(prefix="guard-") as tmp, planted(plants):
        out = run_guard(guard, data, Path(tmp), stages=stages, judge=judge, say=say)
    print_outcome(out, guard, n, plants)
    write_out(args.out, {"quick": True, "size": n, "plants": plants, "stages": list(stages), "judged": judge,
                         "elapsed_s": round(out.elapsed_s, 1),
                         "checks": [{"name": c.name, "ok": c.ok, "line": c.line} for c in out.checks],
                         "failed": [c.name for c in out.failed],
                         "readings": {k: [r.to_dict() for r in v] for k, v in out.readings.items()},
                         "meta": meta(args)})
    return 1 if out.failed else 0
