"""Benchmarks of issue 13 (past one machine), each figure beside a baseline measured in the same run.

    python benchmarks/scale.py --stages throughput           # Ray backend 1/2/4 actors vs the local client
    python benchmarks/scale.py --stages gates --gates-size 1M
    python benchmarks/scale.py --stages seeds10m --db /tmp/lq10m/b10m.db   # generated if missing
    python benchmarks/scale.py --out results/scale.json

``throughput``: a fake OpenAI server with 200 ms latency in a child process; 256 requests in
flight in total, through the local ``LLMClient`` (one process) and through the Ray path
(Parquet in, ``map_batches`` over an actor pool of async model actors, limiter, shared
cache, one shard per batch) with 1, 2 and 4 actors (256, 128, 64 in flight each). Figures:
requests/s over the whole run and in the steady state (the middle 80 % of requests, by the
server's arrival times), as a share of the ideal (256 / 0.2 s); CPU per request of this
process (local) or of every Ray process (Ray: the per-item overhead of the Ray path).

``gates``: the quality gates on N generated-looking items (MMLU questions with word edits,
so exact and near duplicates occur) and MMLU's questions as seeds, locally
(``quality.gates.run_gates``) and on Ray (``scale.dedup.gate_table``), verdicts compared;
wall and CPU seconds, and peak memory: the local gates' RSS (VmHWM, reset before they start),
the Ray driver's (the same) and the driver with its workers and object store (their PSS
summed, sampled every 0.5 s).

``seeds10m``: on one machine, a fresh process per measurement: the KP graph build
(``graph.build_graph``) and value-guided walks at 10M seeds, with peak RSS; beside them the
same at 1M seeds (the in-run baseline: 10x the seeds should cost about 10x). Walks are also
timed with every step scanning its neighbours (``hub_degree`` above the largest degree, on
``--scan-walks`` paths): the exact step that the hub sampler replaces, the walks' baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

LATENCY_S = 0.2
IN_FLIGHT = 256
ACTORS = (1, 2, 4)
ROUNDS = 16

_SERVER = """
import sys
sys.path.insert(0, sys.argv[1])
from openai_server import FakeOpenAI
srv = FakeOpenAI(latency=float(sys.argv[2])).start()
print(srv.base_url, flush=True)
import time, json
for line in sys.stdin:  # "times" -> the arrival times of the chat requests so far
    print(json.dumps([r.received_at for r in srv.chat_requests]), flush=True)
