"""Scale benchmarks of the engine against the obvious implementations (issue #5).

    python benchmarks/run.py                     # 10k and 100k seeds, every stage
    python benchmarks/run.py --size 1M           # or 10k,100k,1M / all
    python benchmarks/run.py --stages graph,walks --size 100k
    python benchmarks/run.py --quick             # the CI guard: ratios at 10k, exit 1 on regression

Stages (each a row of the table; the figure, the baseline's figure, their ratio, the
target and whether it is met):

- ``ingest``: rows/s of :func:`linkqa_core.seeds.ingest` from a generated MMLU-shaped
  JSONL into a fresh SQLite file. Baseline: a raw reference (``json.loads`` + one INSERT
  per row of the same columns, no validation); its ratio is guarded, not targeted.
- ``graph``: seconds of :func:`linkqa_core.graph.build_graph` (stored links -> walkable
  graph, median of 3) against networkx edge by edge (:func:`baselines.nx_build_graph`,
  best of 2, one run at 1M, in a child process so that its millions of objects do not
  slow the engine's timings); the two graphs are checked equal.
- ``graph_proposed``: the same for ``benchmarks/proposals/graph_build.py``, the proposed
  replacement of ``build_graph`` (timed interleaved with the engine; checked identical).
- ``walks``: paths/s of :func:`linkqa_core.walks.value_walks` for ``--paths`` paths
  (default 100k; value function and coverage updates; median of 3, after a warm-up
  call so numba compilation is excluded) against :func:`baselines.nx_value_walks` on a
  prefix of the paths (``--baseline-paths``; its rate is extrapolated, as the table says).
- ``bundles``: paths/s of :func:`linkqa_core.bundles.choose_bundles` on those paths (no baseline).
- ``distribution``: engine vs baseline sample metrics on the same graph and knobs (the
  smallest size, 5,000 paths, 5 seeds each): must agree within noise.
- ``memory``: peak resident memory (VmHWM) of a fresh process that builds the graph and
  walks ``--paths`` paths (``memory_proposed``: the same with the proposed build).
- ``jit``: numba compile time of the walk and bundle kernels (fresh cache directory),
  reported separately, never inside a timing.
- ``llm``, ``app``: slots for the LLM-throughput and app benchmarks (not written yet).

Every row also carries CPU seconds; the ``cpu ratio`` column divides those, which
contention on a shared machine barely moves (the guard uses CPU ratios only).
Generated data sets are cached under ``benchmarks/results/data/`` (gitignored), keyed
by size, seed and a digest of ``zipf_fit.json``. Results go to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks import generate as gen  # noqa: E402

DEFAULT_OUT = HERE / "results" / "latest.json"
DATA_DIR = HERE / "results" / "data"
GUARD_PATH = HERE / "guard.json"
ALL_STAGES = ("ingest", "graph", "graph_proposed", "walks", "bundles", "distribution", "memory", "jit", "llm", "app")
# baseline walk paths per size (the baseline's rate is extrapolated from them)
BASELINE_PATHS = {10_000: 20_000, 100_000: 5_000, 1_000_000: 2_000}
TARGETS = {
    "ingest_rows_per_s": 50_000,
    "graph_ratio": 10.0,
    "graph_seconds": 10.0,
    "walks_ratio": 20.0,
    "walks_paths_per_s": 20_000,
    "memory_gb": 3.0,
}
TARGET_SIZE = 1_000_000  # the targets are stated for 1M seeds


# -- small helpers ---------------------------------------------------------------------------


def peak_rss_bytes() -> int:
    """VmHWM of this process (peak resident set), from /proc; ru_maxrss elsewhere."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss_bytes() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Timing:
    """Wall and CPU seconds of repeated calls. CPU time (this process) is what the ratios
    are robust with on a shared machine; wall time is what the targets are stated in."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    @property
    def best(self) -> float:
        return min(self.wall)

    @property
    def cpu_best(self) -> float:
        return min(self.cpu)


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[Timing, Any]:
    """Time ``repeat`` calls of ``fn``; returns the timing and the last result."""
    tm = Timing()
    out = None
    for _ in range(repeat):
        out = None
        gc.collect()
        c, t = time.process_time(), time.perf_counter()
        out = fn()
        tm.wall.append(time.perf_counter() - t)
        tm.cpu.append(time.process_time() - c)
    return tm, out


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_child(kind: str, args: list[str], env: dict[str, str] | None = None, timeout: float = 3600) -> dict[str, Any]:
    """Run ``run.py --child KIND`` in a fresh interpreter; its last stdout line is JSON."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"child {kind} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- data ------------------------------------------------------------------------------------


