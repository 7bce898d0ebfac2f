"""The Ray backend on a local Ray (one process tree): same export as the local backend, a
killed job restarted pays for no answer twice, the cluster-wide rate limit, the gates' verdicts.

Skipped with a reason when Ray is not installed (``pip install -r requirements-ray.txt``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from scale_support import ROOT, _hang_guard, comparable, copy_db, ray_or_skip, start_local_ray  # noqa: F401

from linkqa_core.curation.export import item_records
from linkqa_core.graph.sampling import sample
from linkqa_core.graph.walks import WalkParams
from linkqa_core.llm.client import LLMSettings
from linkqa_core.synthesis.run import SynthesisConfig, synthesize
from openai_server import Answer, FakeOpenAI, StageModel

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_local():
    ray = start_local_ray(4)
    yield ray
    ray.shutdown()


def _settings(srv: FakeOpenAI, **kw) -> LLMSettings:
    return LLMSettings(base_urls=(srv.base_url,), api_key="sk-test-key", model="fake-model", **kw)


def _scale(tmp_path: Path, **kw):
    from linkqa_core.scale.settings import ScaleSettings

    values = dict(kind="ray", address="local", storage=str(tmp_path / "storage"), actors=2, concurrency=8,
                  batch_size=4)
    values.update(kw)
    return ScaleSettings(**values)


def _prompt(body) -> str:
    return json.dumps(body.get("messages"), sort_keys=True)


@pytest.mark.ray_timeout(600)
def test_ray_export_equals_local_export_and_gates_give_local_verdicts(ray_local, sample_store, tmp_path):
    from linkqa_core.quality.checks import GateConfig
    from linkqa_core.quality.gates import apply_gates
    from linkqa_core.scale.gates import gates_on_ray
    from linkqa_core.scale.synthesis import synthesize_on_ray

    run_id = sample(sample_store, WalkParams(), 24, seed=3, save=True).run_id
    ray_store = copy_db(sample_store, tmp_path / "ray.db")
    cfg = SynthesisConfig(per_bundle=2, target_items=45)  # the last path asks for one item
    with FakeOpenAI(StageModel(), latency=0.02) as srv:
        local = synthesize(sample_store, run_id, cfg, _settings(srv, concurrency=8))
        n_local = len(srv.chat_requests)
    with FakeOpenAI(StageModel(), latency=0.02) as srv:  # a fresh model: the same answers to the same prompts
        remote = synthesize_on_ray(ray_store, run_id, cfg, _settings(srv), _scale(tmp_path))
        n_remote = len(srv.chat_requests)
    assert local.items_ok == remote.items_ok == 45
    assert n_remote == n_local == 23
    a = comparable(list(item_records(sample_store, run_id, status="all")))
    b = comparable(list(item_records(ray_store, run_id, status="all")))
    assert len(a) == 45 and a == b, _diff(a, b)
    assert ray_store.runs.get(run_id).config["backend"]["kind"] == "ray"

    # the gates at scale give the local gates' verdicts on the same imported items
    local_copy = copy_db(ray_store, tmp_path / "local-gates.db")
    gcfg = GateConfig(near_dup_threshold=0.3)
    local_gates = apply_gates(local_copy, run_id, cfg=gcfg)
    ray_gates = gates_on_ray(ray_store, run_id, gcfg, _scale(tmp_path))
    assert ray_gates == local_gates
    assert local_gates["near_duplicate"] + local_gates["seed_duplicate"] >= 1

    def verdicts(store):
        return [(it.id, it.slot, it.status, it.gate_reason) for it in store.items.of_run(run_id)]

    assert verdicts(local_copy) == verdicts(ray_store)
    local_copy.close()

    # the full export from Parquet, with the decisions of SQLite applied, is the export of the run
    from linkqa_core.scale.export import full_records

    ray_store.items.set_status([ray_store.items.of_run(run_id, ["generated"])[0].id], "accepted")
    for status in ("all", "accepted", "unrejected"):
        full = [(r["question"], r["status"], r["provenance"]["item_id"]) for r in full_records(ray_store, run_id,
                                                                                                status=status)]
        db = [(r["question"], r["status"], r["provenance"]["item_id"]) for r in item_records(ray_store, run_id,
                                                                                              status=status)]
        assert sorted(full, key=str) == sorted(db, key=str) and full
    ray_store.close()


_JOB = """
import sys
sys.path.insert(0, {root!r})
from linkqa_core.store import Store
from linkqa_core.llm.client import LLMSettings
from linkqa_core.scale.settings import ScaleSettings
from linkqa_core.scale.synthesis import synthesize_on_ray
from linkqa_core.synthesis.run import SynthesisConfig
store = Store({db!r})
settings = LLMSettings(base_urls=({url!r},), api_key="sk-test-key", model="fake-model")
scale = ScaleSettings(kind="ray", address="local", storage={storage!r}, actors=2, concurrency=4, batch_size=2,
                      num_cpus=4)
