"""The LLM ledger in the database: the request cache, the call log, settled output modes.

Nothing here ever holds a key: endpoints are stored as display URLs (no credentials,
no query) and error texts arrive scrubbed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from .database import Store

__all__ = ["LLMStore", "CallRow", "RunSpend"]

_CHUNK = 900


@dataclass(frozen=True)
class CallRow:
    """One logged call (a hit, a success or an error)."""

    run_id: int | None
    stage: str | None
    key: str
    endpoint: str | None
    model: str | None
    status: str  # ok / cached / error
    cached: bool
    attempts: int
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    latency_s: float
    error: str | None
    usd: float = 0.0
    estimated: bool = False  # token counts estimated from the text (no usage from the server)


@dataclass(frozen=True)
class RunSpend:
    """What a run's calls cost so far (from the call log)."""

    calls: int = 0
    cached: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    usd: float = 0.0
    estimated: int = 0

    @property
    def requests(self) -> int:
        return self.calls - self.cached

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class LLMStore:
    """``store.llm``: the ``llm_cache``, ``llm_calls`` and ``llm_modes`` tables."""

    def __init__(self, store: "Store"):
        self.store = store

    def cached(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Cached answers by request key (the stored JSON payloads); unreadable entries are skipped."""
        found: dict[str, dict[str, Any]] = {}
        keys = list(keys)
        for k in range(0, len(keys), _CHUNK):
            chunk = keys[k:k + _CHUNK]
            for row in self.store.query(f"SELECT key, response FROM llm_cache WHERE key IN ({','.join('?' * len(chunk))})",
                                        chunk):
                try:
                    data = json.loads(row[1])
                except ValueError:
                    continue
                if isinstance(data, dict):
                    found[row[0]] = data
        return found

    def record(self, calls: Sequence[CallRow], cache: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Log calls and cache complete answers, in one short transaction."""
        if not calls and not cache:
            return
        now = time.time()
        with self.store.transaction() as conn:
            if calls:
                conn.executemany(
                    "INSERT INTO llm_calls (run_id, stage, key, endpoint, model, status, cached, attempts,"
                    " prompt_tokens, completion_tokens, reasoning_tokens, latency_s, error, usd, estimated,"
                    " created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [(c.run_id, c.stage, c.key, c.endpoint, c.model, c.status, int(c.cached), c.attempts,
                      c.prompt_tokens, c.completion_tokens, c.reasoning_tokens, round(c.latency_s, 4), c.error,
                      c.usd, int(c.estimated), now) for c in calls],
                )
            if cache:
                conn.executemany("INSERT OR REPLACE INTO llm_cache (key, response, created_at) VALUES (?,?,?)",
                                 [(k, json.dumps(v, ensure_ascii=False), now) for k, v in cache])

    def forget(self, key: str) -> bool:
        """Drop a cached answer; True if there was one."""
        with self.store.transaction() as conn:
            return conn.execute("DELETE FROM llm_cache WHERE key = ?", (key,)).rowcount > 0

    def spend(self, run_id: int, stages: Sequence[str] | None = None) -> RunSpend:
        """What a run's calls (of ``stages``, or all) have cost so far: a restarted
        command's budget starts from here."""
        where, params = "run_id = ?", [run_id]
        if stages:
            where += f" AND stage IN ({','.join('?' * len(stages))})"
            params += list(stages)
        row = self.store.query(
            "SELECT count(*), coalesce(sum(cached), 0), coalesce(sum(status = 'error'), 0),"
            " coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),"
            " coalesce(sum(reasoning_tokens), 0), coalesce(sum(usd), 0.0), coalesce(sum(estimated), 0)"
            f" FROM llm_calls WHERE {where}", params)[0]
        return RunSpend(*(int(v) for v in tuple(row)[:6]), usd=float(row[6]), estimated=int(row[7]))

    def mode(self, endpoint: str, model: str) -> str | None:
        """The structured-output mode this endpoint settled on for this model, if known."""
        return self.store.scalar("SELECT mode FROM llm_modes WHERE endpoint = ? AND model = ?", (endpoint, model))

    def modes(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.store.query("SELECT * FROM llm_modes ORDER BY endpoint, model")]

    def set_mode(self, endpoint: str, model: str, mode: str, detail: str = "") -> None:
        with self.store.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO llm_modes (endpoint, model, mode, detail, updated_at)"
                         " VALUES (?, ?, ?, ?, ?)", (endpoint, model, mode, detail, time.time()))