def prepare_data(n: int, seed: int, data_dir: Path, *, jsonl: bool) -> dict[str, Any]:
    """Generated store (and JSONL) for ``n`` seeds, cached; returns paths and timings."""
    fit = gen.load_fit()
    base = data_dir / f"{gen.size_label(n)}-s{seed}-{gen.fit_digest(fit)}"
    db, db_ok = base.with_suffix(".db"), base.with_suffix(".db.ok")
    js, js_ok = base.with_suffix(".jsonl"), base.with_suffix(".jsonl.ok")
    info: dict[str, Any] = {"db": str(db), "jsonl": str(js) if jsonl else None}
    data = None
    if not db_ok.exists() or (jsonl and not js_ok.exists()):
        data_dir.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        data = gen.generate(n, seed=seed, fit=fit)
        info["generate_s"] = round(time.perf_counter() - t, 3)
        info["summary"] = data.summary()
    if not db_ok.exists():
        for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            p.unlink(missing_ok=True)
        from linkqa_core.store import Store

        say(f"  writing {gen.size_label(n)} seeds into {db.name} …")
        t = time.perf_counter()
        with Store(db) as store:
            gen.write_store(data, store, fit)
            store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        info["write_store_s"] = round(time.perf_counter() - t, 3)
        db_ok.write_text(json.dumps(data.summary()))
    if jsonl and not js_ok.exists():
        say(f"  writing {gen.size_label(n)} JSONL rows into {js.name} …")
        t = time.perf_counter()
        info["jsonl_bytes"] = gen.write_jsonl(data, js, fit)
        info["write_jsonl_s"] = round(time.perf_counter() - t, 3)
        js_ok.write_text("ok")
    if "summary" not in info:
        info["summary"] = json.loads(db_ok.read_text())
    return info


# -- stage bodies ----------------------------------------------------------------------------


def raw_ingest(path: str, db: str) -> int:
    """The raw reference: json.loads + INSERT of the same columns, one transaction, no checks."""
    import hashlib

    from linkqa_core.store import Store

    n = 0
    now = time.time()
    with Store(db) as store, store.transaction() as conn:
        def rows():
            nonlocal n
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    r = json.loads(line)
                    opts = [r["answer_a"], r["answer_b"], r["answer_c"], r["answer_d"]]
                    answer = opts["ABCD".index(r["correct_answer"])]
                    n += 1
                    yield (hashlib.sha256(r["question"].encode()).hexdigest()[:16], r["question"], answer,
                           json.dumps(opts), r["correct_answer"], "Other", r["topic"], r.get("difficulty"), now)
        conn.executemany("INSERT OR IGNORE INTO seeds (id, question, answer, options, answer_letter, discipline,"
                         " subject, difficulty, added_at) VALUES (?,?,?,?,?,?,?,?,?)", rows())
    return n


def stage_ingest(n: int, data: dict[str, Any], workdir: Path, *, with_baseline: bool = True) -> dict[str, Any]:
    try:
        from linkqa_core.seeds import ingest
    except ImportError as err:
        return {"stage": "ingest", "size": n, "status": "skipped", "note": f"linkqa_core.seeds.ingest not importable ({err})"}
    from linkqa_core.store import Store

    path = data["jsonl"]
    rates: list[float] = []
    cpu_rates: list[float] = []
    report = None
    for rep in range(1 if n >= 1_000_000 else 2):
        db = workdir / f"ingest-{n}-{rep}.db"
        with Store(db) as store:
            gc.collect()
            c, t = time.process_time(), time.perf_counter()
            report = ingest(store, path)
            dt = time.perf_counter() - t
            cpu_rates.append(report.rows_read / (time.process_time() - c))
        rates.append(report.rows_read / dt)
        for p in workdir.glob(f"ingest-{n}-{rep}.db*"):
            p.unlink()
    rate = max(rates)
    row = {"stage": "ingest", "size": n, "figure": rate, "unit": "rows/s", "times_rows_per_s": rates,
           "cpu_rows_per_s": cpu_rates,
           "added": report.added, "bad_rows": len(report.bad_rows), "rows_read": report.rows_read,
           "target": f">= {TARGETS['ingest_rows_per_s']:,} rows/s",
           "pass": rate >= TARGETS["ingest_rows_per_s"]}
    if report.added != n:
        row["note"] = f"expected {n} seeds added, got {report.added}"
        row["pass"] = False
    if with_baseline:
        db = workdir / f"raw-{n}.db"
        gc.collect()
        c, t = time.process_time(), time.perf_counter()
        rows = raw_ingest(path, str(db))
        base = rows / (time.perf_counter() - t)
        base_cpu = rows / (time.process_time() - c)
        for p in workdir.glob(f"raw-{n}.db*"):
            p.unlink()
        row.update(baseline=base, ratio=rate / base, cpu_ratio=max(cpu_rates) / base_cpu,
                   baseline_note="raw json.loads + INSERT, no validation")
    return row


