"""A plain stage for the model actors: one prompt per row in, the model's answer per row out.

For batch prompting over a Parquet table (``prompt_uid``, ``prompt``) and for measuring the
Ray path itself (``benchmarks/scale.py``): the same actors, limiter, cache and shards as
synthesis, with nothing stage-specific in the way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import pyarrow as pa

from ..tasks import Outcome

__all__ = ["PromptTask", "PromptStage", "PROMPT_RESULT_SCHEMA"]

PROMPT_RESULT_SCHEMA = pa.schema([("uid", pa.int64()), ("status", pa.string()), ("content", pa.string()),
                                  ("error", pa.string()), ("prompt_tokens", pa.int64()),
                                  ("completion_tokens", pa.int64()), ("cached", pa.bool_())])


class PromptTask:
    """A :class:`~linkqa_core.tasks.ModelTask` that asks the prompt as it is and keeps the answer's text."""

    name = "prompt"
    schema = {"name": "answer", "schema": {"type": "object"}}

    def __init__(self, model: str | None = None, max_tokens: int | None = None):
        self.model = model
        self.max_tokens = max_tokens

    def request(self, prompt: str) -> Any:
        from ..llm.client import ChatRequest

        return ChatRequest.user(prompt, stage=self.name, model=self.model, max_tokens=self.max_tokens)

    def parse(self, prompt: str, result: Any) -> str:
        return result.content


@dataclass(frozen=True)
class PromptStage:
    model: str | None = None
    max_tokens: int | None = None
    name: str = "prompt"

    def task(self) -> PromptTask:
        return PromptTask(self.model, self.max_tokens)

    def inputs(self, table: pa.Table) -> list[tuple[Any, Any]]:
        return list(zip(table.column("prompt_uid").to_pylist(), table.column("prompt").to_pylist()))

    def summary(self, key: Any, prompt: str) -> int:
        return int(key)

    def rows(self, key: int, prompt: str, o: Outcome[str], model: str) -> list[tuple]:
        r = o.result
        return [(int(key), "failed" if o.error else "ok", o.value if not o.error else o.raw, o.error,
                 int(r.prompt_tokens or 0) if r else 0, int(r.completion_tokens or 0) if r else 0,
                 bool(r.cached) if r else False)]

    def table(self, rows: Sequence[tuple]) -> pa.Table:
        cols = list(zip(*rows)) if rows else [[] for _ in PROMPT_RESULT_SCHEMA]
        return pa.table({f.name: list(c) for f, c in zip(PROMPT_RESULT_SCHEMA, cols)}, schema=PROMPT_RESULT_SCHEMA)

