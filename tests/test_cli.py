"""The command line, run as a user runs it: a real process, a real database file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["ingest", "extract", "graph", "sample", "runs", "export", "init-sample", "synthesize", "enhance", "gates",
            "run", "check"]


def test_the_list_above_is_every_command_and_the_readme_names_each():
    from linkqa_core.cli import main

    assert sorted(main.commands) == sorted(COMMANDS)
    readme = (ROOT / "README.md").read_text()
    for command in COMMANDS:
        assert f"linkqa_core {command}" in readme or f"`{command}`" in readme, command


def cli(*args, db=None, check=True):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if db:
        env["LINKQA_DB"] = str(db)
    proc = subprocess.run([sys.executable, "-m", "linkqa_core", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


def cli_json(*args, db=None):
    return json.loads(cli(*args, "--json", db=db).stdout)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_naming_db_and_json(command):
    out = cli(command, "--help").stdout
    assert "--db" in out and "--json" in out


def test_sample_help_lists_every_knob_flag():
    out = cli("sample", "--help").stdout
    for flag in ("--w-pop", "--w-cov", "--w-diff", "--alpha", "--tau", "--gamma", "--min-len", "--max-len",
                 "--difficulty-target", "--mix", "--seed", "--save", "--paths"):
        assert flag in out


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Fresh clone path: ingest -> extract -> graph -> sample --save -> runs -> export."""
    db = tmp_path_factory.mktemp("cli") / "cli.db"
    sample_file = ROOT / "linkqa_core" / "data" / "mmlu_sample.jsonl"
    out = {"db": db}
    out["ingest"] = cli_json("ingest", sample_file, db=db)
    out["ingest_again"] = cli_json("ingest", sample_file, db=db)
    out["extract"] = cli_json("extract", db=db)
    out["graph"] = cli_json("graph", db=db)
    out["sample"] = cli_json("sample", "--paths", 200, "--w-cov", 2, "--mix", "Law=0.5,History=0.5", "--seed", 3,
                             "--save", db=db)
    out["runs"] = cli_json("runs", db=db)
    return out


def test_ingest_parallel_and_no_parallel_report_the_same(tmp_path):
    rows = [json.dumps({"question": f"q {i}?", "answer": "A", "options": ["x", "y"]}) for i in range(300)]
    rows[17] = '{"question": "broken",'
    rows[250] = rows[3]
    path = tmp_path / "seeds.jsonl"
    path.write_text("\n".join(rows) + "\n")
    out = [cli_json("ingest", path, flag, db=tmp_path / f"{flag}.db") for flag in ("--parallel", "--no-parallel")]
    assert out[0] == out[1]
    assert out[0]["added"] == 298 and out[0]["duplicates"] == 1 and [b["line"] for b in out[0]["bad_rows"]] == [18]


def test_ingest_json_reports_added_duplicates_total_and_bad_rows(pipeline):
    first, again = pipeline["ingest"], pipeline["ingest_again"]
    assert set(first) >= {"added", "duplicates", "total_seeds", "bad_rows"}
    assert first["total_seeds"] == first["added"] > 1100
    assert again["added"] == 0 and again["duplicates"] == first["rows_read"] and again["total_seeds"] == first["total_seeds"]


def test_extract_and_graph_json_have_their_keys(pipeline):
    assert pipeline["extract"]["seeds"] == pipeline["ingest"]["total_seeds"] and pipeline["extract"]["kps"] > 1000
    g = pipeline["graph"]
    assert g["nodes"] == pipeline["extract"]["kps"]
    assert g["edges"] > 0 and g["components"] >= 1 and 0 < g["largest_component_share"] <= 1


def test_sample_json_has_paths_metrics_and_baseline(pipeline):
    s = pipeline["sample"]
    assert isinstance(s["run_id"], int)
    assert len(s["paths"]) == 200
    assert all(set(p) >= {"kps", "discipline", "seed_ids"} for p in s["paths"])
    assert {p["discipline"] for p in s["paths"]} == {"Law", "History"}
    keys = {"kp_coverage", "popularity_weighted_coverage", "visit_entropy", "popularity_rank_correlation",
            "discipline_tv_distance", "mean_seeds_per_path", "mean_link_strength"}
    assert keys <= set(s["metrics"]) and keys <= set(s["baseline"])
    assert s["metrics"]["discipline_tv_distance"] < 0.05


def test_unsaved_sample_has_null_run_id_and_is_reproducible(pipeline):
    a = cli_json("sample", "--paths", 20, "--seed", 8, db=pipeline["db"])
    b = cli_json("sample", "--paths", 20, "--seed", 8, db=pipeline["db"])
    assert a["run_id"] is None
    assert [p["kps"] for p in a["paths"]] == [p["kps"] for p in b["paths"]]


def test_runs_lists_the_saved_run_with_cumulative_coverage(pipeline):
    runs = pipeline["runs"]
    assert [r["id"] for r in runs["runs"]] == [pipeline["sample"]["run_id"]]
    assert runs["runs"][0]["config"]["w_cov"] == 2.0
    assert runs["cumulative_kp_coverage"] == pipeline["sample"]["metrics"]["kp_coverage"]


def test_export_writes_the_runs_paths_and_bundles(pipeline, tmp_path):
    out = tmp_path / "run.jsonl"
    report = cli_json("export", "--run", pipeline["sample"]["run_id"], "--out", out, db=pipeline["db"])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert report["records"] == len(lines) == 200
    assert lines[0]["kps"] == pipeline["sample"]["paths"][0]["kps"]
    assert [s["id"] for s in lines[0]["seeds"]] == pipeline["sample"]["paths"][0]["seed_ids"]
    assert lines[0]["provenance"]["run_id"] == pipeline["sample"]["run_id"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["ingest", "no/such/file.jsonl"], "no/such/file.jsonl"),
        (["sample", "--tau", "0"], "tau = 0.0 is outside"),
        (["sample", "--mix", "Astrology=1"], "unknown discipline 'Astrology'"),
        (["export", "--run", "999", "--out", "x.jsonl"], "no run 999"),
    ],
)
def test_errors_go_to_stderr_with_nonzero_exit(pipeline, args, message):
    proc = cli(*args, db=pipeline["db"], check=False)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr


def test_commands_on_an_empty_database_explain_what_to_do_first(tmp_path):
    proc = cli("sample", "--paths", 5, db=tmp_path / "empty.db", check=False)
    assert proc.returncode == 1 and "run extract first" in proc.stderr
    proc = cli("extract", db=tmp_path / "empty.db", check=False)
    assert proc.returncode == 1 and "ingest a file first" in proc.stderr