def engine_graph(db: str, repeat: int, proposed: bool = False) -> dict[str, Any]:
    """build_graph timings (wall and CPU), interleaved with the proposed build when asked."""
    from linkqa_core.graph import build_graph
    from linkqa_core.store import Store

    out: dict[str, Any] = {"wall": [], "cpu": [], "p_wall": [], "p_cpu": []}
    store = Store(db)
    if proposed:
        from benchmarks.proposals import graph_build

        graph_build.build_graph(store)  # numba compile or cache load, excluded
    for _ in range(repeat):
        for which in ("", "p_") if proposed else ("",):
            fn = graph_build.build_graph if which else build_graph
            gc.collect()
            c, t = time.process_time(), time.perf_counter()
            g = fn(store)
            out[which + "wall"].append(time.perf_counter() - t)
            out[which + "cpu"].append(time.process_time() - c)
            if which:
                out["same_as_engine"] = graph_build.same_graph(out["graph"], g) == []
                del g
            else:
                out["graph"] = g
    store.close()
    if proposed:
        # the proposal with its optional migration (covering index), on a copy of the data
        import sqlite3

        with tempfile.TemporaryDirectory(dir=Path(db).parent) as tmp:
            copy = Path(tmp) / "migrated.db"
            shutil.copyfile(db, copy)
            conn = sqlite3.connect(copy)
            t = time.perf_counter()
            conn.executescript(graph_build.MIGRATION)
            conn.commit()
            conn.close()
            out["migration_s"] = time.perf_counter() - t
            mstore = Store(copy)
            tm, g = timed(lambda: graph_build.build_graph(mstore), repeat)
            out["m_wall"], out["m_cpu"] = tm.wall, tm.cpu
            out["m_same_as_engine"] = graph_build.same_graph(out["graph"], g) == []
            del g
            mstore.close()
    return out


def engine_walks(g, params, n_paths: int, repeat: int) -> tuple[Timing, Any, float]:
    from linkqa_core.walks import value_walks

    t = time.perf_counter()
    value_walks(g, params, 10, seed=0)  # warm-up: numba compile or cache load, excluded
    warm = time.perf_counter() - t
    seeds = iter(range(1, repeat + 1))
    tm, walks = timed(lambda: value_walks(g, params, n_paths, seed=next(seeds)), repeat)
    return tm, walks, warm


def child_baseline(db: str, n_paths: int, compare: bool, graph_repeat: int = 1) -> dict[str, Any]:
    """In a fresh process: networkx graph edge by edge (best of ``graph_repeat``), then nx walks."""
    from benchmarks.baselines import compare_graphs, nx_build_graph, nx_value_walks
    from linkqa_core.store import Store
    from linkqa_core.walks import WalkParams

    out: dict[str, Any] = {"rss_start": rss_bytes()}
    store = Store(db)
    tm, nxg = timed(lambda: nx_build_graph(store), max(1, graph_repeat))
    out["graph_s"], out["graph_cpu_s"] = tm.best, tm.cpu_best
    out["graph_times_s"], out["graph_cpu_times_s"] = tm.wall, tm.cpu
    out["rss_after_graph"] = rss_bytes()
    if n_paths:
        tm, res = timed(lambda: nx_value_walks(nxg, WalkParams(), n_paths, seed=1))
        out["walks_s"], out["walks_cpu_s"] = tm.best, tm.cpu_best
        out["walk_paths"] = len(res["paths"])
        out["walk_nodes"] = sum(len(p) for p in res["paths"])
    if compare:
        from linkqa_core.graph import build_graph

        out["compare"] = compare_graphs(build_graph(store), nxg)
    out["peak_rss"] = peak_rss_bytes()
    return out


