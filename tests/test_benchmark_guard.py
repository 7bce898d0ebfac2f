"""The benchmark guard catches planted regressions; its checks and the data generator do what they say.

The guard itself (``benchmarks/run.py --quick``, :mod:`benchmarks.guard`) measures speed;
these tests assert no timing of their own. The planted-regression tests run the real
guard (``guard.json``, 10k seeds) in a subprocess with one ``--plant`` each and check that
it fails on exactly the check the plant breaks, and that the unplanted guard passes.
Those 9 runs cost about 105 s of CPU (so about 2 minutes on a quiet 2-core machine; 9 minutes
at a load average of 13-38): marked ``slow``, which ``scripts/test`` and so CI still run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import generate as gen  # noqa: E402
from benchmarks import guard, plants, result_checks  # noqa: E402
from linkqa_core.graph.build import build_graph  # noqa: E402
from linkqa_core.graph.walks import WalkParams, Walks, value_walks  # noqa: E402
from linkqa_core.store import Store  # noqa: E402

GUARD_JSON = json.loads((ROOT / "benchmarks" / "guard.json").read_text())


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_data(tmp_path):
    a = gen.generate(3000, seed=5)
    b = gen.generate(3000, seed=5)
    for field in ("seed_discipline", "seed_subject", "seed_difficulty", "link_ptr", "link_kp", "kp_home"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    gen.write_jsonl(a, tmp_path / "a.jsonl")
    gen.write_jsonl(b, tmp_path / "b.jsonl")
    assert _digest(tmp_path / "a.jsonl") == _digest(tmp_path / "b.jsonl")


def test_other_seed_other_data():
    a = gen.generate(3000, seed=5)
    c = gen.generate(3000, seed=6)
    assert not np.array_equal(a.link_kp[:1000], c.link_kp[:1000])


def test_shape_of_the_data():
    fit = gen.load_fit()
    d = gen.generate(5000, seed=1, fit=fit)
    sizes = np.diff(d.link_ptr)
    assert sizes.min() >= 2 and sizes.max() <= 8
    for i in range(0, d.n, 97):
        kps = d.kps_of(i)
        assert len(set(kps.tolist())) == len(kps)
    shares = np.bincount(d.seed_discipline, minlength=len(d.disciplines)) / d.n
    expected = np.array([fit["disciplines"][x] for x in d.disciplines])
    assert np.abs(shares - expected).max() < 0.02
    freq = np.bincount(d.link_kp)
    freq = freq[freq > 0]
    assert freq.max() > 20 * np.median(freq)  # heavy-tailed popularity


def test_vocabulary_grows_with_size():
    fit = gen.load_fit()
    assert gen.vocabulary_size(fit, 10_000) < gen.vocabulary_size(fit, 100_000) < gen.vocabulary_size(fit, 1_000_000)


def test_store_fast_path_matches_the_arrays():
    d = gen.generate(1500, seed=2)
    with Store(":memory:") as store:
        gen.write_store(d, store)
        g = build_graph(store)
        assert store.seeds.count() == d.n
    assert g.n_nodes == np.unique(d.link_kp).size
    assert int(g.freq.sum()) == d.n_links


@pytest.mark.parametrize("text,n", [("10k", 10_000), ("100K", 100_000), ("1M", 1_000_000), ("2500", 2500)])
def test_parse_size(text, n):
    assert gen.parse_size(text) == n


# -- the guard's checks, on small inputs (no timing) ---------------------------------------------


@pytest.fixture(scope="module")
def small_data():
    return gen.generate(1500, seed=2)


@pytest.fixture(scope="module")
def small_graph(small_data):
    with Store(":memory:") as store:
        gen.write_store(small_data, store, text=False)
        return build_graph(store)


def test_engine_walks_pass_the_walk_check(small_graph):
    w = value_walks(small_graph, WalkParams(), 2000, seed=3)
    assert result_checks.walk_problems(small_graph, w, WalkParams(), 2000) == []


def test_walk_check_finds_single_kp_paths(small_graph):
    w = value_walks(small_graph, WalkParams(), 500, seed=3)
    ptr = np.arange(len(w) + 1)
    nodes = w.nodes[w.ptr[:-1]]
    cut = Walks(nodes, ptr, w.discipline, np.bincount(nodes, minlength=small_graph.n_nodes), w.targets)
    problems = result_checks.walk_problems(small_graph, cut, WalkParams(), 500)
    assert any("500 paths outside lengths 2-5" in p for p in problems), problems


def test_walk_check_finds_steps_off_the_graph_and_wrong_counts(small_graph):
    w = value_walks(small_graph, WalkParams(), 500, seed=3)
    nodes = np.random.default_rng(0).integers(0, small_graph.n_nodes, w.nodes.size).astype(w.nodes.dtype)
    off = Walks(nodes, w.ptr, w.discipline, w.visits, w.targets)
    problems = " | ".join(result_checks.walk_problems(small_graph, off, WalkParams(), 600))
    assert "500 paths, asked for 600" in problems
    assert "steps are not edges of the graph" in problems
    assert "visit counts do not match the paths" in problems


def test_walk_check_finds_a_kp_twice_in_a_path(small_graph):
    w = value_walks(small_graph, WalkParams(), 50, seed=3)
    i = int(np.flatnonzero(w.lengths == 3)[0])
    nodes = w.nodes.copy()
    nodes[w.ptr[i] + 2] = nodes[w.ptr[i]]  # a -> b -> a: every step an edge, a repeated
    twice = Walks(nodes, w.ptr, w.discipline, np.bincount(nodes, minlength=small_graph.n_nodes), w.targets)
    assert result_checks.walk_problems(small_graph, twice, WalkParams(), 50) == ["1 repeated KPs within paths"]


def _reading(engine_cpu, engine_wall, base_cpu, base_wall) -> guard.Reading:
    return guard.Reading("graph", 1, 1, list(engine_cpu), list(engine_wall), list(base_cpu), list(base_wall))


def test_cpu_ratio_fails_below_tolerance_times_recorded_and_judges_the_best_reading():
    g = {"busy_share": 0.5, "ratios": {"graph": {"recorded": 10.0, "tolerance": 0.8, "floor": 3.0}}}
    slow = _reading([0.015, 0.016], [0.015, 0.016], [0.1, 0.11], [0.1, 0.11])  # 6.7x: a 1.5x slower engine
    fast = _reading([0.0105], [0.0105], [0.1], [0.1])  # 9.5x
    assert guard.judge_ratio("graph", [slow], g).ok is False
    assert "threshold 8.00x" in guard.judge_ratio("graph", [slow], g).line
    assert guard.judge_ratio("graph", [slow, fast], g).ok is True
    g["ratios"]["graph"]["recorded"] = 3.0  # the floor wins over 0.8 x 3
    assert guard.judge_ratio("graph", [_reading([0.04], [0.04], [0.1], [0.1])], g).ok is False


def test_a_failure_measured_on_an_oversubscribed_machine_says_so():
    g = {"busy_share": 0.5, "ratios": {"graph": {"recorded": 10.0, "tolerance": 0.8, "floor": 3.0}}}
    crowded = _reading([0.015], [0.06], [0.1], [0.4])  # a quarter of a CPU on both sides
    check = guard.judge_ratio("graph", [crowded], g)
    assert check.ok is False and "got at most 0.25 of a CPU" in check.line
    alone = _reading([0.015], [0.015], [0.1], [0.1])
    assert "of a CPU" not in guard.judge_ratio("graph", [alone], g).line


def test_wait_check_sees_wall_time_the_cpu_ratio_cannot():
    g = {"wait_limit": 1.5}
    # the same CPU on both sides; the engine sleeps 50 ms a call
    slept = _reading([0.02] * 3, [0.07] * 3, [0.2], [0.2])
    assert guard.judge_wait("graph", [slept], g).ok is False
    assert "off the CPU" in guard.judge_wait("graph", [slept], g).line
    # another process takes the CPU half the time: both sides' wall doubles, no finding
    shared = _reading([0.02] * 3, [0.04] * 3, [0.2], [0.4])
    assert guard.judge_wait("graph", [shared], g).ok is True


def test_seed_digest_sees_one_changed_character(tmp_path, small_data):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    with Store(a) as store:
        gen.write_store(small_data, store)
    shutil.copy(a, b)
    assert result_checks.seed_digest(a) == result_checks.seed_digest(b)
    with sqlite3.connect(b) as conn:
        conn.execute("UPDATE seeds SET question = question || '.' WHERE rid = 7")
    assert result_checks.seed_digest(a)[0] == result_checks.seed_digest(b)[0] == 1500
    assert result_checks.seed_digest(a)[1] != result_checks.seed_digest(b)[1]


def test_plants_are_undone_after_the_block(small_graph):
    import linkqa_core.graph.walks as walks_module

    original = walks_module.value_walks
    with plants.planted(["walks-single"]):
        assert walks_module.value_walks is not original
        assert set(walks_module.value_walks(small_graph, WalkParams(), 20, seed=1).lengths.tolist()) == {1}
    assert walks_module.value_walks is original


# -- planted regressions: the real guard, in a subprocess ------------------------------------------


def _run_guard(tmp_path: Path, *extra: str) -> tuple[int, dict, str]:
    out = tmp_path / "guard.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(out), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.exists(), proc.stderr[-2000:]
    return proc.returncode, json.loads(out.read_text()), proc.stdout


def _lines(report: dict) -> dict[str, str]:
    return {c["name"]: c["line"] for c in report["checks"]}


@pytest.mark.slow
def test_unplanted_guard_passes_every_check(tmp_path):
    code, report, stdout = _run_guard(tmp_path)
    assert report["failed"] == [], stdout
    assert code == 0
    names = set(_lines(report))
    assert names == {"graph result", "graph cpu", "graph wait", "walks result", "walks cpu", "walks wait",
                     "distribution", "ingest result", "ingest cpu", "ingest wait"}
    assert "guard passed" in stdout


# plant, guard stages run, the checks that must fail (exactly), a phrase of the first one's line
PLANTED = [
    ("graph-sleep:0.15", "graph", ["graph wait"], "off the CPU"),
    ("walks-single", "walks,distribution", ["walks result", "distribution"], "paths outside lengths 2-5"),
    ("walks-random", "walks,distribution", ["walks result", "distribution"], "steps are not edges of the graph"),
    ("ingest-drop", "ingest", ["ingest result"], "9,990 rows read"),
    ("ingest-alter", "ingest", ["ingest result"], "10 changed"),
    # 2x, not 1.5x: the thresholds are set against the recorded ratios, and a machine that reads
    # above its record lifts a planted 1.5x slowdown to the threshold (2026-11-26: walks read
    # 120x unplanted against 98.13x recorded, and a planted 1.5x read 89.65x, over the 85.37x
    # threshold). Here the guard's mechanism is pinned; that its rule catches 1.5x against the
    # record is pinned by test_a_1_5x_slowdown_is_below_every_threshold.
    ("walks-slow:2", "walks", ["walks cpu"], "threshold"),
    ("graph-slow:2", "graph", ["graph cpu"], "threshold"),
    ("ingest-slow:2", "ingest", ["ingest cpu"], "threshold"),
]


@pytest.fixture(scope="module")
def planted_guard(tmp_path_factory) -> Path:
    """guard.json with one retry and no pause for a busy machine: a planted slowdown fails
    every reading, so the full retries and pauses would only add minutes, not evidence."""
    path = tmp_path_factory.mktemp("guard") / "guard.json"
    path.write_text(json.dumps({**GUARD_JSON, "retries": 1, "busy_pause_s": 0}))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("plant,only,fails,phrase", PLANTED, ids=[p[0] for p in PLANTED])
def test_guard_fails_on_the_check_a_planted_regression_breaks(tmp_path, planted_guard, plant, only, fails, phrase):
    code, report, stdout = _run_guard(tmp_path, "--guard", str(planted_guard), "--plant", plant, "--only", only)
    assert code == 1, stdout
    # the planted checks fail; another failing check may only be a speed reading that a busy
    # machine moved (never a result check, which no load can move)
    assert set(fails) <= set(report["failed"]), stdout
    assert all(name in fails or name.endswith(" cpu") for name in report["failed"]), stdout
    assert phrase in _lines(report)[fails[0]], stdout
    assert "GUARD FAILED" in stdout and f"PLANTED: {plant}" in stdout


def test_a_1_5x_slowdown_is_below_every_threshold():
    """guard.json's rule catches a 1.5x slower engine even with a reading 15 % high."""
    for spec in GUARD_JSON["ratios"].values():
        threshold = max(spec["floor"], spec["tolerance"] * spec["recorded"])
        assert threshold > 1.15 * spec["recorded"] / 1.5


