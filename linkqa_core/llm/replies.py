"""Reading a model's reply: the completion body, its thinking, and the JSON in its text.

:func:`read_completion` takes a chat completion body as servers really send it --
``content`` as a string or a list of text parts, the thinking in ``reasoning_content``
(DeepSeek, llama.cpp), ``reasoning`` (vLLM, Ollama) or ``<think>`` tags, ``usage`` present
or not -- and gives one :class:`Completion` whose text can always be stored: lone UTF-16
surrogates become U+FFFD and NUL characters are dropped (SQLite and UTF-8 take neither
well, and one bad answer must not abort a batch).

:func:`loads_lenient` is the ONE lenient JSON parser every stage uses. Models asked for
JSON answer with the JSON alone, or wrap it: in a ```json fence, after a sentence of
prose, after a ``<think>`` section, or with the fence's language tag in capitals. It
tries the whole text, then every fenced block, then the longest JSON object or array
that starts at one of its braces, and says what was wrong when none parses.

>>> loads_lenient('Sure! Here it is:\\n```json\\n{"a": 1}\\n```')
{'a': 1}
>>> split_reasoning("<think>2+2 is 4</think> Four.")
('Four.', '2+2 is 4')
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ..tasks import ReplyError

__all__ = ["loads_lenient", "strip_think", "split_reasoning", "clean_text", "read_completion", "Completion",
           "BadBody"]

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.S)
_SURROGATE = re.compile("[\ud800-\udfff]")


class BadBody(ValueError):
    """A 200 response whose body is not a chat completion (retried like a dropped connection)."""


def clean_text(text: Any) -> str:
    """``text`` as a string that UTF-8 and SQLite can store: lone surrogates -> U+FFFD, no NUL."""
    if text is None:
        return ""
    text = text if isinstance(text, str) else str(text)
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATE.sub("\ufffd", text)
    return text


_LEADING_THINK = re.compile(r"\s*<think>(.*?)</think>", re.S | re.I)
_OPEN_THINK = re.compile(r"\s*<think>", re.I)
_JSONISH = re.compile(r"[{\[]")


def _think_parts(text: str) -> tuple[list[str], str]:
    """The thinking a reply starts with, and the rest.

    Only *leading* thinking counts -- ``<think>...</think>`` blocks at the start, an
    unclosed leading ``<think>`` (output cut at ``max_tokens``), or a bare ``</think>``
    with no JSON before it (templates that put the opening tag in the prompt) -- so that a
    ``</think>`` inside the JSON's own strings is left alone.
    """
    parts: list[str] = []
    while (m := _LEADING_THINK.match(text)) is not None:
        parts.append(m.group(1).strip())
        text = text[m.end():]
    opened = _OPEN_THINK.match(text)
    if opened is not None:  # opened, never closed (a closed one was taken above): all of it is thinking
        return parts + [text[opened.end():].strip()], ""
    lower = text.lower()
    j = lower.find("</think>")
    if j >= 0 and "<think>" not in lower[:j] and not _JSONISH.search(text[:j]):  # closed, never opened
        parts.append(text[:j].strip())
        text = text[j + len("</think>"):]
    return parts, text


def strip_think(text: str) -> str:
    """``text`` without the thinking it starts with (see :func:`split_reasoning`)."""
    return _think_parts(text)[1]


def split_reasoning(content: Optional[str], reasoning: Optional[str] = None) -> tuple[str, Optional[str]]:
    """Separate a reasoning model's thinking from its answer.

    Handles a separate ``reasoning`` field, leading ``<think>...</think>`` blocks, an
    unclosed leading ``<think>`` (output cut at ``max_tokens``) and a bare ``</think>``
    (templates that put the opening tag in the prompt); a tag inside the answer's own
    text stays.
    """
    parts = [reasoning.strip()] if reasoning and reasoning.strip() else []
    text = content or ""
    if "think>" in text.lower():
        found, text = _think_parts(text)
        parts += found
        text = text.strip()
    joined = "\n\n".join(p for p in parts if p)
    return text, (joined or None)


@dataclass(frozen=True)
class Completion:
    """One chat completion as read: text, thinking, why it ended, what it cost (``None``: not said)."""

    content: str
    reasoning: Optional[str]
    finish_reason: Optional[str]
    model: Optional[str]
    prompt_tokens: Optional[int]
    completion_tokens: Optional[int]
    reasoning_tokens: int


def _text_of(content: Any) -> Optional[str]:
    if isinstance(content, list):  # content parts
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return content if isinstance(content, str) or content is None else str(content)


def _count(value: Any) -> Optional[int]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        return None
    return int(value)


def read_completion(data: Any) -> Completion:
    """A :class:`Completion` from a chat completion body; :class:`BadBody` when it is not one."""
    if not isinstance(data, Mapping):
        raise BadBody("invalid response body (not a JSON object)")
    choices = data.get("choices")
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], Mapping):
        raise BadBody("invalid response body (no choices)")
    choice = choices[0]
    message = choice.get("message")
    message = message if isinstance(message, Mapping) else {}
    field = message.get("reasoning_content") or message.get("reasoning")
    content, reasoning = split_reasoning(clean_text(_text_of(message.get("content"))),
                                         clean_text(field) if isinstance(field, str) else None)
    usage = data.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    details = usage.get("completion_tokens_details")
    reasoning_tokens = _count(details.get("reasoning_tokens")) if isinstance(details, Mapping) else None
    model = data.get("model")
    finish = choice.get("finish_reason")
    return Completion(
        content=content,
        reasoning=reasoning,
        finish_reason=finish if isinstance(finish, str) else None,
        model=clean_text(model) if isinstance(model, str) and model else None,
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
        reasoning_tokens=reasoning_tokens or 0,
    )


def loads_lenient(text: str | None) -> Any:
    """The JSON value in a reply, or :class:`~linkqa_core.tasks.ReplyError` saying why there is none."""
    text = strip_think(text or "").strip()
    if not text:
        raise ReplyError("empty answer")
    candidates = [text] + [m.group(1).strip() for m in _FENCE.finditer(text)]
    first: str | None = None
    for cand in candidates:
        try:
            return _cleaned(json.loads(cand), cand)
        except RecursionError:
            raise ReplyError("the JSON is nested too deeply") from None
        except ValueError as err:  # JSONDecodeError, or a number too long to convert
            first = first or _why(err)
    found = _scan(text)
    if found is not _NOTHING:
        try:
            return _cleaned(found, text)
        except RecursionError:
            raise ReplyError("the JSON is nested too deeply") from None
    raise ReplyError(f"not JSON ({first})")


_ESCAPED_UNSTORABLE = re.compile(r"\\u(?:[dD][89a-fA-F]|0000)")


def _cleaned(value: Any, source: str) -> Any:
    """``value`` with every string storable (JSON escapes can decode to a lone surrogate or NUL)."""
    if not _ESCAPED_UNSTORABLE.search(source):
        return value
    return _clean_tree(value)


def _clean_tree(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [_clean_tree(v) for v in value]
    if isinstance(value, dict):
        return {clean_text(k): _clean_tree(v) for k, v in value.items()}
    return value


_NOTHING = object()
_DECODER = json.JSONDecoder()
_MAX_STARTS = 200  # a reply with more brace positions than this is not worth scanning further


def _why(err: ValueError) -> str:
    if isinstance(err, json.JSONDecodeError):
        return f"{err.msg} at line {err.lineno} column {err.colno}"
    return str(err).split(":")[0]


def _scan(text: str) -> Any:
    """The longest JSON object or array that starts at some brace of ``text`` (prose with
    braces of its own before the JSON defeats the outermost-span guess)."""
    best, best_len = _NOTHING, 0
    starts = [m.start() for m in re.finditer(r"[{\[]", text)][:_MAX_STARTS]
    for i in starts:
        if len(text) - i <= best_len:
            break
        try:
            value, end = _DECODER.raw_decode(text, i)
        except RecursionError:
            raise ReplyError("the JSON is nested too deeply") from None
        except ValueError:
            continue
        if end - i > best_len:
            best, best_len = value, end - i
    return best