srv.stop()
"""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, ()):
            out.append(c)
            todo.append(c)
    return out


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    line = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(head), line(tuple("-" * w for w in widths)), *map(line, rows)])


class Server:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(ROOT / "tests"), str(LATENCY_S)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()

    def times(self) -> list[float]:
        self.proc.stdin.write("times\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


def _steady(times: list[float]) -> float:
    t = sorted(times)
    lo, hi = int(len(t) * 0.1), int(len(t) * 0.9)
    return (hi - lo) / (t[hi] - t[lo]) if hi > lo and t[hi] > t[lo] else float("nan")


def stage_throughput(out: dict[str, Any]) -> None:
    import pyarrow as pa

    from linkqa_core.llm.client import ChatRequest, LLMClient, LLMSettings
    from linkqa_core.scale.actors import WorkerJob, model_pool, worker_settings
    from linkqa_core.scale.cluster import NAMESPACE, _quiet
    from linkqa_core.scale.limiter import LimitSettings, start_limiter
    from linkqa_core.scale.prompts import PromptStage
    from linkqa_core.scale.storage import open_storage
    from linkqa_core.store import Store

    n = IN_FLIGHT * ROUNDS
    ideal = IN_FLIGHT / LATENCY_S
    server = Server()
    rows = []
    try:
        settings = LLMSettings(base_urls=(server.url,), api_key="sk-bench", model="m", concurrency=IN_FLIGHT)
        with tempfile.TemporaryDirectory() as tmp:
            # local: one LLMClient, a real Store (call log + cache), unique prompts
            with Store(Path(tmp) / "l.db") as store, LLMClient(settings, store) as client:
                client.complete_many([ChatRequest.user(f"warm {i}") for i in range(IN_FLIGHT)])
                before = len(server.times())
                c0, t0 = time.process_time(), time.perf_counter()
                res = client.complete_many([ChatRequest.user(f"local #{i}: name two knowledge points")
                                            for i in range(n)])
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                times = server.times()[before:]
            rows.append({"backend": "local", "actors": "-", "per_actor": IN_FLIGHT, "requests": n, "wall_s": wall,
                         "rps": n / wall, "steady_rps": _steady(times), "cpu_ms": 1000 * cpu / n,
                         "errors": sum(1 for r in res if r.error)})
            say(f"[throughput] local: {n / wall:,.0f} req/s")

            import ray
            import ray.data

            ray.init(num_cpus=6, include_dashboard=False, log_to_driver=False, namespace=NAMESPACE,
                     logging_level="WARNING", runtime_env={"py_modules": [str(ROOT / "linkqa_core")],
                                                           "excludes": ["__pycache__"]})
            _quiet(ray)
            root = open_storage(str(Path(tmp) / "storage"))
            for actors in ACTORS:
                per = IN_FLIGHT // actors
                run_dir = root.child(f"bench-{actors}")
                k = actors * 4 * 2  # blocks: four concurrent batches per actor, twice over
                prompts = pa.table({"prompt_uid": list(range(n)),
                                    "prompt": [f"ray{actors} #{i}: name two knowledge points" for i in range(n)]})
                for b in range(k):
                    run_dir.write_table(f"in/part-{b:04d}.parquet", prompts.slice(b * (n // k), n // k))
                limiter = start_limiter(f"bench-{actors}", LimitSettings(), NAMESPACE)
                job = WorkerJob(settings=worker_settings(settings, per), stage=PromptStage(), storage=root.uri,
                                run_storage=run_dir.uri, limiter=f"bench-{actors}", namespace=NAMESPACE)
                batch = max(8, per // 2)
                ds = model_pool(ray.data.read_parquet(run_dir.uri_of("in")), job, actors=actors, batch_size=batch)
                before = len(server.times())
                procs = [p for p in _descendants(os.getpid()) if p != server.proc.pid]
                cpu0 = sum(_cpu_of(p) for p in procs) + time.process_time()
                t0 = time.perf_counter()
                done = sum(b.num_rows for b in ds.iter_batches(batch_size=None, batch_format="pyarrow"))
                wall = time.perf_counter() - t0
                procs = [p for p in _descendants(os.getpid()) if p != server.proc.pid]
                cpu = sum(_cpu_of(p) for p in procs) + time.process_time() - cpu0
                times = server.times()[before:]
                ray.kill(limiter)
                rows.append({"backend": "ray", "actors": actors, "per_actor": per, "requests": done, "wall_s": wall,
                             "rps": done / wall, "steady_rps": _steady(times), "cpu_ms": 1000 * cpu / max(1, done),
                             "errors": n - len(times)})
                say(f"[throughput] ray {actors} actor(s): {done / wall:,.0f} req/s, steady {_steady(times):,.0f}")
            ray.shutdown()
    finally:
        server.close()
    table = [(r["backend"], str(r["actors"]), str(r["per_actor"]), f"{r['requests']:,}", f"{r['wall_s']:.1f}",
              f"{r['rps']:,.0f}", f"{r['rps'] / ideal:.0%}", f"{r['steady_rps']:,.0f}",
              f"{r['steady_rps'] / ideal:.0%}", f"{r['cpu_ms']:.2f}") for r in rows]
    print(f"\nThroughput at {IN_FLIGHT} requests in flight against a fake server with {LATENCY_S * 1000:.0f} ms "
          f"latency (ideal {ideal:,.0f} req/s); Ray rows include actor start-up in 'whole run'")
    print(_table(("backend", "actors", "in flight/actor", "requests", "wall s", "req/s", "of ideal",
                  "steady req/s", "steady of ideal", "CPU ms/req"), table))
    out["throughput"] = {"ideal_rps": ideal, "rows": rows}


def _gate_items(n: int, seed: int = 0) -> tuple[list[Any], list[tuple[str, str, Any]]]:
    import random

    from linkqa_core.records import Item

    mmlu = Path(os.environ.get("LINKQA_MMLU") or "/work/shared/data/mmlu_test.jsonl")
    if not mmlu.is_file():
        mmlu = ROOT.parent / "shared" / "data" / "mmlu_test.jsonl"
    rows = [json.loads(line) for line in mmlu.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r.get("correct_answer") in ("A", "B", "C", "D")]
    rng = random.Random(seed)
    vocab = sorted({w for r in rows[:2000] for w in r["question"].split()})
    items = []
    for i in range(n):
        r = rows[rng.randrange(len(rows))]
        words = r["question"].split()
        for _ in range(rng.choice((0, 1, 2, 4, 8, 16))):
            words[rng.randrange(len(words))] = rng.choice(vocab)
        opts = tuple(r[f"answer_{c}"] for c in "abcd")
        items.append(Item(" ".join(words) + f" (variant {rng.randrange(3)})", opts[0], options=opts, id=i + 1))
    seeds = [(f"s{j}", r["question"], [r[f"answer_{c}"] for c in "abcd"]) for j, r in enumerate(rows)]
    return items, seeds


def _memory(pid: int, field: str = "VmRSS:", where: str = "status") -> int:
    """One memory figure of a process in bytes (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/{where}").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _reset_peak() -> None:
    """Start VmHWM (this process's peak RSS) again from the current RSS (Linux: clear_refs 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024
    return 0


class _TreeRss:
    """The largest sum of PSS over this process and its descendants (Ray's workers and object
    store), sampled every 0.5 s: PSS splits each shared page among the processes that map it,
    so the object store's pages count once, not once per worker as a sum of RSS would."""

    def __init__(self) -> None:
        import threading

        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, sum(_memory(p, "Pss:", "smaps_rollup")
                                           for p in [os.getpid(), *_descendants(os.getpid())]))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def stage_gates(out: dict[str, Any], size: int, local_limit: int) -> None:
    import pyarrow as pa

    from linkqa_core.quality.checks import GateConfig
    from linkqa_core.quality.gates import run_gates
    from linkqa_core.scale.cluster import NAMESPACE, _quiet
    from linkqa_core.scale.dedup import gate_table

    say(f"[gates] making {size:,} items …")
    items, seeds = _gate_items(size)
    cfg = GateConfig()
    held = _memory(os.getpid())  # the items and seeds themselves, before any gate runs
    local, t_local, c_local, peak_local = None, float("nan"), float("nan"), 0
    if size <= local_limit:
        _reset_peak()
        c0, t0 = time.process_time(), time.perf_counter()
        local = run_gates(items, seeds=seeds, cfg=cfg)
        t_local, c_local, peak_local = time.perf_counter() - t0, time.process_time() - c0, _peak()
        say(f"[gates] local: {t_local:.1f} s (CPU {c_local:.1f} s), peak RSS {peak_local / 2**30:.2f} GB")
    else:  # hashed views: about 1 KB an item plus the items themselves
        say(f"[gates] local: skipped above --gates-local-limit {local_limit:,}")
    import ray
    import ray.data

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, namespace=NAMESPACE, logging_level="WARNING",
             runtime_env={"py_modules": [str(ROOT / "linkqa_core")], "excludes": ["__pycache__"]})
    _quiet(ray)
    ds = ray.data.from_arrow(pa.table({
        "key": [str(it.id) for it in items], "order": list(range(len(items))),
        "question": [it.question for it in items], "options": [json.dumps(list(it.options)) for it in items],
        "answer": [it.answer for it in items], "solution": [""] * len(items)})).repartition(
        target_num_rows_per_block=20_000)
    sds = ray.data.from_arrow(pa.table({"order": list(range(len(seeds))), "seed_id": [s[0] for s in seeds],
                                        "question": [s[1] for s in seeds],
                                        "options": [json.dumps(s[2]) for s in seeds]}))
    _reset_peak()
    tree = _TreeRss()
    t0 = time.perf_counter()
    verdicts = gate_table(ds, cfg, seeds=sds)
    t_ray = time.perf_counter() - t0
    peak_driver, peak_tree = _peak(), tree.stop()
    ray.shutdown()
    got = verdicts.to_pylist()
    same = None if local is None else sum(
        1 for a, b in zip(local, got) if (a.passed, a.gate, a.reason) == (b["passed"], b["gate"], b["reason"]))
    rejected: dict[str, int] = {}
    for r in got:
        if r["gate"]:
            rejected[r["gate"]] = rejected.get(r["gate"], 0) + 1
    gb = lambda b: f"{b / 2**30:.2f}"  # noqa: E731
    print(f"\nQuality gates on {size:,} items and {len(seeds):,} seeds (MMLU), local vs Ray on this machine; "
          f"the items and seeds alone hold {gb(held)} GB of the peaks")
    print(_table(("backend", "seconds", "CPU s", "items/s", "same verdicts", "peak RSS GB"),
                 [("local", f"{t_local:.1f}" if local else "skipped", f"{c_local:.1f}" if local else "-",
                   f"{size / t_local:,.0f}" if local else "-", "-", gb(peak_local) if local else "-"),
                  ("ray", f"{t_ray:.1f}", "-", f"{size / t_ray:,.0f}", "-" if same is None else f"{same:,}/{size:,}",
                   f"{gb(peak_driver)} driver, {gb(peak_tree)} PSS with workers")]))
    print("rejected by gate (Ray):", rejected)
    out["gates"] = {"items": size, "seeds": len(seeds), "local_s": t_local, "local_cpu_s": c_local,
                    "local_peak_rss_bytes": peak_local, "ray_s": t_ray, "ray_driver_peak_rss_bytes": peak_driver,
                    "ray_tree_peak_pss_bytes": peak_tree, "items_rss_bytes": held, "same": same,
                    "rejected": rejected}


