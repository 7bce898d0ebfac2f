"""The Ray backend on a two-node cluster on this host (``ray start --head`` + ``ray start --address``),
with a worker node killed mid-run; and the CLI with ``--backend ray`` for every model stage.

Token authentication is disabled for the test's cluster (``RAY_AUTH_MODE=disabled``): both
nodes are on 127.0.0.1 and live only for the test. Each node gets more logical CPUs than the
actors need, so read tasks never wait behind an actor.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scale_support import ROOT, _hang_guard, ray_or_skip  # noqa: F401

from linkqa_core.graph.sampling import sample
from linkqa_core.graph.walks import WalkParams
from linkqa_core.llm.client import LLMSettings
from linkqa_core.synthesis.run import SynthesisConfig
from openai_server import FakeOpenAI, StageModel

pytestmark = pytest.mark.ray


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_bin() -> str:
    path = Path(sys.executable).parent / "ray"
    return str(path) if path.exists() else (shutil.which("ray") or "ray")


class TwoNodes:
    """A head node and a worker node on this host, each ``ray start --block`` in its own process
    group, so the test can end exactly the node it means to (and nothing else)."""

    def __init__(self, tmp: Path):
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}
        self.tmp = tmp
        self.head = self.worker = None

    def _start(self, args: list[str], log: str) -> subprocess.Popen:
        out = open(self.tmp / log, "wb")
        return subprocess.Popen([_ray_bin(), "start", "--block", "--disable-usage-stats", *args], env=self.env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def start(self) -> "TwoNodes":
        import tempfile

        self.ray_tmp = tempfile.mkdtemp(prefix="lq-ray-", dir="/tmp")  # Ray's socket paths must stay short
        self.head = self._start(["--head", f"--port={self.port}", "--node-ip-address=127.0.0.1", "--num-cpus=3",
                                 "--include-dashboard=false", f"--temp-dir={self.ray_tmp}"], "head.log")
        self._wait_nodes(1)
        self.worker = self._start([f"--address={self.address}", "--node-ip-address=127.0.0.1", "--num-cpus=3"],
                                  "worker.log")
        self._wait_nodes(2)
        return self

    def _wait_nodes(self, n: int, timeout: float = 120) -> None:
        code = ("import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
                "print(sum(1 for x in ray.nodes() if x['Alive']))")
        deadline = time.time() + timeout
        while time.time() < deadline:
            for p, log in ((self.head, "head.log"), (self.worker, "worker.log")):
                if p is not None and p.poll() is not None:
                    raise RuntimeError(f"a test node ended: {(self.tmp / log).read_text()[-1500:]}")
            got = subprocess.run([sys.executable, "-c", code, self.address], env=self.env, capture_output=True,
                                 text=True, timeout=120)
            if got.returncode == 0 and got.stdout.strip().splitlines()[-1:] == [str(n)]:
                return
            time.sleep(2)
        raise RuntimeError(f"the test cluster did not reach {n} nodes: {(self.tmp / 'head.log').read_text()[-2000:]}")

    def kill_worker(self) -> None:
        os.killpg(self.worker.pid, 9)
        self.worker.wait(30)

    def stop(self) -> None:
        for p in (self.worker, self.head):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, 15)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, 9)
                    p.wait(10)
        shutil.rmtree(getattr(self, "ray_tmp", ""), ignore_errors=True)


@pytest.fixture
def two_nodes(tmp_path):
    ray_or_skip()
    nodes = TwoNodes(tmp_path).start()
    yield nodes
    import ray

    if ray.is_initialized():
        ray.shutdown()
    nodes.stop()


class _Slow(StageModel):
    """The stage model, slow enough that the run is still going when the worker node dies."""

    def __call__(self, body):
        time.sleep(0.3)
        return super().__call__(body)


@pytest.mark.ray_timeout(900)
def test_a_worker_node_killed_mid_run_leaves_exactly_the_items_asked_for(two_nodes, sample_store, tmp_path):
    from linkqa_core.scale.settings import ScaleSettings
    from linkqa_core.scale.synthesis import synthesize_on_ray

    run_id = sample(sample_store, WalkParams(), 40, seed=11, save=True).run_id
    scale = ScaleSettings(kind="ray", address=two_nodes.address, storage=str(tmp_path / "storage"), actors=2,
                          concurrency=4, batch_size=2)
    model = _Slow()
    with FakeOpenAI(model) as srv:
        settings = LLMSettings(base_urls=(srv.base_url,), api_key="sk-test-key", model="fake-model")

        import threading

        def killer() -> None:
            deadline = time.time() + 300
            while len(srv.chat_requests) < 12 and time.time() < deadline:
                time.sleep(0.1)
            two_nodes.kill_worker()

        t = threading.Thread(target=killer, daemon=True)
        t.start()
        report = synthesize_on_ray(sample_store, run_id, SynthesisConfig(per_bundle=2), settings, scale)
        t.join(5)
    assert two_nodes.worker.poll() is not None, "the worker node was never killed"
    items = sample_store.items.of_run(run_id)
    slots = [it.slot for it in items]
    assert report.items_ok == 80
    assert len(slots) == len(set(slots)) == 80
    assert sorted({it.path_id for it in items}) == sorted(p.id for p in sample_store.runs.paths(run_id))


@pytest.mark.ray_timeout(900)
def test_cli_runs_every_model_stage_on_ray(sample_store, tmp_path):
    ray_or_skip()
    run_id = sample(sample_store, WalkParams(), 6, seed=2, save=True).run_id
    sample_store.checkpoint()
    storage = tmp_path / "storage"
    with FakeOpenAI(StageModel()) as srv:
        env = {**os.environ, "OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": "sk-test-key",
               "LINKQA_MODEL": "fake-model", "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}
        ray_flags = ["--backend", "ray", "--address", "local", "--storage", str(storage), "--actors", "2"]

        def cli(*args: str) -> dict:
            got = subprocess.run([sys.executable, "-m", "linkqa_core", *args, "--db", sample_store.path, "--json",
                                  "-q", *ray_flags], env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
            assert got.returncode == 0, got.stderr[-2000:]
            assert "sk-test-key" not in got.stdout + got.stderr
            return json.loads(got.stdout.strip().splitlines()[-1])

        synth = cli("synthesize", "--run", str(run_id), "--per-bundle", "2")
        assert synth["items_ok"] == 12
        gates = cli("gates", "--run", str(run_id))
        assert set(gates["rejected"]) >= {"schema", "near_duplicate", "seed_duplicate"}
        enhanced = cli("enhance", "--run", str(run_id), "--max-rounds", "1")
        assert enhanced["rated"] >= 1 and enhanced["requests"] >= 1
        extracted = cli("extract", "--extractor", "llm", "--batch-size", "60")
        assert extracted["seeds"] >= 1000 and extracted["extractor"] == "llm"
    from linkqa_core.scale import progress

    manifest = progress(str(storage / f"run-{run_id}"))
    assert manifest["synthesis"]["state"] == "finished" and manifest["gates"]["items"] >= 1
    assert not any("sk-test-key" in p.read_text(errors="ignore") for p in storage.rglob("*.json"))