def child_memory(db: str, n_paths: int, proposed: bool = False) -> dict[str, Any]:
    """In a fresh process: build the graph and walk; peak resident memory."""
    if proposed:
        from benchmarks.proposals.graph_build import build_graph
    else:
        from linkqa_core.graph import build_graph
    from linkqa_core.store import Store
    from linkqa_core.walks import WalkParams, value_walks

    out: dict[str, Any] = {"rss_after_imports": rss_bytes()}
    store = Store(db)
    t = time.perf_counter()
    g = build_graph(store)
    out["graph_s"] = time.perf_counter() - t
    out["rss_after_graph"] = rss_bytes()
    out["peak_after_graph"] = peak_rss_bytes()
    t = time.perf_counter()
    w = value_walks(g, WalkParams(), n_paths, seed=1)
    out["walks_s"] = time.perf_counter() - t  # includes numba cache load
    out["paths"] = len(w)
    out["graph_arrays_bytes"] = int(sum(a.nbytes for a in (g.kp_ids, g.freq, g.discipline, g.difficulty, g.indptr,
                                                              g.indices, g.weights, g.seed_indptr, g.seed_rids,
                                                              g.discipline_counts)))
    out["peak_rss"] = peak_rss_bytes()
    return out


def child_jit() -> dict[str, Any]:
    """Compile times of the numba kernels (run with a fresh NUMBA_CACHE_DIR)."""
    t = time.perf_counter()
    from linkqa_core.bundles import choose_bundles
    from linkqa_core.graph import graph_from_links
    from linkqa_core.walks import WalkParams, uniform_walks, value_walks

    out: dict[str, Any] = {"import_s": time.perf_counter() - t}
    d = gen.generate(2000, seed=3)
    rid, kp = d.link_arrays()
    g = graph_from_links(rid, kp, np.r_[0, d.seed_discipline], np.r_[np.nan, d.seed_difficulty.astype(float)],
                         d.disciplines)
    for name, fn in (("walk_kernel", lambda: value_walks(g, WalkParams(), 200, seed=1)),
                     ("uniform_walk", lambda: uniform_walks(g, WalkParams(), 200, seed=1))):
        t = time.perf_counter()
        w = fn()
        first = time.perf_counter() - t
        t = time.perf_counter()
        fn()
        out[name + "_compile_s"] = first - (time.perf_counter() - t)
    t = time.perf_counter()
    choose_bundles(g, w)
    first = time.perf_counter() - t
    t = time.perf_counter()
    choose_bundles(g, w)
    out["bundle_kernel_compile_s"] = first - (time.perf_counter() - t)
    return out


# -- the benchmark -----------------------------------------------------------------------------