_MEASURE = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from linkqa_core.store import Store
from linkqa_core.graph.build import build_graph
from linkqa_core.graph.walks import WalkParams, value_walks
store = Store(sys.argv[2])
c = time.process_time(); t = time.perf_counter(); links = store.kps.link_arrays()
t_links, c_links = time.perf_counter() - t, time.process_time() - c
del links
c = time.process_time(); t = time.perf_counter(); g = build_graph(store)
t_build, c_build = time.perf_counter() - t, time.process_time() - c
p = WalkParams()
value_walks(g, p, 1000, seed=0)  # compile / warm
n, n_scan = int(sys.argv[3]), int(sys.argv[4])
c = time.process_time(); t = time.perf_counter(); w = value_walks(g, p, n, seed=1)
t_walk, c_walk = time.perf_counter() - t, time.process_time() - c
# in-run baseline: every step sums its neighbours' weights (no hub sampler), as before it
every_row_scanned = int(g.degree.max()) + 1
c = time.process_time(); t = time.perf_counter(); value_walks(g, p, n_scan, seed=1, hub_degree=every_row_scanned)
t_scan, c_scan = time.perf_counter() - t, time.process_time() - c
def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM'):
            return int(line.split()[1]) * 1024
print(json.dumps({"links_s": t_links, "build_s": t_build, "nodes": g.n_nodes, "edges": g.n_edges, "walks": n,
                  "walk_s": t_walk, "paths_per_s": n / t_walk, "peak_rss_bytes": hwm(), "links_cpu_s": c_links,
                  "build_cpu_s": c_build, "walk_cpu_s": c_walk, "paths_per_cpu_s": n / c_walk,
                  "scan_walks": n_scan, "scan_paths_per_s": n_scan / t_scan, "scan_paths_per_cpu_s": n_scan / c_scan}))
