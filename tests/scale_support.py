"""Shared helpers of the Ray tests: a local Ray for a module, a time-out on every test, the
run a test synthesises, and the exports compared without database ids."""

from __future__ import annotations

import faulthandler
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "linkqa_core"

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # two nodes on one host: no token exchange in tests


def ray_or_skip():
    """The ray module, or a skip that says how to get it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        pytest.skip("Ray is not installed: pip install -r requirements-ray.txt to run the Ray backend's tests")
    return ray


@pytest.fixture(autouse=True)
def _hang_guard(request):
    """Every Ray test ends: after its limit every thread's stack is printed and the process exits.

    The stacks go to pytest's terminal writer with its capture suspended, so they reach the
    output (a CI log): faulthandler's dump alone went into the capture
    and was lost with the process, leaving a run that stopped with no summary and no clue.
    faulthandler stays as the backstop a minute later, for a hang that holds the GIL.
    """
    marker = request.node.get_closest_marker("ray_timeout")
    limit = marker.args[0] if marker else 300
    done = threading.Event()

    def watch() -> None:
        if done.wait(limit):
            return
        with tempfile.TemporaryFile("w+") as dump:
            faulthandler.dump_traceback(file=dump, all_threads=True)
            dump.seek(0)
            stacks = dump.read()
        capture = request.config.pluginmanager.getplugin("capturemanager")
        if capture is not None:  # give the terminal back, as pytest does for a debugger
            capture.suspend_global_capture(in_=True)
        writer = request.config.get_terminal_writer()
        writer.line(f"\n{request.node.nodeid}: no end after {limit} s; the stack of every thread:\n{stacks}")
        writer.flush()
        os._exit(1)

    threading.Thread(target=watch, name="ray-hang-guard", daemon=True).start()
    faulthandler.dump_traceback_later(limit + 60, exit=True)
    yield
    done.set()
    faulthandler.cancel_dump_traceback_later()


def start_local_ray(num_cpus: int = 4):
    ray = ray_or_skip()
    from linkqa_core.scale.cluster import NAMESPACE, _quiet

    if not ray.is_initialized():
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, namespace=NAMESPACE,
                 configure_logging=True, logging_level="WARNING",
                 runtime_env={"py_modules": [str(PACKAGE)], "excludes": ["__pycache__", "*.pyc"]})
    _quiet(ray)
    return ray


def copy_db(store, target: Path):
    """A second database file identical to ``store``'s (the WAL folded in first)."""
    from linkqa_core.store import Store

    store.checkpoint()
    shutil.copy(store.path, target)
    return Store(target)


def comparable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Export records without what differs between two databases or backends: database ids, and
    the run config's record of the backend and of the Parquet import."""
    out = []
    for r in records:
        r = {k: v for k, v in r.items() if k != "id"}
        prov = dict(r.get("provenance") or r.get("metadata") or {})
        for k in ("item_id", "config_hash"):
            prov.pop(k, None)
        prov["settings"] = {k: v for k, v in (prov.get("settings") or {}).items() if k not in ("backend", "scale")}
        r["provenance" if "provenance" in r else "metadata"] = prov
        out.append(r)
    return sorted(out, key=lambda r: (r["provenance"]["path_index"], r["question"]))