def bench_size(n: int, args: argparse.Namespace, stages: list[str], workdir: Path, rows: list[dict], details: dict) -> None:
    from linkqa_core.walks import WalkParams

    label = gen.size_label(n)
    say(f"[{label}] preparing data …")
    data = prepare_data(n, args.seed, Path(args.data_dir), jsonl="ingest" in stages)
    details.setdefault("data", {})[label] = data
    params = WalkParams()
    b_paths = args.baseline_paths or BASELINE_PATHS.get(n, 5_000 if n < 1_000_000 else 2_000)
    b_paths = min(b_paths, args.paths)

    if "ingest" in stages:
        say(f"[{label}] ingest …")
        rows.append(stage_ingest(n, data, workdir))

    need_graph = any(s in stages for s in ("graph", "graph_proposed", "walks", "bundles"))
    base = None
    if need_graph:
        proposed = "graph_proposed" in stages
        say(f"[{label}] graph build (engine{' and proposed' if proposed else ''}) …")
        gt = engine_graph(data["db"], repeat=3, proposed=proposed)
        g = gt.pop("graph")
        med = statistics.median(gt["wall"])
        graph_row = {"stage": "graph", "size": n, "figure": med, "unit": "s", "times_s": gt["wall"],
                     "cpu_s": gt["cpu"], "nodes": g.n_nodes, "edges": g.n_edges}
        if "graph" in stages or "walks" in stages:
            say(f"[{label}] networkx baseline (child process: graph edge by edge, {b_paths:,} walk paths) …")
            base = run_child("baseline", ["--db", data["db"], "--paths", str(b_paths if "walks" in stages else 0),
                                          "--compare", "1" if "graph" in stages else "0",
                                          "--graph-repeat", "1" if n >= 1_000_000 else "2"])
            details.setdefault("baseline", {})[label] = base
        if "graph" in stages:
            ratio = base["graph_s"] / med
            same = base.get("compare", {}).get("same")
            graph_row.update(baseline=base["graph_s"], ratio=ratio, same_graph=same,
                             cpu_ratio=base["graph_cpu_s"] / statistics.median(gt["cpu"]),
                             baseline_peak_rss_gb=base["peak_rss"] / 1e9,
                             target=f">= {TARGETS['graph_ratio']:g}x and < {TARGETS['graph_seconds']:g} s",
                             **{"pass": bool(ratio >= TARGETS["graph_ratio"] and med < TARGETS["graph_seconds"]
                                             and same)})
            if not same:
                graph_row["note"] = f"graphs differ: {base.get('compare')}"
            rows.append(graph_row)
            if proposed:
                pmed = statistics.median(gt["p_wall"])
                pratio = base["graph_s"] / pmed
                rows.append({"stage": "graph_proposed", "size": n, "figure": pmed, "unit": "s",
                             "times_s": gt["p_wall"], "cpu_s": gt["p_cpu"], "baseline": base["graph_s"],
                             "ratio": pratio, "same_graph": gt.get("same_as_engine"),
                             "cpu_ratio": base["graph_cpu_s"] / statistics.median(gt["p_cpu"]),
                             "target": graph_row["target"],
                             "pass": bool(pratio >= TARGETS["graph_ratio"] and pmed < TARGETS["graph_seconds"]
                                          and gt.get("same_as_engine")),
                             "note": f"benchmarks/proposals/graph_build.py (not engine code); CPU"
                                     f" {min(gt['p_cpu']):.2f} s vs engine {min(gt['cpu']):.2f} s; same graph:"
                                     f" {gt.get('same_as_engine')}"})
                mmed = statistics.median(gt["m_wall"])
                mratio = base["graph_s"] / mmed
                rows.append({"stage": "graph_proposed+index", "size": n, "figure": mmed, "unit": "s",
                             "times_s": gt["m_wall"], "cpu_s": gt["m_cpu"], "baseline": base["graph_s"],
                             "ratio": mratio, "same_graph": gt.get("m_same_as_engine"),
                             "cpu_ratio": base["graph_cpu_s"] / statistics.median(gt["m_cpu"]),
                             "target": graph_row["target"],
                             "pass": bool(mratio >= TARGETS["graph_ratio"] and mmed < TARGETS["graph_seconds"]
                                          and gt.get("m_same_as_engine")),
                             "note": f"the proposal on a copy with its migration (index seeds(discipline,"
                                     f" difficulty); applied in {gt['migration_s']:.1f} s); same graph:"
                                     f" {gt.get('m_same_as_engine')}"})

        if "walks" in stages or "bundles" in stages:
            say(f"[{label}] walks (engine, {args.paths:,} paths) …")
            tw, walks, warm = engine_walks(g, params, args.paths, repeat=3)
            rate = args.paths / tw.median
            if "walks" in stages:
                row = {"stage": "walks", "size": n, "figure": rate, "unit": "paths/s", "times_s": tw.wall,
                       "cpu_s": tw.cpu,
                       "paths": args.paths, "first_call_s": warm,
                       "target": f">= {TARGETS['walks_ratio']:g}x and >= {TARGETS['walks_paths_per_s']:,} paths/s"}
                b_rate = base["walk_paths"] / base["walks_s"]
                b_cpu_rate = base["walk_paths"] / base["walks_cpu_s"]
                row.update(baseline=b_rate, ratio=rate / b_rate, baseline_paths=base["walk_paths"],
                           cpu_ratio=(args.paths / tw.cpu_median) / b_cpu_rate,
                           **{"pass": bool(rate / b_rate >= TARGETS["walks_ratio"]
                                           and rate >= TARGETS["walks_paths_per_s"])})
                if base["walk_paths"] < args.paths:
                    row["note"] = f"baseline rate extrapolated from its first {base['walk_paths']:,} paths"
                rows.append(row)
            if "bundles" in stages:
                from linkqa_core.bundles import choose_bundles

                choose_bundles(g, value_walks_small(g, params))  # warm-up
                tb, _ = timed(lambda: choose_bundles(g, walks), 3)
                rows.append({"stage": "bundles", "size": n, "figure": args.paths / tb.median, "unit": "paths/s",
                             "times_s": tb.wall, "cpu_s": tb.cpu, "note": "info only (no baseline, no target)"})
        del g
        gc.collect()

    if "distribution" in stages and n == min(args.sizes):
        say(f"[{label}] distribution check (engine vs networkx, {args.dist_paths:,} paths x {args.dist_repeats}) …")
        from benchmarks.baselines import distribution_check, nx_build_graph
        from linkqa_core.graph import build_graph
        from linkqa_core.store import Store

        with Store(data["db"]) as store:
            g = build_graph(store)
            nxg = nx_build_graph(store)
        res = distribution_check(g, nxg, params, args.dist_paths, repeats=args.dist_repeats)
        details["distribution"] = res
        worst = max(res["metrics"].items(), key=lambda kv: abs(kv[1]["z"]))
        rows.append({"stage": "distribution", "size": n, "figure": abs(worst[1]["z"]), "unit": "max |z|",
                     "target": "metrics agree", "pass": res["agree"],
                     "note": f"worst: {worst[0]} (engine {worst[1]['engine']}, nx {worst[1]['baseline']})"})
        del g, nxg
        gc.collect()

    if "memory" in stages:
        for variant in ("engine", "proposed") if "graph_proposed" in stages else ("engine",):
            say(f"[{label}] memory{' (proposed build)' if variant == 'proposed' else ''}"
                f" (child process: graph build + {args.paths:,} walk paths) …")
            mem = run_child("memory", ["--db", data["db"], "--paths", str(args.paths), "--compare", variant])
            details.setdefault("memory" if variant == "engine" else "memory_proposed", {})[label] = mem
            gb = mem["peak_rss"] / 1e9
            rows.append({"stage": "memory" if variant == "engine" else "memory_proposed", "size": n, "figure": gb,
                         "unit": "GB peak RSS", "target": f"< {TARGETS['memory_gb']:g} GB",
                         "pass": gb < TARGETS["memory_gb"],
                         "note": f"after imports {mem['rss_after_imports'] / 1e9:.2f} GB; graph arrays"
                                 f" {mem['graph_arrays_bytes'] / 1e9:.2f} GB; peak during the graph build"
                                 f" {mem['peak_after_graph'] / 1e9:.2f} GB"})