"""


def _ensure_db(path: Path, size: str) -> Path:
    if path.exists() and path.stat().st_size > 0:
        return path
    say(f"[seeds] generating {size} seeds into {path} (benchmarks/generate.py) …")
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate.py"), "--size", size, "--db", str(path)],
                   check=True)
    return path


def stage_seeds(out: dict[str, Any], db: Path, baseline_db: Path, walks: int, scan_walks: int) -> None:
    rows = []
    for label, path in (("1M (baseline)", _ensure_db(baseline_db, "1M")), ("10M", _ensure_db(db, "10M"))):
        say(f"[seeds] {label}: build + {walks:,} walks in a fresh process …")
        got = subprocess.run([sys.executable, "-c", _MEASURE, str(ROOT), str(path), str(walks),
                              str(min(walks, scan_walks))],
                             capture_output=True, text=True, check=True)
        m = json.loads(got.stdout.strip().splitlines()[-1])
        m["label"] = label
        rows.append(m)
    print("\nOne machine: KP graph build and value-guided walks (fresh process each; peak RSS = VmHWM; "
          "CPU s beside wall s, since other work on the machine stretches wall time)")
    print(_table(("seeds", "KPs", "edges", "read links s (CPU)", "graph build s (CPU)", "walks", "paths/s",
                  "paths/CPU-s", "scans only: walks", "paths/s", "paths/CPU-s", "peak RSS GB"),
                 [(r["label"], f"{r['nodes']:,}", f"{r['edges']:,}", f"{r['links_s']:.1f} ({r['links_cpu_s']:.1f})",
                   f"{r['build_s']:.1f} ({r['build_cpu_s']:.1f})", f"{r['walks']:,}", f"{r['paths_per_s']:,.0f}",
                   f"{r['paths_per_cpu_s']:,.0f}", f"{r['scan_walks']:,}", f"{r['scan_paths_per_s']:,.0f}",
                   f"{r['scan_paths_per_cpu_s']:,.0f}", f"{r['peak_rss_bytes'] / 2**30:.2f}") for r in rows]))
    print("walks: steps out of KPs of more than 64 neighbours draw from prefix sums corrected by rejection "
          "(graph/hubs.py); 'scans only' is the same walk with every step summing its neighbours' weights, "
          "the exact step the sums replace (in-run baseline, same process)")
    if len(rows) == 2:
        print(f"10M / 1M: build x{rows[1]['build_s'] / rows[0]['build_s']:.1f}, "
              f"memory x{rows[1]['peak_rss_bytes'] / rows[0]['peak_rss_bytes']:.1f}; targets at 10M: build < 60 s, "
              f">= 50,000 paths/s, peak < 12 GB")
    out["seeds"] = rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stages", default="throughput,gates,seeds10m")
    ap.add_argument("--gates-size", default="1M")
    ap.add_argument("--gates-local-limit", default="10M", help="run the local gates up to this many items")
    ap.add_argument("--db", default="/tmp/lq10m/b10m.db", help="10M-seed database (generated if missing)")
    ap.add_argument("--baseline-db", default="/tmp/lq10m/b1m.db", help="1M-seed database (generated if missing)")
    ap.add_argument("--walks", type=int, default=1_000_000)
    ap.add_argument("--scan-walks", type=int, default=200_000,
                    help="paths of the in-run baseline walk (every step scans its neighbours; slow at 10M)")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)
    from generate import parse_size  # benchmarks/generate.py

    stages = {s.strip() for s in args.stages.split(",") if s.strip()}
    out: dict[str, Any] = {"started": time.time()}
    if "throughput" in stages:
        stage_throughput(out)
    if "gates" in stages:
        stage_gates(out, parse_size(args.gates_size), parse_size(args.gates_local_limit))
    if "seeds10m" in stages:
        stage_seeds(out, Path(args.db), Path(args.baseline_db), args.walks, args.scan_walks)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "benchmarks"))
    sys.exit(main())
