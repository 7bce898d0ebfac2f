"""CPU seconds of the reads the studio's pages make, against the plain SQL they replaced.

    python benchmarks/studio_reads.py --db benchmarks/results/data/1M-s0-<digest>.db
    python benchmarks/studio_reads.py --size 1M        # the generated 1M database (built once, cached)

Each row times a ``Store`` read twice in a fresh ``Store`` (the first call of the data
version, then a rerun, which the store answers from what it keeps per version) and the
SQL the page ran before, in the same process on the same file. CPU time
(``time.process_time``), which a busy shared machine barely moves; wall time beside it.
The database is only read.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from test_big_db_reads import OLD_TABLE  # noqa: E402 - the old SQL, one copy

# the pages' SQL before the reads were kept per data version (kept here as the baseline)
OLD_COUNTS = ["SELECT count(*) FROM seeds", "SELECT count(DISTINCT kp_id) FROM seed_kps",
              "SELECT count(*) FROM seed_kps", "SELECT count(DISTINCT seed_rid) FROM seed_kps"]
OLD_SEED_CHARTS = [
    "SELECT DISTINCT discipline FROM seeds ORDER BY discipline",
    "SELECT DISTINCT CAST(round(difficulty) AS INTEGER) FROM seeds WHERE difficulty IS NOT NULL ORDER BY 1",
    "SELECT discipline, count(*) FROM seeds GROUP BY discipline ORDER BY count(*) DESC, discipline",
    "SELECT CASE WHEN difficulty IS NULL THEN 'unknown' ELSE CAST(CAST(round(difficulty) AS INTEGER) AS TEXT) END,"
    " CASE WHEN difficulty IS NULL THEN 'missing' WHEN difficulty_estimated THEN 'estimated' ELSE 'given' END,"
    " count(*) FROM seeds GROUP BY 1, 2 ORDER BY 1, 2",
]
# the KP table's old query, as tests/test_big_db_reads.py keeps it to compare answers with
OLD_KP_TABLE = OLD_TABLE + " GROUP BY k.id ORDER BY freq DESC, k.name LIMIT 100"
OLD_QUALITY = [
    "SELECT count(*), min(n), max(n), avg(n), sum(n < 2 OR n > 8), sum(n) FROM"
    " (SELECT s.rid, count(l.kp_id) AS n FROM seeds s LEFT JOIN seed_kps l ON l.seed_rid = s.rid GROUP BY s.rid)",
    "SELECT count(*), sum(f.n = 1), sum(instr(k.name, ' ') > 0) FROM"
    " (SELECT kp_id, count(*) AS n FROM seed_kps GROUP BY kp_id) f JOIN kps k ON k.id = f.kp_id",
    "SELECT k.name, coalesce(k.label, k.name), f.n FROM"
    " (SELECT kp_id, count(*) AS n FROM seed_kps GROUP BY kp_id) f JOIN kps k ON k.id = f.kp_id"
    " ORDER BY f.n DESC, k.name LIMIT 200",
]
OLD_BY_DISCIPLINE = (
    "WITH c AS (SELECT s.discipline AS d, l.kp_id AS kid, count(*) AS n FROM seed_kps l"
    "           JOIN seeds s ON s.rid = l.seed_rid GROUP BY s.discipline, l.kp_id),"
    " r AS (SELECT c.d, k.name AS key, coalesce(k.label, k.name) AS label, c.n,"
    "       row_number() OVER (PARTITION BY c.d ORDER BY c.n DESC, k.name) AS rk FROM c JOIN kps k ON k.id = c.kid)"
    " SELECT d, label, n FROM r WHERE rk <= 10 ORDER BY d, rk"
)


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    c, w = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c, time.perf_counter() - w


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default=None, help="a LinkQA database (only read)")
    ap.add_argument("--size", default=None, help="instead of --db: the generated database of that many seeds (1M)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-old", default="", help="comma list of baselines to leave out (e.g. by_discipline)")
    args = ap.parse_args(argv)
    if bool(args.db) == bool(args.size):
        ap.error("give --db or --size")
    from linkqa_core.store import Store

    if args.size:
        from benchmarks import generate as gen
        from benchmarks.run import DATA_DIR, prepare_data

        db = prepare_data(gen.parse_size(args.size), args.seed, DATA_DIR, jsonl=False)["db"]
    else:
        db = args.db
    if not Path(db).exists():
        raise SystemExit(f"no database at {db}")
    from studio import support

    skip = {s.strip() for s in args.skip_old.split(",") if s.strip()}
    rows: list[tuple[str, str, str, str]] = []
    with Store(db) as store:
        # "first call" means computing: not the copy kept beside the file (linkqa_core/store/derived.py)
        store.derived.folder = None

        def old(sqls: str | list[str]) -> Callable[[], None]:
            return lambda: [store.query(q) for q in ([sqls] if isinstance(sqls, str) else sqls)]

        reads = [
            ("counts", store.counts, OLD_COUNTS),
            ("cumulative coverage", store.runs.cumulative_coverage,
             ["SELECT count(DISTINCT kp_id) FROM seed_kps",
              "SELECT count(DISTINCT kp_id) FROM path_kps WHERE kp_id IN (SELECT kp_id FROM seed_kps)"]),
            ("seed filters + charts", lambda: (store.seeds.filter_options(), store.seeds.discipline_counts(),
                                               store.seeds.difficulty_counts()), OLD_SEED_CHARTS),
            ("KP table, top 100", lambda: store.kps.table(limit=100), OLD_KP_TABLE),
            ("KP quality tiles", lambda: support.stored_kp_quality(store, by_discipline=False), OLD_QUALITY),
            ("top KPs per discipline", lambda: store.kps.top_by_discipline(10), OLD_BY_DISCIPLINE),
        ]
        for name, new, sql in reads:
            first = timed(new)
            again = timed(new)
            key = name.split()[0].lower() if name != "top KPs per discipline" else "by_discipline"
            base = None if key in skip else timed(old(sql))
            rows.append((name, f"{base[0]:.2f} ({base[1]:.2f})" if base else "skipped",
                         f"{first[0]:.2f} ({first[1]:.2f})", f"{again[0]:.3f} ({again[1]:.3f})"))
            print(f"  {name}: done", file=sys.stderr, flush=True)
        c = store.counts()
    print(f"{db}: {c['seeds']:,} seeds, {c['kps']:,} KPs, {c['seed_kps']:,} links. CPU s (wall s).")
    head = ("read", "old SQL", "now, first call", "now, rerun")
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    for r in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
