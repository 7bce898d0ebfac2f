"""Every LLM stage against every server profile, with the StageModel as the model.

Used by ``tests/test_llm_profiles.py`` (which asserts on it) and runnable on its own to
print the table of stages × profiles (items asked for, items got, requests made)::

    .venv/bin/python tests/profile_matrix.py            # the bundled sample, all profiles
    .venv/bin/python tests/profile_matrix.py --seeds 200 --profiles llama_cpp,prose

The StageModel misbehaves now and then (items more or fewer than asked, a seed left out
of a batch, the prompt's example KPs, a cut-off answer), as small models do.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from linkqa_core.difficulty.enhance import enhance  # noqa: E402
from linkqa_core.difficulty.targets import DifficultyTargets  # noqa: E402
from linkqa_core.graph.sampling import sample  # noqa: E402
from linkqa_core.graph.walks import WalkParams  # noqa: E402
from linkqa_core.ingest.load import ingest, sample_path  # noqa: E402
from linkqa_core.kps.extract import run_extraction  # noqa: E402
from linkqa_core.kps.llm import LLMExtractor  # noqa: E402
from linkqa_core.llm.settings import LLMSettings  # noqa: E402
from linkqa_core.pipeline import run_from_config  # noqa: E402
from linkqa_core.quality.gates import apply_gates  # noqa: E402
from linkqa_core.store import Store  # noqa: E402
from linkqa_core.synthesis.run import SynthesisConfig, synthesize  # noqa: E402
from openai_server import FakeOpenAI, HostedReasoning, StageModel  # noqa: E402

PROFILES = ("strict", "llama_cpp", "hosted_reasoning", "prose", "vllm", "ollama")
MISBEHAVE = {"more_items": 3, "fewer_items": 5, "drop_seed": 4, "example_kps": 9, "truncated": 13}
KEY = "sk-test-matrix-000"

PIPELINE = """
[extract]
extractor = "llm"
batch_size = 8
[sample]
paths = 6
seed = 11
[synthesize]
per_bundle = 2
items = 12
[enhance]
targets = "default=4:0.5,5:0.5"
max_rounds = 1
[gates]
near_dup_threshold = 0.9
"""


@dataclass
class Row:
    profile: str
    stage: str
    asked: int
    got: int
    requests: int
    mode: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


def _server(profile: str, model: StageModel) -> FakeOpenAI:
    prof: Any = HostedReasoning(blank_every=5) if profile == "hosted_reasoning" else profile
    return FakeOpenAI(model, profile=prof)


def _settings(srv: FakeOpenAI, **kw: Any) -> LLMSettings:
    return LLMSettings(base_urls=(srv.base_url,), api_key=KEY, model="fake-model", concurrency=8,
                       backoff_base_s=0.0, backoff_max_s=0.01, **kw)


def _mode(store: Store) -> str:
    modes = {m["mode"] for m in store.llm.modes()}
    return ",".join(sorted(modes))


def run_profile(profile: str, workdir: Path, *, seeds: Optional[int] = None, pipeline: bool = True) -> list[Row]:
    """The rows of one profile: extract, synthesize, enhance, and ``run --config``'s stages."""
    rows: list[Row] = []
    model = StageModel(misbehave=MISBEHAVE, reasoning=profile in ("prose", "vllm"))
    with _server(profile, model) as srv, Store(workdir / f"{profile}.db") as store:
        ingest(store, sample_path())
        if seeds is not None:  # a smaller seed set: drop the rest before anything is extracted
            keep = [sid for _, s in store.seeds.iter() for sid in [s.id]][:seeds]
            with store.transaction() as conn:
                conn.execute(f"DELETE FROM seeds WHERE id NOT IN ({','.join('?' * len(keep))})", keep)
        n_seeds = store.seeds.count()
        extractor = LLMExtractor(_settings(srv), store=store, batch_size=8)
        before = len(srv.chat_requests)
        report = run_extraction(store, extractor)
        rows.append(Row(profile, "extract --extractor llm", n_seeds, n_seeds - report.by_path.get("failed", 0),
                        len(srv.chat_requests) - before, _mode(store), dict(report.by_path)))

        run_id = sample(store, WalkParams(), 10, seed=3, save=True).run_id
        before = len(srv.chat_requests)
        syn = synthesize(store, run_id, SynthesisConfig(per_bundle=2), _settings(srv))
        blank = store.scalar("SELECT count(*) FROM items WHERE run_id = ? AND status != 'failed' AND"
                             " (trim(coalesce(question, '')) = '' OR trim(coalesce(answer, '')) = '')", (run_id,))
        rows.append(Row(profile, "synthesize", syn.target_items, syn.items_ok, len(srv.chat_requests) - before,
                        _mode(store), {"failed": syn.items_failed, "paths_added": syn.paths_added,
                                       "blank_items": blank}))

        before = len(srv.chat_requests)
        en = enhance(store, run_id, DifficultyTargets.parse("default=4:0.5,5:0.5"), _settings(srv), max_rounds=1)
        stages = {s for s, _ in model.log}
        rows.append(Row(profile, "enhance (rate, rewrite, check)", en.attempted, en.kept,
                        len(srv.chat_requests) - before, _mode(store),
                        {"rated": en.rated, "eliminated": dict(en.eliminated), "failed": en.failed,
                         "stages": sorted(s for s in stages if s.startswith("difficulty"))}))
        gates = apply_gates(store, run_id)
        rows[-1].detail["gates"] = gates

    if pipeline:
        rows += run_pipeline(profile, workdir)
    return rows


def run_pipeline(profile: str, workdir: Path) -> list[Row]:
    """``run --config`` (the engine behind it) on a fresh database: every LLM stage in one go."""
    model = StageModel(misbehave=MISBEHAVE)
    config = workdir / f"{profile}-pipeline.toml"
    config.write_text("[ingest]\nsample = true\n" + PIPELINE, encoding="utf-8")
    with _server(profile, model) as srv, Store(workdir / f"{profile}-pipeline.db") as store:
        import os

        saved = {k: os.environ.get(k) for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "LINKQA_MODEL")}
        os.environ.update({"OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": KEY, "LINKQA_MODEL": "fake-model"})
        try:
            report = run_from_config(store, config, flags={"concurrency": 8, "backoff_base_s": 0.0})
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        requests = len(srv.chat_requests)
        ext, syn, en = report["extract"], report["synthesize"], report["enhance"]
        return [Row(profile, "run --config", 12, syn["items"], requests, _mode(store),
                    {"extract": ext.get("by_path"), "synthesize_failed": syn["failed"],
                     "enhance_kept": en["kept"], "enhance_attempted": en["attempted"]})]


def table(rows: list[Row]) -> str:
    lines = [f"{'profile':<17}{'stage':<32}{'asked':>7}{'got':>7}{'requests':>10}  mode / detail"]
    for r in rows:
        lines.append(f"{r.profile:<17}{r.stage:<32}{r.asked:>7}{r.got:>7}{r.requests:>10}  {r.mode}  {r.detail}")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=None, help="extract this many seeds of the sample (default: all)")
    ap.add_argument("--profiles", default=",".join(PROFILES))
    args = ap.parse_args(argv)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for profile in args.profiles.split(","):
            rows += run_profile(profile.strip(), Path(tmp), seeds=args.seeds)
            print(table([r for r in rows if r.profile == profile.strip()]).split("\n", 1)[1], flush=True)
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
