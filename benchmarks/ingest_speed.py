"""Ingest speed (issue #13): rows/s of ``ingest`` on a generated MMLU-shaped JSONL file,
beside the bare ``json.loads`` + INSERT reference measured in the same run.

    python benchmarks/ingest_speed.py --size 1M            # data cached in benchmarks/results/data/
    python benchmarks/ingest_speed.py --jsonl /tmp/x.jsonl  # any MMLU-shaped JSONL file
    python benchmarks/ingest_speed.py --size 100k --variants default,serial --repeat 2

Every figure is measured into a fresh SQLite file in a temporary folder. Wall time is
what a curator waits; CPU time (this process plus its reaped children, i.e. the parsing
children) is what the machine spends, and barely moves when other work shares the
cores. The ratio to the reference is given for both. The reference is the one of
``benchmarks/run.py`` (``raw_ingest``): ``json.loads`` per line, the four options as a
JSON list, a SHA-256 id, ``executemany`` INSERT OR IGNORE in one transaction, no checks.

Variants: ``default`` is ``ingest(store, path)`` as the CLI and the studio call it (a
file of ``WORKER_MIN_BYTES`` or more is parsed by ``PARSE_THREADS`` threads beside the inserts);
``serial`` is ``ingest(..., parallel=False)`` (one thread); ``children`` is
``ingest(..., parallel=True)`` (parsing child processes). Runs alternate variant by
variant with the reference, so load elsewhere lands on all of them alike. The last
stdout line is the JSON of all figures.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATA_DIR = ROOT / "benchmarks" / "results" / "data"


def raw_ingest(path: str, db: str) -> int:
    """The bare reference: json.loads + INSERT of the same columns, one transaction, no checks
    (the same code as ``benchmarks/run.py``'s ``raw_ingest``)."""
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


def cpu_with_children() -> float:
    """CPU seconds of this process plus its reaped children."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[str], int], workdir: Path, name: str) -> dict[str, float]:
    """Run ``fn(db path)`` into a fresh database; rows, wall s, CPU s (children included)."""
    db = workdir / f"{name}.db"
    gc.collect()
    c, t = cpu_with_children(), time.perf_counter()
    rows = fn(str(db))
    wall, cpu = time.perf_counter() - t, cpu_with_children() - c
    for p in workdir.glob(f"{name}.db*"):
        p.unlink()
    return {"rows": rows, "wall_s": wall, "cpu_s": cpu, "rows_per_s": rows / wall, "cpu_rows_per_s": rows / cpu}


def engine(path: str, parallel: bool | None) -> Callable[[str], int]:
    def run(db: str) -> int:
        from linkqa_core.ingest.load import ingest
        from linkqa_core.store import Store

        with Store(db) as store:
            report = ingest(store, path, parallel=parallel)
        return report.rows_read

    return run


def dataset(args: argparse.Namespace) -> str:
    """The JSONL file to ingest: ``--jsonl``, or generated (and cached) for ``--size``."""
    if args.jsonl:
        if not Path(args.jsonl).exists():
            raise SystemExit(f"{args.jsonl}: no such file")
        return args.jsonl
    import benchmarks.generate as gen

    n = gen.parse_size(args.size)
    path = DATA_DIR / f"ingest-{gen.size_label(n)}-s{args.seed}-{gen.fit_digest(gen.load_fit())}.jsonl"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        print(f"writing {gen.size_label(n)} rows to {path} …", file=sys.stderr, flush=True)
        tmp = path.with_suffix(".part")
        gen.write_jsonl(gen.generate(n, seed=args.seed), tmp)
        tmp.rename(path)
    return str(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1M", help="rows to generate: 10k, 100k, 1M, or a number")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jsonl", default=None, help="ingest this MMLU-shaped JSONL file instead of generated data")
    ap.add_argument("--variants", default="default", help="comma list of: default, serial, children")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each (best is reported)")
    ap.add_argument("--workdir", default=None, help="folder for the temporary databases (default: a temp dir)")
    args = ap.parse_args(argv)
    path = dataset(args)
    variants = {"default": engine(path, None), "serial": engine(path, False), "children": engine(path, True)}
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in chosen:
        if v not in variants:
            raise SystemExit(f"unknown variant {v!r}; use {', '.join(variants)}")
    out: dict[str, Any] = {"file": path, "bytes": os.path.getsize(path), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="ingest-speed-", dir=args.workdir) as tmp:
        workdir = Path(tmp)
        runs: dict[str, list[dict[str, float]]] = {}
        for rep in range(args.repeat):
            for name in chosen:
                runs.setdefault(name, []).append(timed(variants[name], workdir, f"{name}-{rep}"))
            runs.setdefault("reference", []).append(timed(lambda db: raw_ingest(path, db), workdir, f"raw-{rep}"))
    ref = max(runs["reference"], key=lambda r: r["rows_per_s"])
    ref_cpu = max(r["cpu_rows_per_s"] for r in runs["reference"])
    print(f"{'':<10} {'rows':>9} {'wall s':>8} {'CPU s':>8} {'rows/s':>10} {'CPU rows/s':>11} {'x ref':>6} {'x ref CPU':>9}")
    for name, rs in runs.items():
        best = max(rs, key=lambda r: r["rows_per_s"])
        best_cpu = max(r["cpu_rows_per_s"] for r in rs)
        out[name] = dict(best, best_cpu_rows_per_s=best_cpu, ratio=best["rows_per_s"] / ref["rows_per_s"],
                         cpu_ratio=best_cpu / ref_cpu, runs=rs)
        print(f"{name:<10} {best['rows']:>9,} {best['wall_s']:>8.2f} {best['cpu_s']:>8.2f} {best['rows_per_s']:>10,.0f}"
              f" {best_cpu:>11,.0f} {out[name]['ratio']:>6.2f} {out[name]['cpu_ratio']:>9.2f}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
