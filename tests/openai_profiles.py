"""Server profiles: the fake OpenAI server behaving as a given real server does.

A profile decides what a real server refuses before any generation (a ``response_format``
it does not support, a prompt without the word "json", an unknown model, an over-long
prompt, a wrong key) and how it reshapes the model's answer (prose around the JSON, a
``<think>`` block, ``reasoning_content``, blank JSON-mode content), plus its wire habits.
Each class says which documentation or source it follows. Used as::

    FakeOpenAI(profile="llama_cpp")
    FakeOpenAI(profile=HostedReasoning(blank_every=3))

Profiles: ``strict`` (OpenAI-like, accepts every format; the default), ``llama_cpp``,
``hosted_reasoning`` (DeepSeek-R1-like API), ``prose`` (local servers that ignore
``response_format``), ``vllm``, ``ollama``.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from dataclasses import replace
from typing import Any, Optional

from openai_specs import Answer, HTTPError, Wire, last_user_text, prompt_text, response_format_type

__all__ = ["Profile", "Strict", "LlamaCpp", "HostedReasoning", "Prose", "VLLM", "Ollama", "PROFILES", "make_profile"]


def _json_or_none(text: Optional[str]) -> Any:
    if text is None or not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _gist(body: Any, limit: int = 120) -> str:
    """The first sentence of the last user message, for synthesized reasoning."""
    text = " ".join(last_user_text(body).split())
    first = re.split(r"(?<=[.?!:])\s", text, maxsplit=1)[0]
    return first if len(first) <= limit else first[: limit - 1] + "…"


class Profile:
    """``strict``: OpenAI's own Chat Completions behaviour, and today's fake server.

    Accepts ``response_format`` ``text``, ``json_object`` and ``json_schema``; refuses any
    other type with OpenAI's 400 ``invalid_value``. A wrong key gets 401 quoting the key
    sent ("Incorrect API key provided: sk-...") as OpenAI does. With ``check_model`` an
    unknown model gets OpenAI's 404 ``model_not_found``; with ``context_length`` an
    over-long request gets 400 ``context_length_exceeded`` with OpenAI's message.
    Answers are sent as given.
    """

    name = "strict"
    formats = frozenset({"text", "json_object", "json_schema"})
    wire = Wire()
    owned_by = "fake"
    checks_key = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers = 0

    def fresh(self) -> "Profile":
        """A copy with its own counters, for one server."""
        new = copy.copy(self)
        new._lock = threading.Lock()
        new._answers = 0
        return new

    def _next(self) -> int:
        with self._lock:
            self._answers += 1
            return self._answers

    def __repr__(self) -> str:
        return f"<profile {self.name}>"

    # -- refusals before any generation ----------------------------------------------------

    def refuse(self, body: dict, raw: bytes) -> Optional[HTTPError]:
        """The refusal of a request this server will not run, or ``None``."""
        kind = response_format_type(body)
        if kind is not None and kind not in self.formats:
            return self.bad_format(kind, body, raw)
        return None

    def bad_format(self, kind: str, body: dict, raw: bytes) -> HTTPError:
        return HTTPError(400, f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', and "
                              "'text'.", type="invalid_request_error", code="invalid_value",
                         param="response_format.type")

    def auth_error(self, sent: str) -> HTTPError:
        return HTTPError(401, f"Incorrect API key provided: {sent}.", type="invalid_request_error",
                         code="invalid_api_key")

    def model_missing(self, model: str) -> Optional[HTTPError]:
        return HTTPError(404, f"The model `{model}` does not exist or you do not have access to it.",
                         type="invalid_request_error", code="model_not_found")

    def too_long(self, limit: int, prompt: int, completion: Optional[int]) -> Optional[HTTPError]:
        if prompt + (completion or 0) <= limit:
            return None
        if completion:
            message = (f"This model's maximum context length is {limit} tokens. However, you requested "
                       f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the completion). "
                       "Please reduce the length of the messages or completion.")
        else:
            message = (f"This model's maximum context length is {limit} tokens. However, your messages resulted in "
                       f"{prompt} tokens. Please reduce the length of the messages.")
        return HTTPError(400, message, type="invalid_request_error", code="context_length_exceeded", param="messages")

    # -- the answer ---------------------------------------------------------------------------

    def shape(self, answer: Answer, body: dict) -> Answer:
        """The answer as this server sends it."""
        return answer

    def success_headers(self, elapsed_s: float) -> list[tuple[str, str]]:
        return []

    def usage(self, prompt: int, completion: int, reasoning: int) -> dict:
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                "completion_tokens_details": {"reasoning_tokens": reasoning}}

    def model_card(self, model: str) -> dict:
        return {"id": model, "object": "model", "created": 0, "owned_by": self.owned_by}


Strict = Profile


class LlamaCpp(Profile):
    """``llama_cpp``: llama-cpp-python's server (``python -m llama_cpp.server``).

    - Its request model types ``response_format`` as ``ChatCompletionRequestResponseFormat``
      with ``type: Literal["text", "json_object"]`` and an optional ``schema``
      (llama_cpp/llama_types.py), so ``{"type": "json_object", "schema": {...}}`` and plain
      ``json_object`` are accepted and ``json_schema`` fails validation. Its
      ``RouteErrorHandler`` (llama_cpp/server/errors.py) catches that
      ``RequestValidationError`` like any exception and answers **500**
      ``{"error": {"message": str(exc), "type": "internal_server_error", "param": null,
      "code": null}}``; ``str(exc)`` is FastAPI's "1 validation error:" listing with
      ``'msg': "Input should be 'text' or 'json_object'"`` (fastapi/exceptions.py
      ``ValidationException.__str__``). Reported as ggml-org/llama.cpp issue #23463.
    - A wrong key: FastAPI's ``HTTPException(401, "Invalid API key")`` ->
      ``{"detail": "Invalid API key"}`` (llama_cpp/server/app.py ``authenticate``).
    - An unknown model name is served by the default model (``LlamaProxy.__call__``), so
      ``check_model`` has no effect.
    - A prompt at or over ``n_ctx`` -> 400 ``context_length_exceeded`` with the message
      of ``ErrorResponseFormatters.context_length_exceeded`` -- including its
      "None in the completion" when the request set no ``max_tokens``.
    - Successful answers carry ``openai-processing-ms``; bodies are compact JSON
      (Starlette ``JSONResponse``); ``/v1/models`` cards are ``owned_by: "me"``.
    """

    name = "llama_cpp"
    formats = frozenset({"text", "json_object"})
    wire = Wire(headers=(("server", "uvicorn"),))
    owned_by = "me"
    APP_FILE = "/usr/local/lib/python3.11/site-packages/llama_cpp/server/app.py"

    def bad_format(self, kind: str, body: dict, raw: bytes) -> HTTPError:
        detail = {"type": "literal_error", "loc": ("body", "response_format", "type"),
                  "msg": "Input should be 'text' or 'json_object'", "input": kind,
                  "ctx": {"expected": "'text' or 'json_object'"}}
        message = (f"1 validation error:\n  {detail!r}\n  File \"{self.APP_FILE}\", line 408, in create_chat_completion\n"
                   "    POST /v1/chat/completions")
        return HTTPError(500, message, type="internal_server_error", code=None, param=None)

    def auth_error(self, sent: str) -> HTTPError:
        return HTTPError(401, "Invalid API key", wire=Wire(error_style="detail"))

    def model_missing(self, model: str) -> Optional[HTTPError]:
        return None

    def too_long(self, limit: int, prompt: int, completion: Optional[int]) -> Optional[HTTPError]:
        if prompt < limit:
            return None
        message = (f"This model's maximum context length is {limit} tokens. However, you requested "
                   f"{(completion or 0) + prompt} tokens ({prompt} in the messages, {completion} in the completion). "
                   "Please reduce the length of the messages or completion.")
        return HTTPError(400, message, type="invalid_request_error", code="context_length_exceeded", param="messages")

    def success_headers(self, elapsed_s: float) -> list[tuple[str, str]]:
        return [("openai-processing-ms", str(int(elapsed_s * 1000)))]

    def usage(self, prompt: int, completion: int, reasoning: int) -> dict:
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def model_card(self, model: str) -> dict:
        return {"id": model, "object": "model", "owned_by": "me", "permissions": []}


class HostedReasoning(Profile):
    """``hosted_reasoning``: a DeepSeek-R1-like hosted API (DeepSeek's API docs).

    - JSON Output guide: set ``{"type": "json_object"}`` and "include the word json in
      the system or user prompt". ``json_schema`` is refused with 400 "This
      response_format type is unavailable now"; ``json_object`` without the word (any
      case) with 400 "Prompt must contain the word 'json' in some form to use
      'response_format' of type 'json_object'." (both as users report them: llm-exe
      issue #662, vercel/ai issue #7913). Any other type fails the body's deserialisation:
      422 "Failed to deserialize the JSON body into the target type: ...".
    - "If the model's output cannot be recognized as JSON, the API replaces the non-JSON
      content with spaces ... the returned content may contain only spaces (even when
      finish_reason is stop)": in JSON mode non-JSON content becomes spaces, and every
      ``blank_every``-th answer is blank (deterministic; 0 = never).
    - Reasoning model guide: the thinking comes back in ``message.reasoning_content``
      beside ``content`` (synthesized from the prompt when the answer has none), counted
      in ``usage.completion_tokens_details.reasoning_tokens``; usage also has
      ``prompt_cache_hit_tokens`` / ``prompt_cache_miss_tokens``.
    - Rate limit guide: under load a non-streaming request "continuously returns empty
      lines" until the answer is ready: head at once, chunked body, a blank line every
      ``keepalive`` seconds of waiting.
    - Errors (error codes guide, as seen in reports): unknown model -> 400 "Model Not
      Exist"; wrong key -> 401 "Authentication Fails, Your api key: ****abcd is invalid"
      (type ``authentication_error``), both with ``code: "invalid_request_error"``.
    """

    name = "hosted_reasoning"
    formats = frozenset({"text", "json_object"})
    owned_by = "deepseek"

    def __init__(self, blank_every: int = 5, keepalive: float = 0.05):
        super().__init__()
        if blank_every < 0:
            raise ValueError("blank_every must be 0 (never) or more")
        self.blank_every = blank_every
        self.wire = Wire(chunks=1, keepalive=keepalive, reasoning_field="reasoning_content",
                         headers=(("server", "elb"), ("x-ds-trace-id", "5f2a9c0e7d1b4e3a8c6f0b2d4e6a8c0e")))

    def refuse(self, body: dict, raw: bytes) -> Optional[HTTPError]:
        refused = super().refuse(body, raw)
        if refused is None and response_format_type(body) == "json_object" and "json" not in prompt_text(body).lower():
            return HTTPError(400, "Prompt must contain the word 'json' in some form to use 'response_format' of type "
                                  "'json_object'.", type="invalid_request_error", code="invalid_request_error")
        return refused

    def bad_format(self, kind: str, body: dict, raw: bytes) -> HTTPError:
        if kind == "json_schema":
            return HTTPError(400, "This response_format type is unavailable now", type="invalid_request_error",
                             code="invalid_request_error")
        needle = json.dumps(kind).encode()
        column = raw.find(needle) + len(needle) + 1 if needle in raw else 1
        return HTTPError(422, f"Failed to deserialize the JSON body into the target type: response_format.type: "
                              f"unknown variant `{kind}`, expected `text` or `json_object` at line 1 column {column}",
                         type="invalid_request_error", code="invalid_request_error")

    def auth_error(self, sent: str) -> HTTPError:
        return HTTPError(401, f"Authentication Fails, Your api key: ****{sent[-4:]} is invalid",
                         type="authentication_error", code="invalid_request_error")

    def model_missing(self, model: str) -> Optional[HTTPError]:
        return HTTPError(400, "Model Not Exist", type="invalid_request_error", code="invalid_request_error")

    def shape(self, answer: Answer, body: dict) -> Answer:
        n = self._next()
        changes: dict[str, Any] = {}
        reasoning = answer.reasoning_content or answer.reasoning
        if not reasoning:
            reasoning = f"The user asks: {_gist(body)} I will work through it, then answer in the requested format."
        changes["reasoning_content"], changes["reasoning"] = reasoning, None
        if not answer.reasoning_tokens:
            changes["reasoning_tokens"] = max(1, (len(reasoning) + 3) // 4)
        if response_format_type(body) == "json_object":
            content = answer.content or ""
            if _json_or_none(content) is None or (self.blank_every and n % self.blank_every == 0):
                changes["content"] = " " * max(1, len(content))
        return replace(answer, **changes)

    def usage(self, prompt: int, completion: int, reasoning: int) -> dict:
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": 0}, "prompt_cache_hit_tokens": 0,
                "prompt_cache_miss_tokens": prompt, "completion_tokens_details": {"reasoning_tokens": reasoning}}


PROSE_STYLES = ("preamble_fenced", "fenced", "think", "preamble")


class Prose(Profile):
    """``prose``: local servers that ignore ``response_format`` and chat around the JSON.

    Seen with llama.cpp's server returning free text for ``json_object`` and not enforcing
    ``json_schema`` (ggml-org/llama.cpp issues #24096, #24097), and with reasoning models
    served without a reasoning parser, whose ``<think>...</think>`` stays in ``content``
    (e.g. Ollama's deepseek-r1, RooCodeInc/Roo-Code issue #1087). Every format is
    accepted and none is enforced. An answer whose content is JSON goes out in one of
    ``styles``, in turn:

    - ``preamble_fenced``: a sentence, a ```json fenced block, a closing sentence;
    - ``fenced``: only the fenced block;
    - ``think``: a ``<think>`` section, then the fenced block;
    - ``preamble``: the bare (pretty-printed) JSON between two sentences.

    An answer's reasoning is put in a ``<think>`` section at the start of ``content``.
    Non-JSON content is left as it is.
    """

    name = "prose"
    formats = frozenset()  # everything accepted, nothing enforced

    def __init__(self, styles: tuple[str, ...] = PROSE_STYLES):
        super().__init__()
        unknown = set(styles) - set(PROSE_STYLES)
        if not styles or unknown:
            raise ValueError(f"styles must be some of {PROSE_STYLES}, got {styles!r}")
        self.styles = tuple(styles)

    def refuse(self, body: dict, raw: bytes) -> Optional[HTTPError]:
        return None

    def shape(self, answer: Answer, body: dict) -> Answer:
        n = self._next()
        data = _json_or_none(answer.content)
        reasoning = answer.reasoning_content or answer.reasoning
        if data is None:
            content = answer.content
            if reasoning:
                content = f"<think>\n{reasoning}\n</think>\n\n{content or ''}"
            return replace(answer, content=content, reasoning_content=None, reasoning=None)
        pretty = json.dumps(data, indent=2, ensure_ascii=False)
        fenced = f"```json\n{pretty}\n```"
        style = self.styles[(n - 1) % len(self.styles)]
        if style == "preamble_fenced":
            text = f"Sure! Here is the answer in the requested format:\n\n{fenced}\n\nLet me know if you need changes."
        elif style == "fenced":
            text = fenced
        elif style == "think":
            reasoning = reasoning or f"The task: {_gist(body)} Let me put the answer together as JSON."
            text = fenced
        else:
            text = f"Here is the JSON you asked for:\n\n{pretty}\n\nEach field follows the format you gave."
        if reasoning:
            text = f"<think>\n{reasoning}\n</think>\n\n{text}"
        return replace(answer, content=text, reasoning_content=None, reasoning=None)


class VLLM(Profile):
    """``vllm``: vLLM's OpenAI-compatible server.

    - ``ResponseFormat.type: Literal["text", "json_object", "json_schema"]``
      (vllm/entrypoints/openai/engine/protocol.py), enforced by structured outputs.
    - Errors are ``{"error": {"message", "type": "<ExceptionClass>", "param", "code":
      <status int>}}`` (``ErrorInfo``); a wrong key gets ``{"error": "Unauthorized"}``
      from its authentication middleware.
    - An unknown model: 404 "The model `x` does not exist." type ``NotFoundError``,
      ``param: "model"`` (``_check_model``).
    - An over-long request: 400 ``BadRequestError`` "This model's maximum context length
      is N tokens. However, you requested M output tokens and your prompt contains P
      input tokens, for a total of T tokens. ..." (vllm/renderers/params.py, 0.25).
    - Thinking goes in ``message.reasoning`` (``reasoning_content`` was renamed and then
      removed: vllm-project/vllm PRs #27752, #33402).
    """

    name = "vllm"
    wire = Wire(error_style="vllm", reasoning_field="reasoning", headers=(("server", "uvicorn"),))
    owned_by = "vllm"

    def bad_format(self, kind: str, body: dict, raw: bytes) -> HTTPError:
        return HTTPError(400, f"1 validation error for ChatCompletionRequest\nresponse_format.type\n  Input should be "
                              f"'text', 'json_object' or 'json_schema' [type=literal_error, input_value='{kind}', "
                              "input_type=str]", type="BadRequestError")

    def auth_error(self, sent: str) -> HTTPError:
        return HTTPError(401, "Unauthorized", wire=Wire(error_style="plain"))

    def model_missing(self, model: str) -> Optional[HTTPError]:
        return HTTPError(404, f"The model `{model}` does not exist.", type="NotFoundError", param="model")

    def too_long(self, limit: int, prompt: int, completion: Optional[int]) -> Optional[HTTPError]:
        out = completion or 0
        if prompt + out <= limit:
            return None
        return HTTPError(400, f"This model's maximum context length is {limit} tokens. However, you requested {out} "
                              f"output tokens and your prompt contains {prompt} input tokens, for a total of "
                              f"{prompt + out} tokens. Please reduce the length of the input prompt or the number of "
                              "requested output tokens.", type="BadRequestError", param="input_tokens")

    def usage(self, prompt: int, completion: int, reasoning: int) -> dict:
        return {"prompt_tokens": prompt, "total_tokens": prompt + completion, "completion_tokens": completion,
                "prompt_tokens_details": None}

    def model_card(self, model: str) -> dict:
        return {"id": model, "object": "model", "created": 0, "owned_by": "vllm", "root": model, "parent": None,
                "max_model_len": None, "permission": []}


class Ollama(Profile):
    """``ollama``: Ollama's ``/v1`` OpenAI compatibility (openai/openai.go, middleware/openai.go).

    - ``json_object`` becomes ``format: "json"``, ``json_schema`` its schema; ``text``
      is plain (``fromChatRequest``); any other type is ignored.
    - Errors from the native handlers are rewrapped by ``openai.NewError``:
      ``{"error": {"message", "type", "param": null, "code": null}}`` with type
      ``invalid_request_error`` (400), ``not_found_error`` (404) or ``api_error``.
    - An unknown model: 404 ``model "x" not found, try pulling it first``
      (server/routes.go). Ollama checks no key: ``api_key`` is ignored.
    - An over-long prompt is not refused: older messages are dropped until it fits
      ``num_ctx`` (server/prompt.go ``chatPrompt``), so ``context_length`` has no effect.
    - Thinking goes in ``message.reasoning``.
    """

    name = "ollama"
    wire = Wire(reasoning_field="reasoning")
    owned_by = "library"
    checks_key = False

    def refuse(self, body: dict, raw: bytes) -> Optional[HTTPError]:
        return None

    def model_missing(self, model: str) -> Optional[HTTPError]:
        return HTTPError(404, f'model "{model}" not found, try pulling it first', type="not_found_error")

    def too_long(self, limit: int, prompt: int, completion: Optional[int]) -> Optional[HTTPError]:
        return None

    def usage(self, prompt: int, completion: int, reasoning: int) -> dict:
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def model_card(self, model: str) -> dict:
        return {"id": model, "object": "model", "created": 0, "owned_by": "library"}


PROFILES: dict[str, type[Profile]] = {
    "strict": Strict, "llama_cpp": LlamaCpp, "hosted_reasoning": HostedReasoning, "prose": Prose,
    "vllm": VLLM, "ollama": Ollama,
}


def make_profile(profile: "str | Profile | None") -> Profile:
    """A fresh profile for one server from a name or a profile object."""
    if profile is None:
        return Strict()
    if isinstance(profile, str):
        try:
            return PROFILES[profile]()
        except KeyError:
            raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}") from None
    if isinstance(profile, Profile):
        return profile.fresh()
    raise TypeError(f"profile must be a name or a Profile, got {type(profile).__name__}")