def value_walks_small(g, params):
    from linkqa_core.walks import value_walks

    return value_walks(g, params, 10, seed=0)


def bench_jit(rows: list[dict], details: dict) -> None:
    say("[jit] compile times (fresh numba cache) …")
    with tempfile.TemporaryDirectory() as cache:
        res = run_child("jit", [], env={"NUMBA_CACHE_DIR": cache})
    details["jit"] = res
    rows.append({"stage": "jit", "size": None, "figure": res["walk_kernel_compile_s"], "unit": "s compile",
                 "note": f"walk kernel {res['walk_kernel_compile_s']:.1f} s, bundle kernel"
                         f" {res['bundle_kernel_compile_s']:.1f} s; excluded from walk timings (warm-up call)"})


# Slots: another engineer adds these (a function (args, rows, details) -> None).
STAGE_SLOTS: dict[str, Callable[..., None] | None] = {"llm": None, "app": None}


# -- quick mode (the CI guard) -----------------------------------------------------------------


def quick(args: argparse.Namespace) -> int:
    """Ratios at 10k, in-process, compared with guard.json; exit 1 on a regression."""
    from benchmarks.baselines import nx_build_graph, nx_value_walks
    from linkqa_core.graph import build_graph
    from linkqa_core.store import Store
    from linkqa_core.walks import WalkParams

    guard = json.loads(Path(args.guard).read_text())
    n = gen.parse_size(guard.get("size", "10k"))
    t0 = time.perf_counter()
    data = prepare_data(n, args.seed, Path(args.data_dir), jsonl=True)
    params = WalkParams()
    ratios: dict[str, float] = {}
    figures: dict[str, Any] = {}
    with Store(data["db"]) as store:
        tg, g = timed(lambda: build_graph(store), 5)
        tbg, nxg = timed(lambda: nx_build_graph(store), 2)
    # ratios of CPU seconds (this process): robust when the machine is shared
    ratios["graph"] = tbg.cpu_best / tg.cpu_median
    figures["graph"] = (tg.cpu_median, tbg.cpu_best)
    wp = guard.get("walk_paths", 100_000)
    bp = guard.get("baseline_paths", 5_000)
    tw, _, _ = engine_walks(g, params, wp, repeat=5)
    tbw, _ = timed(lambda: nx_value_walks(nxg, params, bp, seed=1), 2)
    ratios["walks"] = (wp / tw.cpu_median) / (bp / tbw.cpu_best)
    figures["walks"] = (wp / tw.cpu_median, bp / tbw.cpu_best)
    del nxg
    gc.collect()
    with tempfile.TemporaryDirectory() as tmp:
        row = stage_ingest(n, data, Path(tmp))
    if row.get("status") != "skipped":
        ratios["ingest"] = row["cpu_ratio"]
        figures["ingest"] = (max(row["cpu_rows_per_s"]), max(row["cpu_rows_per_s"]) / row["cpu_ratio"])
    failed = []
    print(f"quick benchmark guard at {gen.size_label(n)} seeds ({time.perf_counter() - t0:.0f} s)")
    print("CPU-time ratios, engine vs baseline, measured in this process")
    print(f"{'ratio':<8} {'engine':>12} {'baseline':>12} {'measured':>9} {'recorded':>9} {'threshold':>9}  result")
    tol = float(guard["tolerance"])
    for name, spec in guard["ratios"].items():
        if name not in ratios:
            print(f"{name:<8} {'—':>12} {'—':>12} {'—':>9} {spec['recorded']:>8.1f}x {'':>9}  skipped")
            continue
        threshold = max(float(spec["floor"]), tol * float(spec["recorded"]))
        ok = ratios[name] >= threshold
        if not ok:
            failed.append(name)
        e, b = figures[name]
        print(f"{name:<8} {_fmt(e, name):>12} {_fmt(b, name):>12} {ratios[name]:>8.2f}x {spec['recorded']:>8.2f}x"
              f" {threshold:>8.2f}x  {'ok' if ok else 'REGRESSION'}")
    print(f"rule: ratio >= max(floor, {tol:g} x recorded); {guard.get('note', '')}")
    out = {"quick": True, "size": n, "ratios": ratios, "figures": figures, "failed": failed,
           "meta": meta(args)}
    if args.record_guard:
        for name, value in ratios.items():
            if name in guard["ratios"]:
                guard["ratios"][name]["recorded"] = round(value, 2)
        guard["recorded_on"] = f"{platform.node()} {time.strftime('%Y-%m-%d')}"
        Path(args.guard).write_text(json.dumps(guard, indent=1) + "\n")
        print(f"recorded these ratios in {args.guard}")
    write_out(args.out, out)
    return 1 if failed else 0