# -- CI --------------------------------------------------------------------------------------------


def _ci_tree(tmp_path: Path, *, guard_script: bool, tests_pass: bool = True) -> Path:
    """A copy of .ci/run in a tree whose scripts/test and guard only log their arguments."""
    root = tmp_path / "repo"
    (root / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "run", root / ".ci" / "run")
    (root / "scripts").mkdir()
    test = root / "scripts" / "test"
    test.write_text(f"#!/usr/bin/env bash\necho \"tests $*\" >> log\nexit {0 if tests_pass else 3}\n")
    test.chmod(0o755)
    (root / ".venv" / "bin").mkdir(parents=True)
    os.symlink(sys.executable, root / ".venv" / "bin" / "python")
    if guard_script:
        (root / "benchmarks").mkdir()
        (root / "benchmarks" / "run.py").write_text("import sys\nopen('log', 'a').write('guard ' + ' '.join(sys.argv[1:]) + '\\n')\n")
    return root


def _ci(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(root / ".ci" / "run")], capture_output=True, text=True, timeout=60)


def test_ci_runs_the_tests_then_the_guard(tmp_path):
    root = _ci_tree(tmp_path, guard_script=True)
    proc = _ci(root)
    assert proc.returncode == 0, proc.stderr
    log = (root / "log").read_text().splitlines()
    assert log[0] == "tests -q"
    assert log[1].startswith("guard --quick")


def test_ci_fails_when_the_guard_script_is_missing(tmp_path):
    root = _ci_tree(tmp_path, guard_script=False)
    proc = _ci(root)
    assert proc.returncode != 0
    assert "benchmarks/run.py is missing" in proc.stderr
    assert (root / "log").read_text() == "tests -q\n"


def test_ci_stops_when_the_tests_fail(tmp_path):
    root = _ci_tree(tmp_path, guard_script=True, tests_pass=False)
    proc = _ci(root)
    assert proc.returncode == 3
    assert "guard" not in (root / "log").read_text()
