"""A run's progress on a Ray cluster, read from the manifest its job writes (Synthesis page).

A job started with ``--backend ray`` runs in another process, often on another machine;
its driver rewrites ``<storage>/run-<id>/manifest.json`` about once a second from the
cluster's counters (:mod:`linkqa_core.scale.manifest`). The run's config records the
storage when the job starts, so the page finds the manifest from the run alone and shows
what the CLI's bar shows: items done of those asked, in flight, failed, tokens. While the
job runs, the panel rereads the manifest every :data:`EVERY_S` seconds by itself (a
fragment: the rest of the page is not run again).
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import streamlit as st

from linkqa_core.errors import LinkQAError
from linkqa_core.records import Run

from . import ui

EVERY_S = 2.0
STALE_S = 120.0  # a running stage whose manifest is older than this has likely lost its driver


def show(run: Run) -> None:
    """The cluster panel for ``run``; nothing for a run that never ran on Ray."""
    backend = run.config.get("backend")
    if not isinstance(backend, Mapping) or backend.get("kind") != "ray":
        return
    manifest = _read(run)
    running = manifest is not None and _running(manifest)
    st.fragment(_panel, run_every=EVERY_S if running else None)(run, running)


def _read(run: Run) -> dict[str, Any] | None:
    from linkqa_core.scale.manifest import run_manifest

    try:
        return run_manifest(run.config, run.id)
    except LinkQAError as err:
        return {"error": str(err)}


def _running(manifest: Mapping[str, Any]) -> bool:
    return any(isinstance(v, Mapping) and v.get("state") == "running" for v in manifest.values())


def _panel(run: Run, was_running: bool) -> None:
    manifest = _read(run) or {}
    storage = ui.plain(run.config.get("backend", {}).get("storage", ""))
    st.subheader("On the cluster")
    if "error" in manifest:
        st.error(ui.plain(manifest["error"]))
        return
    if not manifest:
        st.info(f"Run {run.id} ran on Ray with storage {storage}, but no progress is recorded there yet.")
        return
    age = time.time() - float(manifest.get("updated_at") or 0)
    status = manifest.get("status", "")
    st.caption(ui.plain(f"Storage {storage}/run-{run.id} · status {status or 'running'} · updated "
                        f"{_ago(age)}"))
    stage = manifest.get("synthesis")
    if isinstance(stage, Mapping):
        _stage(stage, age)
    gates = manifest.get("gates")
    if isinstance(gates, Mapping) and isinstance(gates.get("rejected"), Mapping):
        rejected = {k: int(v) for k, v in gates["rejected"].items() if int(v)}
        st.markdown(ui.plain(f"Gates on Ray: {int(gates.get('items') or 0):,} items, "
                             + (", ".join(f"{k} {v:,}" for k, v in rejected.items()) or "none rejected")))
    if was_running and not _running(manifest):
        st.rerun()  # the job ended: the run's status and items above are stale, and polling can stop


def _stage(entry: Mapping[str, Any], age: float) -> None:
    asked, done = int(entry.get("asked") or 0), int(entry.get("done") or 0)
    state = str(entry.get("state", ""))
    if asked:
        st.progress(min(done / asked, 1.0), text=f"synthesis {state}: {done:,} of {asked:,} requests done")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Done", f"{done:,} / {asked:,}" if asked else f"{done:,}")
    c2.metric("In flight", f"{int(entry.get('in_flight') or 0):,}")
    c3.metric("Failed", f"{int(entry.get('failed') or 0):,}")
    c4.metric("Tokens", f"{int(entry.get('tokens') or 0):,}",
              help=f"{int(entry.get('requests') or 0):,} requests, {int(entry.get('cached') or 0):,} answered "
                   "from the shared cache")
    if entry.get("budget_reached"):
        st.warning("The token budget is reached: the job sends no more requests.")
    if state == "running" and age > STALE_S:
        st.warning(f"The job has not reported for {_ago(age)}: its driver may have stopped. Nothing written is "
                   "lost; the same synthesize command with --backend ray resumes it.")


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 0):.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"
