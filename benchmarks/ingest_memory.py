"""Ingest memory (issue 9): peak resident memory of ingesting a gzipped CSV that expands
~280-fold (1.8 MB -> ~500 MB), and of the same rows as a JSON array and as JSON lines.

    python benchmarks/ingest_memory.py                 # ~500 MB CSV; files cached in benchmarks/results/data/
    python benchmarks/ingest_memory.py --mb 100 --formats csv

Each ingest runs in a fresh child process (``--child``) into a fresh database; the
figure is the child's peak resident set (VmHWM from /proc, ru_maxrss where there is
no /proc). The baseline is the same child importing the engine and opening the store
without ingesting, so the difference is what reading the file costs. The rows are
distinct (each question carries its number) and long (a 2 KB passage, repeated, which
is what makes the file compress so well), so the database grows to the file's size.
The last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
DATA_DIR = ROOT / "benchmarks" / "results" / "data"
PASSAGE = ("The mitochondrion is the site of oxidative phosphorylation, where the electron transport chain "
           "drives ATP synthase through a proton gradient across the inner membrane. ") * 14


def rows(target_mb: int):
    """(question, A, B, C, D, answer letter, subject) until about ``target_mb`` MB of CSV."""
    size, i = 0, 0
    while size < target_mb * 1_000_000:
        i += 1
        row = (f"{PASSAGE}Which statement about passage {i} holds?", "ATP synthase", "glycolysis",
               "the Krebs cycle", f"option {i % 7}", "ABCD"[i % 4], "college biology")
        size += sum(len(c) for c in row) + 12
        yield row


def write_files(target_mb: int, formats: list[str]) -> dict[str, Path]:
    import csv

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    paths = {}
    for fmt in formats:
        path = DATA_DIR / f"memory-{target_mb}mb.{fmt}.gz"
        paths[fmt] = path
        if path.exists():
            continue
        tmp = path.with_suffix(".part")
        with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=6, newline="") as fh:
            if fmt == "csv":
                writer = csv.writer(fh, lineterminator="\n")
                writer.writerow(["question", "A", "B", "C", "D", "answer", "subject"])
                for r in rows(target_mb):
                    writer.writerow(r)
            else:
                first = True
                if fmt == "json":
                    fh.write("[\n")
                for q, a, b, c, d, letter, subject in rows(target_mb):
                    rec = json.dumps({"question": q, "A": a, "B": b, "C": c, "D": d, "answer": letter,
                                      "subject": subject})
                    if fmt == "json":
                        fh.write(("" if first else ",\n") + rec)
                    else:
                        fh.write(rec + "\n")
                    first = False
                if fmt == "json":
                    fh.write("\n]\n")
        tmp.rename(path)
    return paths


def peak_mb() -> float:
    """This process's peak resident set, in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(path: str | None, db: str) -> None:
    from linkqa_core.ingest.load import ingest
    from linkqa_core.store import Store

    t = time.perf_counter()
    with Store(db) as store:
        report = ingest(store, path, parallel=False) if path else None
    out = {"peak_mb": peak_mb(), "seconds": time.perf_counter() - t,
           "added": report.added if report else 0, "bad_rows": len(report.bad_rows) if report else 0}
    print(json.dumps(out))


def measure(path: Path | None, workdir: Path) -> dict:
    db = workdir / "m.db"
    for p in workdir.glob("m.db*"):
        p.unlink()
    cmd = [sys.executable, __file__, "--child", str(path) if path else "", "--db", str(db)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"child failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=500, help="size of the expanded file in MB")
    ap.add_argument("--formats", default="csv,json,jsonl")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--db", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        child(args.child or None, args.db)
        return 0
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    paths = write_files(args.mb, formats)
    out: dict = {"expanded_mb": args.mb}
    with tempfile.TemporaryDirectory(prefix="ingest-memory-") as tmp:
        base = measure(None, Path(tmp))
        out["baseline_peak_mb"] = base["peak_mb"]
        print(f"{'file':<32} {'gz MB':>7} {'peak MB':>8} {'over baseline':>14} {'rows':>8} {'s':>7}")
        print(f"{'(engine + store, no ingest)':<32} {'':>7} {base['peak_mb']:>8.0f}")
        for fmt, path in paths.items():
            m = measure(path, Path(tmp))
            out[fmt] = dict(m, gz_mb=path.stat().st_size / 1e6)
            print(f"{path.name:<32} {path.stat().st_size / 1e6:>7.1f} {m['peak_mb']:>8.0f}"
                  f" {m['peak_mb'] - base['peak_mb']:>14.0f} {m['added']:>8,} {m['seconds']:>7.1f}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
