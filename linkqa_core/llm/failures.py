"""What a failed request means, and how to say it in one line.

Servers answer errors in many shapes -- OpenAI's ``{"error": {"message": ...}}``, vLLM's
object with an integer code, ``{"error": "..."}`` (Ollama, proxies), FastAPI's
``{"detail": ...}`` (a string or a validation list), plain text, an nginx HTML page.
:func:`error_line` turns any of them into one readable line. :func:`classify` decides
what the client does about it:

=============  ===========================================================================
``RETRY``      408/409/425/429/5xx, a dropped connection, a time-out, a body that is not
               JSON: wait (``Retry-After`` or back-off) and try again
``MODE``       400/422/500 refusing the ``response_format`` sent (llama-cpp-python's 500
               "Input should be 'text' or 'json_object'", DeepSeek's 400 "This
               response_format type is unavailable now"): the endpoint moves one
               structured-output mode down and the request goes again, uncharged
``ITEM``       another 4xx (400 context length, 413 too large, 422): that request fails;
               the batch goes on
``BATCH``      401/403/404, or a 400 saying the model does not exist (DeepSeek's "Model
               Not Exist"): every request would fail the same way, so the batch stops
=============  ===========================================================================

>>> classify(500, "Input should be 'text' or 'json_object' (body, response_format, type)", structured=True)
<Failure.MODE: 'mode'>
>>> error_line(502, None, "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>")
'502 Bad Gateway'
"""

from __future__ import annotations

import enum
import html
import json
import re
from typing import Any, Optional

from ..errors import LLMError

__all__ = ["Failure", "EndpointDown", "classify", "error_line", "hint", "RETRY_STATUSES", "BATCH_STATUSES", "MAX_LINE"]

RETRY_STATUSES = frozenset({408, 409, 425, 429})
BATCH_STATUSES = frozenset({401, 403, 404})
MODE_STATUSES = frozenset({400, 422, 500})
MAX_LINE = 300


class Failure(enum.Enum):
    RETRY = "retry"
    MODE = "mode"
    ITEM = "item"
    BATCH = "batch"


_NAMES_FORMAT = re.compile(r"response_format|json_schema|json_object|structured output|guided_json", re.I)
_NOT_OFFERED = re.compile(r"not (?:be )?supported|unsupported|unavailable|not available", re.I)
# a refusal naming another request field is about that field, not the output format
_OTHER_FIELD = re.compile(r"\b(?:temperature|max_tokens|max_completion_tokens|top_p|seed|tools?|stream|logprobs|"
                          r"reasoning_effort|stop|presence_penalty|frequency_penalty)\b", re.I)
_MODEL_MISSING = re.compile(r"model[^.]{0,80}?(?:not exist|does not exist|not found|unknown)|unknown model|"
                            r"model_not_found|no such model", re.I)


def classify(status: Optional[int], message: str, *, structured: bool) -> Failure:
    """What to do about a failed request. ``status`` ``None`` is a transport failure;
    ``structured`` says whether the request carried a ``response_format``."""
    if status is None:
        return Failure.RETRY
    if status in BATCH_STATUSES or (status == 400 and _MODEL_MISSING.search(message or "")):
        return Failure.BATCH
    if structured and status in MODE_STATUSES and _refuses_format(message or ""):
        return Failure.MODE
    if status in RETRY_STATUSES or status >= 500:
        return Failure.RETRY
    return Failure.ITEM


def _refuses_format(message: str) -> bool:
    if _NAMES_FORMAT.search(message):
        return True
    return bool(_NOT_OFFERED.search(message)) and not _OTHER_FIELD.search(message)


def _detail_text(detail: Any) -> str:
    """FastAPI's ``detail``: a string, or a list of validation errors ``{loc, msg}``."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for d in detail:
            if isinstance(d, dict):
                loc = ".".join(str(x) for x in d.get("loc") or ())
                parts.append(f"{loc}: {d.get('msg')}" if loc else str(d.get("msg")))
            else:
                parts.append(str(d))
        return "; ".join(parts)
    return json.dumps(detail, ensure_ascii=False, default=str) if detail is not None else ""


def _from_json(body: Any) -> str:
    if isinstance(body, str):
        return body
    if not isinstance(body, dict):
        return ""
    inner = body.get("error")
    if isinstance(inner, dict):
        text = inner.get("message") or inner.get("msg") or inner.get("detail")
        if text:
            return text if isinstance(text, str) else _detail_text(text)
        return json.dumps(inner, ensure_ascii=False, default=str)
    if isinstance(inner, str) and inner:
        return inner
    for key in ("message", "detail", "msg"):
        if body.get(key):
            return _detail_text(body[key])
    return ""


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.S | re.I)
_H1 = re.compile(r"<h1[^>]*>(.*?)</h1>", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")


def _from_text(text: str) -> str:
    text = text.strip()
    if not text:
        return ""
    if text[:1] in "{[":
        try:
            return _from_json(json.loads(text)) or text
        except ValueError:
            pass
    if "<" in text and ">" in text:
        for pattern in (_TITLE, _H1):
            m = pattern.search(text)
            if m and _TAG.sub("", m.group(1)).strip():
                return html.unescape(_TAG.sub("", m.group(1)))
        return html.unescape(_TAG.sub(" ", text))
    return text


def error_line(status: Optional[int], body: Any, text: str = "") -> str:
    """One readable line (at most :data:`MAX_LINE` characters) from an error response:
    ``body`` is the parsed JSON if any, ``text`` the raw body."""
    message = _from_json(body) if body is not None else ""
    if not message:
        message = _from_text(text or "")
    line = " ".join(str(message).split())
    if not line:
        line = f"HTTP {status}" if status else "no message"
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


def hint(status: Optional[int], message: str, model: Any) -> str:
    """What a curator should check after a refusal that stops the batch or the item."""
    if status == 401:
        return "check the API key (OPENAI_API_KEY)"
    if status == 403:
        return "the key has no access to this model or endpoint"
    if status == 404 or (status == 400 and _MODEL_MISSING.search(message or "")):
        return f"model {model!r} or the path is unknown there; check LINKQA_MODEL and OPENAI_BASE_URL"
    if status == 413:
        return "the request is too large for the endpoint"
    if status == 400 and re.search(r"context|too long|maximum.*tokens", message or "", re.I):
        return "the prompt is too long for the model's context"
    if status == 400:
        return "the endpoint rejected the request as malformed"
    if status == 422:
        return "the endpoint could not process the request"
    return "the endpoint refused the request"



class EndpointDown(LLMError):
    """Every endpoint failed ``outage_after`` requests in a row after all their retries:
    nothing more is sent, and the work not done stays to be done on the next start."""