def _fmt(x: float, name: str) -> str:
    if name == "graph":
        return f"{x:.3f} s"  # CPU seconds
    if name == "walks":
        return f"{x:,.0f} p/s"
    return f"{x:,.0f} r/s"


# -- output ----------------------------------------------------------------------------------


def meta(args: argparse.Namespace) -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    import numba

    return {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "host": platform.node(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "commit": commit, "loadavg": load, "argv": sys.argv[1:], "seed": args.seed}


def write_out(path: str, payload: dict[str, Any]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=1, default=_json_default) + "\n")
    say(f"wrote {path}")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    return str(o)


def fmt_figure(row: dict[str, Any], key: str = "figure") -> str:
    x = row.get(key)
    if x is None:
        return "—"
    unit = row.get("unit", "")
    if row["stage"].startswith("graph"):
        return f"{x:.2f} s"
    if unit in ("rows/s", "paths/s"):
        return f"{x:,.0f} {unit}"
    if row["stage"].startswith("memory"):
        return f"{x:.2f} GB"
    if row["stage"] == "jit":
        return f"{x:.1f} s"
    return f"{x:.2f} {unit}"


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ("stage", "size", "figure", "baseline", "ratio", "cpu ratio", "target", "pass")
    table = []
    for r in rows:
        size = gen.size_label(r["size"]) if r.get("size") else "—"
        if r.get("status") == "skipped":
            table.append((r["stage"], size, "—", "—", "—", "—", "—", "skipped"))
            continue
        ratio = f"{r['ratio']:.1f}x" if r.get("ratio") is not None else "—"
        cpu_ratio = f"{r['cpu_ratio']:.1f}x" if r.get("cpu_ratio") is not None else "—"
        passed = r.get("pass")
        if passed is None:
            mark = "info"
        else:
            mark = "pass" if passed else "FAIL"
            if r.get("size") and r["size"] != TARGET_SIZE and r["stage"] in ("ingest", "graph", "graph_proposed", "graph_proposed+index", "walks", "memory",
                                                                   "memory_proposed"):
                mark = f"({mark})"
        table.append((r["stage"], size, fmt_figure(r), fmt_figure(r, "baseline") if r.get("baseline") else "—",
                      ratio, cpu_ratio, r.get("target", "—"), mark))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *table)]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths))
    print(line)
    print("-" * len(line))
    for t in table:
        print("  ".join(str(x).ljust(w) for x, w in zip(t, widths)))
    notes = [f"- {r['stage']} {gen.size_label(r['size']) if r.get('size') else ''}: {r['note']}"
             for r in rows if r.get("note")]
    if notes:
        print("notes:")
        print("\n".join(notes))
    print("figures are wall-clock (median of 3 for the engine, best of 2 / one run at 1M for baselines);"
          " 'cpu ratio' divides CPU seconds instead, which contention on a shared machine barely moves.")
    print("targets are stated for 1M seeds; (pass)/(FAIL) at other sizes is for information.")


