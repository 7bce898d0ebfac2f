"""Reading JSON out of a model's reply: the one lenient parser every stage uses.

Models asked for JSON answer with the JSON alone, or wrap it: in a ```json fence, after a
sentence of prose, after a ``<think>`` section, or with the fence's language tag in
capitals. :func:`loads_lenient` tries the whole text, then every fenced block, then the
outermost ``{...}`` and ``[...]`` spans, and says what was wrong when none parses.

>>> loads_lenient('Sure! Here it is:\\n```json\\n{"a": 1}\\n```')
{'a': 1}
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..tasks import ReplyError

__all__ = ["loads_lenient", "strip_think"]

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.S)
_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)


def strip_think(text: str) -> str:
    """``text`` without ``<think>…</think>`` sections (and without an unclosed leading one's tag)."""
    text = _THINK.sub("", text)
    j = text.lower().find("</think>")
    if j >= 0:  # closed, never opened: the opening tag was in the prompt template
        text = text[j + len("</think>"):]
    return text


def loads_lenient(text: str | None) -> Any:
    """The JSON value in a reply, or :class:`~linkqa_core.tasks.ReplyError` saying why there is none."""
    text = strip_think(text or "").strip()
    if not text:
        raise ReplyError("empty answer")
    candidates = [text] + [m.group(1).strip() for m in _FENCE.finditer(text)]
    for open_, close in (("{", "}"), ("[", "]")):
        start, end = text.find(open_), text.rfind(close)
        if 0 <= start < end:
            candidates.append(text[start:end + 1])
    first: json.JSONDecodeError | None = None
    for cand in candidates:
        try:
            return json.loads(cand)
        except json.JSONDecodeError as err:
            first = first or err
        except RecursionError:
            raise ReplyError("the JSON is nested too deeply") from None
    assert first is not None
    raise ReplyError(f"not JSON ({first.msg} at line {first.lineno} column {first.colno})")
