"""The reads the studio's pages make on a big database: same answers as the plain SQL they
replaced, kept per data version (right after every kind of write), and planned on indexes
(no temporary b-tree of every link, no scan of the seeds table per rerun).

A small generated database (the scale generator of ``benchmarks/``) stands in for the
million-seed one: the plans SQLite picks do not depend on the row counts here (no ANALYZE).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from linkqa_core.records import Seed
from linkqa_core.store import Store

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import generate as gen  # noqa: E402


@pytest.fixture(scope="module")
def big_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.db"
    fit = gen.load_fit()
    data = gen.generate(3000, seed=7, fit=fit)
    with Store(path) as store:
        gen.write_store(data, store, fit)
    return path


@pytest.fixture
def big(big_file, tmp_path) -> Store:
    """A fresh copy per test: some tests write."""
    copy = tmp_path / "copy.db"
    copy.write_bytes(big_file.read_bytes())
    with Store(copy) as store:
        yield store


def brute_counts(store: Store) -> dict[str, int]:
    one = lambda sql: int(store.scalar(sql) or 0)  # noqa: E731
    return {
        "seeds": one("SELECT count(*) FROM seeds"),
        "kps": one("SELECT count(DISTINCT kp_id) FROM seed_kps"),
        "seed_kps": one("SELECT count(*) FROM seed_kps"),
        "seeds_with_kps": one("SELECT count(DISTINCT seed_rid) FROM seed_kps"),
        "runs": one("SELECT count(*) FROM runs"),
        "paths": one("SELECT count(*) FROM paths"),
        "items": one("SELECT count(*) FROM items"),
        "accepted_items": one("SELECT count(*) FROM items WHERE status = 'accepted'"),
    }


def plan(store: Store, sql: str, params: tuple = ()) -> str:
    return " | ".join(r[3] for r in store.query("EXPLAIN QUERY PLAN " + sql, params))


# -- counts kept per data version ------------------------------------------------------------


def test_counts_stay_right_after_every_kind_of_write(big):
    assert big.counts() == brute_counts(big)
    big.seeds.add([Seed(id="new-1", question="What is a quark?", answer="a particle", discipline="Physics"),
                   Seed(id="new-2", question="What is a gene?", answer="a unit of heredity", discipline="Biology")])
    assert big.counts() == brute_counts(big)
    rid = int(big.scalar("SELECT rid FROM seeds WHERE id = 'new-1'"))
    big.kps.replace_links({rid: [("quark", "quark"), ("brand new kp", "Brand new KP")]})
    assert big.counts() == brute_counts(big)
    key_a, key_b = [r[0] for r in big.query("SELECT name FROM kps ORDER BY id LIMIT 2")]
    big.kps.merge([key_a], key_b)
    assert big.counts() == brute_counts(big)
    big.kps.rename(key_b, "renamed kp", "Renamed KP")
    assert big.counts() == brute_counts(big)
    big.kps.replace_links({rid: []})  # a seed loses its KPs; "quark" is named by no seed now
    assert big.counts() == brute_counts(big)


def test_counts_are_not_recomputed_until_the_data_version_moves(big, monkeypatch):
    calls = []
    real = big._seed_counts
    monkeypatch.setattr(big, "_seed_counts", lambda: calls.append(1) or real())
    first = big.counts()
    assert big.counts() == first and len(calls) == 1
    big.bump()
    big.counts()
    assert len(calls) == 2


def test_run_and_item_counts_are_live(big):
    before = big.counts()["runs"]
    big.runs.create("sample", {"n_paths": 1})
    assert big.counts()["runs"] == before + 1 == brute_counts(big)["runs"]


def test_cumulative_coverage_matches_the_plain_count(big):
    from linkqa_core.graph.sampling import sample, save_sample
    from linkqa_core.graph.walks import WalkParams

    assert big.runs.cumulative_coverage() == 0.0
    save_sample(big, sample(big, WalkParams(), 50, seed=1))
    seen = big.scalar("SELECT count(DISTINCT kp_id) FROM path_kps WHERE kp_id IN (SELECT kp_id FROM seed_kps)")
    total = big.scalar("SELECT count(DISTINCT kp_id) FROM seed_kps")
    assert seen > 0 and big.runs.cumulative_coverage() == round(seen / total, 4)


# -- the same answers as the plain SQL ---------------------------------------------------------


def test_kp_frequencies_and_their_histogram_match_a_group_by(big):
    rows = big.query("SELECT kp_id, count(*) FROM seed_kps GROUP BY kp_id")
    ids, n = big.kps.frequencies()
    assert dict(zip(ids.tolist(), n.tolist())) == {int(k): int(c) for k, c in rows}
    assert list(n) == sorted(n, reverse=True)
    hist = dict(big.kps.frequency_histogram())
    expected: dict[int, int] = {}
    for _, c in rows:
        expected[int(c)] = expected.get(int(c), 0) + 1
    assert hist == expected


OLD_TABLE = (
    "SELECT k.id, coalesce(k.label, k.name) AS name, k.name AS key, count(*) AS freq,"
    " avg(s.difficulty) AS mean_difficulty,"
    " (SELECT s2.discipline FROM seed_kps l2 JOIN seeds s2 ON s2.rid = l2.seed_rid"
    "  WHERE l2.kp_id = k.id GROUP BY s2.discipline ORDER BY count(*) DESC, s2.discipline LIMIT 1)"
    " AS discipline, count(DISTINCT s.discipline) AS n_disciplines"
    " FROM kps k JOIN seed_kps l ON l.kp_id = k.id JOIN seeds s ON s.rid = l.seed_rid"
)


@pytest.mark.parametrize("limit,search", [(100, None), (7, None), (50, "bio"), (None, "concept 10")])
def test_the_kp_table_equals_the_join_of_every_link(big, limit, search):
    sql, params = OLD_TABLE, []
    if search:
        sql += " WHERE (k.name LIKE ? OR k.label LIKE ?)"
        params += [f"%{search}%", f"%{search}%"]
    sql += " GROUP BY k.id ORDER BY freq DESC, k.name" + (" LIMIT ?" if limit else "")
    params += [limit] if limit else []
    expected = [dict(r) for r in big.query(sql, params)]
    got = big.kps.table(limit=limit, search=search)
    assert [r["key"] for r in got] == [r["key"] for r in expected] and got
    for g, e in zip(got, expected):
        assert (g["id"], g["name"], g["freq"], g["discipline"], g["n_disciplines"]) == \
            (e["id"], e["name"], e["freq"], e["discipline"], e["n_disciplines"])
        assert g["mean_difficulty"] == pytest.approx(e["mean_difficulty"])


def test_top_kps_by_discipline_equal_the_sql_ranking(big):
    rows = big.query(
        "WITH c AS (SELECT s.discipline AS d, l.kp_id AS kid, count(*) AS n FROM seed_kps l"
        "           JOIN seeds s ON s.rid = l.seed_rid GROUP BY s.discipline, l.kp_id),"
        " r AS (SELECT c.d, coalesce(k.label, k.name) AS label, c.n,"
        "       row_number() OVER (PARTITION BY c.d ORDER BY c.n DESC, k.name) AS rk FROM c JOIN kps k ON k.id = c.kid)"
        " SELECT d, label, n FROM r WHERE rk <= 10 ORDER BY d, rk")
    expected: dict[str, list[tuple[str, int]]] = {}
    for d, label, n in rows:
        expected.setdefault(d, []).append((label, int(n)))
    assert big.kps.top_by_discipline(10) == expected and len(expected) > 3


def test_seed_summary_gives_the_filters_charts_and_match_counts_of_a_scan(big):
    big.seeds.set_estimates([(2.6, 1), (None, 2)], [("Chemistry", 3)])
    opts = big.seeds.filter_options()
    assert opts["disciplines"] == [r[0] for r in big.query("SELECT DISTINCT discipline FROM seeds ORDER BY 1")]
    assert opts["difficulties"][-1] == "unknown"
    for disciplines, difficulties in [(None, None), (["Chemistry"], None), (None, [3, "unknown"]),
                                      (opts["disciplines"][:2], [2])]:
        _, total = big.seeds.page(disciplines=disciplines, difficulties=difficulties, limit=0)
        where, params = [], []
        if disciplines:
            where.append(f"discipline IN ({','.join('?' * len(disciplines))})")
            params += disciplines
        if difficulties:
            levels = [d for d in difficulties if d != "unknown"]
            parts = [f"CAST(round(difficulty) AS INTEGER) IN ({','.join('?' * len(levels))})"] if levels else []
            params += levels
            if "unknown" in difficulties:
                parts.append("difficulty IS NULL")
            where.append("(" + " OR ".join(parts) + ")")
        sql = "SELECT count(*) FROM seeds" + (" WHERE " + " AND ".join(where) if where else "")
        assert total == big.scalar(sql, params), (disciplines, difficulties)
    by_disc = {r["discipline"]: r["seeds"] for r in big.seeds.discipline_counts()}
    assert by_disc == {d: n for d, n in big.query("SELECT discipline, count(*) FROM seeds GROUP BY discipline")}
    assert sum(r["seeds"] for r in big.seeds.difficulty_counts()) == big.counts()["seeds"]


def test_seed_attributes_are_each_seeds_discipline_and_difficulty(big):
    attrs = big.seeds.attributes()
    for rid, disc, diff in big.query("SELECT rid, discipline, difficulty FROM seeds ORDER BY random() LIMIT 50"):
        assert attrs["disciplines"][attrs["discipline"][rid]] == disc
        assert (np.isnan(attrs["difficulty"][rid]) if diff is None else attrs["difficulty"][rid] == pytest.approx(diff))


# -- query plans: indexes, no temporary b-tree of every link -------------------------------------


def test_counts_walk_indexes_in_order_without_a_temporary_btree(big):
    for sql in ("SELECT count(*) FROM (SELECT DISTINCT kp_id FROM seed_kps)",
                "SELECT count(*) FROM (SELECT DISTINCT seed_rid FROM seed_kps)"):
        p = plan(big, sql)
        assert "TEMP B-TREE" not in p, p
    assert "COVERING INDEX seed_kps_kp" in plan(big, "SELECT count(*) FROM (SELECT DISTINCT kp_id FROM seed_kps)")


def test_kp_reads_search_the_link_index(big):
    p = plan(big, "SELECT kp_id, group_concat(seed_rid) FROM seed_kps WHERE kp_id IN (?, ?) GROUP BY kp_id", (1, 2))
    assert "SEARCH seed_kps USING COVERING INDEX seed_kps_kp (kp_id=?)" in p, p
    p = plan(big, "SELECT group_concat(kp_id), group_concat(n) FROM"
                  " (SELECT kp_id, count(*) AS n FROM seed_kps GROUP BY kp_id)")
    assert "COVERING INDEX seed_kps_kp" in p and "TEMP B-TREE" not in p, p
    p = plan(big, "SELECT name FROM kps k WHERE EXISTS (SELECT 1 FROM seed_kps l WHERE l.kp_id = k.id) ORDER BY name")
    assert "SEARCH l USING COVERING INDEX seed_kps_kp (kp_id=?)" in p and "TEMP B-TREE" not in p, p
    p = plan(big, "SELECT count(*) FROM (SELECT DISTINCT kp_id FROM path_kps) p"
                  " WHERE EXISTS (SELECT 1 FROM seed_kps l WHERE l.kp_id = p.kp_id)")
    assert "COVERING INDEX path_kps_kp" in p and "SEARCH l USING COVERING INDEX seed_kps_kp" in p, p


def test_a_page_of_seeds_reads_its_rows_by_rid_and_their_links_by_seed(big):
    p = plan(big, "SELECT s.id, (SELECT count(*) FROM seed_kps l WHERE l.seed_rid = s.rid) AS n_kps"
                  " FROM seeds s ORDER BY s.rid LIMIT 50 OFFSET 100")
    assert "SCAN s" in p and "SEARCH l USING PRIMARY KEY (seed_rid=?)" in p and "TEMP B-TREE" not in p, p
    rows, total = big.seeds.page(limit=5, offset=10)
    assert total == big.counts()["seeds"] and [r["kps"] for r in rows] == [
        big.scalar("SELECT count(*) FROM seed_kps WHERE seed_rid = ?", (rid,)) for rid in range(11, 16)]