def print_distribution(res: dict[str, Any]) -> None:
    print(f"\ndistribution check: engine vs networkx baseline, {res['n_paths']:,} paths x {res['repeats']} seeds each"
          f" (mean ± sd); {res['rule']}")
    print(f"{'metric':<30} {'engine':>17} {'networkx':>17} {'diff':>9} {'z':>6}  agree")
    for m, r in res["metrics"].items():
        print(f"{m:<30} {r['engine']:>9.4f} ± {r['engine_sd']:<6.4f}{r['baseline']:>9.4f} ± {r['baseline_sd']:<6.4f}"
              f"{r['diff']:>+9.4f} {r['z']:>6.2f}  {'yes' if r['agree'] else 'NO'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="LinkQA scale benchmarks (issue #5)",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--size", default="10k,100k", help="10k, 100k, 1M, a comma list, or all (= 10k,100k,1M)")
    ap.add_argument("--stages", default=",".join(ALL_STAGES), help=f"comma list of {', '.join(ALL_STAGES)}")
    ap.add_argument("--quick", action="store_true", help="the CI guard: ratios at 10k vs guard.json, exit 1 on regression")
    ap.add_argument("--record-guard", action="store_true", help="with --quick: store the measured ratios in guard.json")
    ap.add_argument("--guard", default=str(GUARD_PATH))
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="results JSON (default benchmarks/results/latest.json)")
    ap.add_argument("--seed", type=int, default=0, help="data generator seed")
    ap.add_argument("--paths", type=int, default=100_000, help="walk paths timed per size")
    ap.add_argument("--baseline-paths", type=int, default=None,
                    help="networkx walk paths (default 20k at 10k seeds, 5k at 100k, 2k at 1M)")
    ap.add_argument("--dist-paths", type=int, default=5_000)
    ap.add_argument("--dist-repeats", type=int, default=5)
    ap.add_argument("--data-dir", default=str(DATA_DIR), help="cache of generated data sets")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--db", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--compare", default="1", help=argparse.SUPPRESS)
    ap.add_argument("--graph-repeat", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        if args.child == "baseline":
            res = child_baseline(args.db, args.paths, args.compare == "1", args.graph_repeat)
        elif args.child == "memory":
            res = child_memory(args.db, args.paths, args.compare == "proposed")
        elif args.child == "jit":
            res = child_jit()
        else:
            raise SystemExit(f"unknown child {args.child}")
        print(json.dumps(res, default=_json_default))
        return 0
    if args.quick:
        return quick(args)

    sizes = "10k,100k,1M" if args.size == "all" else args.size
    args.sizes = sorted(gen.parse_size(s) for s in sizes.split(",") if s.strip())
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(stages) - set(ALL_STAGES)
    if unknown:
        ap.error(f"unknown stages {sorted(unknown)}")
    rows: list[dict[str, Any]] = []
    details: dict[str, Any] = {}
    t0 = time.perf_counter()
    workdir = Path(args.data_dir) / "tmp"
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        for n in args.sizes:
            bench_size(n, args, stages, workdir, rows, details)
        if "jit" in stages:
            bench_jit(rows, details)
        for slot in ("llm", "app"):
            if slot in stages:
                fn = STAGE_SLOTS.get(slot)
                if fn is None:
                    rows.append({"stage": slot, "size": None, "status": "skipped", "note": "slot: not written yet"})
                else:
                    fn(args, rows, details)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(rows)
    if "distribution" in details:
        print_distribution(details["distribution"])
    write_out(args.out, {"meta": meta(args), "elapsed_s": round(time.perf_counter() - t0, 1), "targets": TARGETS,
                         "rows": rows, "details": details})
    return 0


if __name__ == "__main__":
    sys.exit(main())
