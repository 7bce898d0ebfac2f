"""Planted regressions for the benchmark guard (``run.py --quick --plant NAME[:ARG]``).

Each plant replaces an engine function on its module, for this process only, by a broken
wrapper around the real one (the engine's code is never edited), so that the guard's
tests can show it fails, and on the right check. The guard calls engine functions through
their modules (``graph_build.build_graph``), so a plant is what runs; so does
:func:`baselines.distribution_check`, which imports ``value_walks`` when called.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import tempfile
import time
from typing import Callable, Iterator

import numpy as np

__all__ = ["PLANTS", "parse_plant", "planted"]



def _burn(seconds: float) -> None:
    """Spend ``seconds`` of this process's CPU time doing nothing useful."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def _plant_sleep(seconds: float) -> Callable[[Callable], Callable]:
    def wrap(fn: Callable) -> Callable:
        def slept(*args, **kwargs):
            out = fn(*args, **kwargs)
            time.sleep(seconds)
            return out
        return slept
    return wrap


def _plant_slow(factor: float) -> Callable[[Callable], Callable]:
    def wrap(fn: Callable) -> Callable:
        def slow(*args, **kwargs):
            c = time.process_time()
            out = fn(*args, **kwargs)
            _burn((factor - 1.0) * (time.process_time() - c))
            return out
        return slow
    return wrap


def _plant_walks(kind: str) -> Callable[[Callable], Callable]:
    """``single``: every path cut to its start KP; ``random``: same lengths through random KPs."""
    def wrap(fn: Callable) -> Callable:
        def broken(graph, params, n_paths, *, seed=0, **kwargs):
            from linkqa_core.graph.walks import Walks

            w = fn(graph, params, n_paths, seed=seed, **kwargs)
            if kind == "single":
                nodes = w.nodes[w.ptr[:-1]].copy()
                ptr = np.arange(len(w) + 1, dtype=w.ptr.dtype)
            else:
                nodes = np.random.default_rng(seed).integers(0, graph.n_nodes, w.nodes.size).astype(w.nodes.dtype)
                ptr = w.ptr
            visits = np.bincount(nodes, minlength=graph.n_nodes).astype(np.int64)
            disc = graph.discipline[nodes[ptr[:-1]]].astype(w.discipline.dtype)
            return Walks(nodes, ptr, disc, visits, w.targets)
        return broken
    return wrap


def _plant_ingest(kind: str, every: int) -> Callable[[Callable], Callable]:
    """Ingest a copy of the file with every ``every``-th line dropped (``drop``) or with
    its difficulty changed (``alter``: same seed id, other content). The copy is made at
    the first call and reused."""
    copies: dict[str, str] = {}

    def source_for(path: str) -> str:
        if path not in copies:
            tmp = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8")
            with open(path, encoding="utf-8") as fh, tmp:
                for i, line in enumerate(fh, 1):
                    if i % every == 0:
                        if kind == "drop":
                            continue
                        row = json.loads(line)
                        row["difficulty"] = int(row["difficulty"]) % 5 + 1
                        line = json.dumps(row) + "\n"
                    tmp.write(line)
            copies[path] = tmp.name
        return copies[path]

    def wrap(fn: Callable) -> Callable:
        def broken(store, source, **kwargs):
            return fn(store, source_for(str(source)), **kwargs)
        return broken
    return wrap


# name -> (module, function, wrapper factory taking the plant's argument, default argument, what it does)
PLANTS: dict[str, tuple[str, str, Callable[[float], Callable], float, str]] = {
    "graph-sleep": ("linkqa_core.graph.build", "build_graph", _plant_sleep, 0.3,
                    "build_graph sleeps ARG s (default 0.3) after building"),
    "graph-slow": ("linkqa_core.graph.build", "build_graph", _plant_slow, 1.5,
                   "build_graph burns CPU to take ARG x (default 1.5) its CPU time"),
    "walks-slow": ("linkqa_core.graph.walks", "value_walks", _plant_slow, 1.5,
                   "value_walks burns CPU to take ARG x (default 1.5) its CPU time"),
    "ingest-slow": ("linkqa_core.ingest.load", "ingest", _plant_slow, 1.5,
                    "ingest burns CPU to take ARG x (default 1.5) its CPU time"),
    "walks-single": ("linkqa_core.graph.walks", "value_walks", lambda _: _plant_walks("single"), 0,
                     "every walk is its start KP alone"),
    "walks-random": ("linkqa_core.graph.walks", "value_walks", lambda _: _plant_walks("random"), 0,
                     "walks of the right lengths through random KPs (ignore the graph)"),
    "ingest-drop": ("linkqa_core.ingest.load", "ingest", lambda k: _plant_ingest("drop", int(k)), 1000,
                    "ingest loses every ARG-th row (default 1000)"),
    "ingest-alter": ("linkqa_core.ingest.load", "ingest", lambda k: _plant_ingest("alter", int(k)), 1000,
                     "ingest stores another difficulty for every ARG-th row (default 1000)"),
}


def parse_plant(text: str) -> tuple[str, float]:
    """``"graph-sleep:0.05"`` -> ("graph-sleep", 0.05); the argument is optional."""
    name, _, arg = text.partition(":")
    if name not in PLANTS:
        raise SystemExit(f"unknown plant {name!r}: choose from {', '.join(PLANTS)}")
    try:
        return name, float(arg) if arg else PLANTS[name][3]
    except ValueError:
        raise SystemExit(f"plant {text!r}: the argument after ':' must be a number") from None


@contextlib.contextmanager
def planted(plants: list[str]) -> Iterator[None]:
    """Install the plants (module attributes replaced by wrappers) and restore them after."""
    saved = []
    try:
        for text in plants:
            name, arg = parse_plant(text)
            module_name, attr, factory, _default, _what = PLANTS[name]
            module = importlib.import_module(module_name)
            original = getattr(module, attr)
            saved.append((module, attr, original))
            setattr(module, attr, factory(arg)(original))
        yield
    finally:
        for module, attr, original in reversed(saved):
            setattr(module, attr, original)