r = synthesize_on_ray(store, {run_id}, SynthesisConfig(per_bundle=2), settings, scale)
print("items", r.items_ok)
"""


class _Holding:
    """Answers the first ``n`` requests as the stage model does, then holds every later one
    until released (a job killed meanwhile never gets those answers: it never paid for them)."""

    def __init__(self, n: int):
        self.model = StageModel()
        self.n = n
        self.answered: list[tuple[float, str]] = []
        self.release = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, body):
        with self.lock:
            first = len(self.answered) < self.n
            if first:
                self.answered.append((time.time(), _prompt(body)))
        if not first:
            self.release.wait(60)
        return self.model(body)


@pytest.mark.ray_timeout(900)
def test_a_killed_ray_job_started_again_pays_for_no_answer_twice(ray_local, sample_store, tmp_path):
    from linkqa_core.scale import progress
    from linkqa_core.scale.synthesis import synthesize_on_ray

    run_id = sample(sample_store, WalkParams(), 20, seed=5, save=True).run_id
    sample_store.checkpoint()
    storage = str(tmp_path / "storage")
    holding = _Holding(8)
    with FakeOpenAI(holding, latency=0.02) as srv:
        script = _JOB.format(root=str(ROOT), db=sample_store.path, url=srv.base_url, storage=storage, run_id=run_id)
        env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
        job = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 240
            while len(holding.answered) < holding.n and time.time() < deadline and job.poll() is None:
                time.sleep(0.2)
            assert len(holding.answered) == holding.n, job.stdout.read().decode()[-2000:] if job.poll() else ""
            time.sleep(3)  # the answers reach the actors and the shared cache
        finally:
            os.killpg(job.pid, signal.SIGKILL)  # the job's own process group: the driver and its Ray
            job.wait(30)
        killed_at = time.time()
        time.sleep(1)
        holding.release.set()  # the held requests now answer a dead job
        time.sleep(1)
        paid_before = {p for t, p in holding.answered}
        seen_before = len(srv.chat_requests)

        report = synthesize_on_ray(sample_store, run_id, SynthesisConfig(per_bundle=2), _settings(srv),
                                   _scale(tmp_path, storage=storage))
        after = [_prompt(r.json) for r in srv.chat_requests[seen_before:]]
    assert killed_at > 0
    assert report.items_ok == 40
    assert not paid_before & set(after), "an answer paid for before the kill was asked again"
    assert len(after) == len(set(after))
    slots = [it.slot for it in sample_store.items.of_run(run_id)]
    assert len(slots) == len(set(slots)) == 40
    assert progress(storage + f"/run-{run_id}")["synthesis"]["state"] == "finished"


@pytest.mark.ray_timeout(600)
def test_the_rate_limit_holds_for_the_whole_cluster(ray_local, sample_store, tmp_path):
    from linkqa_core.scale.synthesis import synthesize_on_ray

    run_id = sample(sample_store, WalkParams(), 160, seed=7, save=True).run_id
    rpm = 1200  # 20 a second, shared by 3 actors of 16 requests each
    with FakeOpenAI(lambda body: Answer(json.dumps({"items": [
            {"question": "Which of these is the answer to the question asked here?", "options": ["a", "b", "c", "d"],
             "answer": "a", "solution": "s"}]})), latency=0.05) as srv:
        synthesize_on_ray(sample_store, run_id, SynthesisConfig(per_bundle=1), _settings(srv, rpm=rpm),
                          _scale(tmp_path, actors=3, concurrency=16, batch_size=8))
        times = sorted(r.received_at for r in srv.chat_requests)
        distinct = {_prompt(r.json) for r in srv.chat_requests}
    # two paths with one bundle ask one prompt: the shared cache answers the second, unless both
    # are in flight at the same moment on two actors (the cache is read when a request starts)
    bundles = [p.seed_ids for p in sample_store.runs.paths(run_id)]
    repeats = len(bundles) - len(set(bundles))
    assert len(distinct) >= 150 and len(distinct) <= len(times) <= len(distinct) + repeats
    burst = rpm / 60  # a full bucket: one second's worth
    steady = [t for t in times if t >= times[0] + burst / (rpm / 60)]
    rate = (len(steady) - 1) / (steady[-1] - steady[0]) * 60
    assert rate <= rpm * 1.05, f"{rate:.0f} requests a minute against a limit of {rpm}"
    assert rate >= rpm * 0.8, f"{rate:.0f} a minute: the limiter holds back more than it must"
    for t0 in times:  # no window of 5 s holds more than the limit allows plus one bucket
        assert sum(1 for t in times if t0 <= t < t0 + 5) <= rpm / 60 * 5 + burst + 1


def _diff(a, b):
    for x, y in zip(a, b):
        if x != y:
            for k in x:
                if x[k] != y.get(k):
                    if isinstance(x[k], dict):
                        for kk in x[k]:
                            if x[k][kk] != y[k].get(kk):
                                return (k, kk, x[k][kk], y[k].get(kk))
                    return (k, x[k], y.get(k))


@pytest.mark.ray_timeout(600)
def test_the_budget_holds_for_the_whole_cluster_and_a_bigger_one_finishes_the_run(ray_local, sample_store, tmp_path):
    from linkqa_core.scale.synthesis import synthesize_on_ray

    run_id = sample(sample_store, WalkParams(), 40, seed=9, save=True).run_id
    with FakeOpenAI(StageModel(), latency=0.05) as srv:
        probe = synthesize(copy_db(sample_store, tmp_path / "probe.db"), run_id, SynthesisConfig(per_bundle=1),
                           _settings(srv, concurrency=4))
        per_request = (probe.prompt_tokens + probe.completion_tokens) / probe.requests
        budget = int(per_request * 12)
        srv.reset()
        first = synthesize_on_ray(sample_store, run_id, SynthesisConfig(per_bundle=1),
                                  _settings(srv, budget_tokens=budget), _scale(tmp_path, actors=2, concurrency=4))
        asked_first = {_prompt(r.json) for r in srv.chat_requests}
        spent = first.prompt_tokens + first.completion_tokens
        second = synthesize_on_ray(sample_store, run_id, SynthesisConfig(per_bundle=1), _settings(srv),
                                   _scale(tmp_path, actors=2, concurrency=4))
        asked_all = [_prompt(r.json) for r in srv.chat_requests]
    assert first.stopped == "token or money budget reached"
    assert 8 <= first.items_ok < 40
    assert budget <= spent <= budget + 8 * per_request * 1.5  # overshoot: at most the requests out at the time
    assert second.items_ok == 40 and second.stopped is None
    assert len(asked_all) == len(set(asked_all)) and asked_first < set(asked_all)


def _one_item(body) -> Answer:
    return Answer(json.dumps({"items": [
        {"question": "Which of these is the answer to the question asked here?", "options": ["a", "b", "c", "d"],
         "answer": "a", "solution": "s"}]}))


@pytest.mark.ray_timeout(600)
def test_a_model_actor_keeps_its_whole_concurrency_in_flight_not_one_block(ray_local, sample_store, tmp_path):
    """An actor of the pool works on several blocks at once: with one block at a time (Ray
    Data's default) its requests drain to nothing at the end of every block, and an actor
    with 16 in flight and blocks of 8 rows never had more than 8 at the server."""
    from linkqa_core.scale.synthesis import synthesize_on_ray

    run_id = sample(sample_store, WalkParams(), 120, seed=11, save=True).run_id
    with FakeOpenAI(_one_item, latency=0.4) as srv:
        synthesize_on_ray(sample_store, run_id, SynthesisConfig(per_bundle=1), _settings(srv),
                          _scale(tmp_path, actors=1, concurrency=16, batch_size=2))  # blocks of 4 x 2 rows
        peak, asked = srv.max_in_flight, len(srv.chat_requests)
    assert asked >= 60
    assert 8 < peak <= 16, f"{peak} requests in flight at most; the actor may keep 16"


@pytest.mark.ray_timeout(600)
def test_the_cluster_client_keeps_each_actors_concurrency_in_flight(ray_local, tmp_path):
    """Extraction and enhancement on Ray send chunks of requests to threaded actors: one
    chunk at a time per actor would hold 8 in flight where the settings allow 24."""
    from linkqa_core.llm.client import ChatRequest
    from linkqa_core.scale.client import ClusterClient
    from linkqa_core.scale.storage import open_storage

    with FakeOpenAI(lambda body: Answer("fine"), latency=0.4) as srv:
        scale = _scale(tmp_path, actors=1, concurrency=24)
        with ClusterClient(_settings(srv), scale, open_storage(scale.storage), chunk=8) as client:
            results = client.complete_many([ChatRequest.user(f"question {i}") for i in range(96)])
        peak = srv.max_in_flight
    assert [r.content for r in results] == ["fine"] * 96
    assert 8 < peak <= 24, f"{peak} requests in flight at most; the actor may keep 24"


def _hard_gate_set(n: int, seed: int = 3):
    """Items made from the sample's questions by the edits that give every kind of verdict:
    word swaps (near duplicates, chains of them), shuffled words (a seed's words reordered),
    changed options (a seed's question copied), plain copies (exact duplicates)."""
    import random

    from linkqa_core.ingest.load import sample_path
    from linkqa_core.records import Item

    rows = [json.loads(line) for line in sample_path().read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(seed)
    vocab = sorted({w for r in rows for w in r["question"].split()})
    items = []
    for i in range(n):
        r = rows[rng.randrange(len(rows))]
        words = r["question"].split()
        opts = [r[f"answer_{c}"] for c in "abcd"]
        edit = rng.choice(("swap", "swap", "swap", "shuffle", "options", "copy"))
        if edit == "swap":
            for _ in range(rng.choice((1, 2, 3, 5, 8))):
                words[rng.randrange(len(words))] = rng.choice(vocab)
        elif edit == "shuffle":
            k = rng.randrange(len(words) - 1) if len(words) > 2 else 0
            words[k:k + 2] = words[k:k + 2][::-1]
        elif edit == "options":
            opts = [o + " only" for o in opts]
        items.append(Item(" ".join(words), opts[0], options=tuple(opts), id=i + 1))
    seeds = [(f"s{j}", r["question"], [r[f"answer_{c}"] for c in "abcd"]) for j, r in enumerate(rows)]
    return items, seeds


@pytest.mark.ray_timeout(600)
def test_ray_gates_give_the_local_verdicts_on_every_kind_of_copy(ray_local):
    """Three thousand items with near-duplicate chains and every way of copying a seed: the
    Ray gates' verdicts equal the local gates', verdict by verdict (their MinHash and seed
    rule once drifted apart, and 1.2 % of 100k verdicts differed)."""
    import pyarrow as pa
    import ray.data

    from linkqa_core.quality.checks import GateConfig
    from linkqa_core.quality.gates import run_gates
    from linkqa_core.scale.dedup import gate_table

    items, seeds = _hard_gate_set(3000)
    cfg = GateConfig()
    local = run_gates(items, seeds=seeds, cfg=cfg)
    ds = ray.data.from_arrow(pa.table({
        "key": [str(it.id) for it in items], "order": list(range(len(items))),
        "question": [it.question for it in items], "options": [json.dumps(list(it.options)) for it in items],
        "answer": [it.answer for it in items], "solution": [""] * len(items)})).repartition(4)
    sds = ray.data.from_arrow(pa.table({"order": list(range(len(seeds))), "seed_id": [s[0] for s in seeds],
                                        "question": [s[1] for s in seeds], "options": [json.dumps(s[2]) for s in seeds]}))
    got = gate_table(ds, cfg, seeds=sds).to_pylist()
    assert [(r.passed, r.gate, r.reason, None if r.match is None else str(r.match)) for r in local] == \
        [(g["passed"], g["gate"], g["reason"], g["match"]) for g in got]
    kinds = {r.reason.split(" of ")[0].split(" (")[0] for r in local if r.gate in ("seed_duplicate", "near_duplicate")}
    assert {"near-duplicate", "exact duplicate", "copies the question", "the words"} <= kinds, kinds
