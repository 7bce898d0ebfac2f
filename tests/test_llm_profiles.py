"""Every LLM stage end to end against each real-server profile, the StageModel as the model.

The table itself: ``.venv/bin/python tests/profile_matrix.py`` (see its docstring).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from profile_matrix import KEY, PIPELINE, PROFILES, run_pipeline, run_profile
from openai_server import FakeOpenAI, HostedReasoning, StageModel

ROOT = Path(__file__).resolve().parents[1]
EXPECTED_MODE = {"strict": "json_schema", "vllm": "json_schema", "ollama": "json_schema", "prose": "json_schema",
                 "llama_cpp": "json_object_schema", "hosted_reasoning": "json_object_schema"}


@pytest.mark.parametrize("profile", PROFILES)
def test_every_stage_works_against_the_profile(profile, tmp_path):
    extract, synth, enh = run_profile(profile, tmp_path, seeds=120, pipeline=False)
    for row in (extract, synth, enh):
        assert row.mode == EXPECTED_MODE[profile], row
    # extraction: no holes; the batch answers carry most seeds despite the misbehaviour
    assert extract.got == extract.asked == 120 and "failed" not in extract.detail
    assert extract.detail["llm"] >= 90 and sum(extract.detail.values()) == 120
    alone = extract.detail.get("llm-single", 0) + extract.detail.get("offline-fallback", 0)
    blank_retries = 0.25 if profile == "hosted_reasoning" else 0  # every fifth answer there is blank: asked again
    assert extract.requests <= (15 + alone) * (1 + blank_retries) + 1  # batches, seeds alone, one refused mode
    # synthesis: the number asked for, no blank item stored, a request per bundle (plus top-ups,
    # plus blank answers asked again where the profile sends them)
    assert synth.got == synth.asked == 20 and synth.detail["blank_items"] == 0
    assert 10 <= synth.requests <= (10 + 4) * (1 + blank_retries)
    # enhancement: every model-backed part ran, and some rewrites were kept
    assert enh.detail["stages"] == ["difficulty-check", "difficulty-judge", "difficulty-rate", "difficulty-rewrite"]
    assert enh.asked > 0 and 0 < enh.got <= enh.asked and enh.detail["rated"] > 0


@pytest.mark.parametrize("profile", PROFILES)
def test_run_config_works_against_the_profile(profile, tmp_path):
    [row] = run_pipeline(profile, tmp_path)
    assert row.mode == EXPECTED_MODE[profile]
    assert row.got == row.asked == 12 and row.detail["enhance_kept"] > 0
    assert "failed" not in row.detail["extract"] and sum(row.detail["extract"].values()) == 1139


def test_cli_run_config_against_a_deepseek_like_endpoint(tmp_path):
    config = tmp_path / "p.toml"
    config.write_text("[ingest]\nsample = true\n" + PIPELINE + '[export]\nout = "out.jsonl"\nstatus = "all"\n')
    with FakeOpenAI(StageModel(reasoning=True), profile=HostedReasoning(blank_every=4)) as srv:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "LINKQA_DB": str(tmp_path / "p.db"),
               "OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": KEY, "LINKQA_MODEL": "deepseek-reasoner"}
        proc = subprocess.run([sys.executable, "-m", "linkqa_core", "run", "--config", str(config), "--json", "-q",
                               "--structured-output", "json_object", "--concurrency", "8"],
                              capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr
        formats = {(r.json.get("response_format") or {}).get("type") for r in srv.chat_requests}
        prompts = [r.json["messages"][-1]["content"] for r in srv.chat_requests]
    assert formats == {"json_object"} and all("json" in p.lower() for p in prompts)  # the forced mode, DeepSeek's rule
    report = json.loads(proc.stdout)
    assert report["synthesize"]["items"] == 12 and report["extract"]["by_path"]["llm"] > 900
    records = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert records and all(r["question"].strip() and r["answer"].strip() for r in records)
    assert all(r["provenance"]["model"] == "deepseek-reasoner" for r in records)
    assert KEY.encode() not in (tmp_path / "p.db").read_bytes()
