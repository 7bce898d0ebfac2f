"""Where and how to call the model (:class:`LLMSettings`), and the one loader that reads them.

Every entry point -- the command line, the pipeline, the studio -- builds its settings
with :func:`load_settings`, which reads up to four sources; a later one wins:

1. ``.streamlit/secrets.toml`` (a mapping: top-level keys or an ``[llm]`` / ``[openai]`` table),
2. the environment (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``LINKQA_MODEL``, and
   ``LINKQA_<SETTING>`` for any other setting, e.g. ``LINKQA_STRUCTURED_OUTPUT``),
3. the pipeline config's ``[llm]`` table (never a key: :mod:`linkqa_core.pipeline` refuses one),
4. command-line flags (or the studio's widgets).

The environment wins over the secrets file because a shell's setting is the more
deliberate one (a file on disk is a default); a run's config and a flag are more
deliberate still. Every setting has one name, the field name below, in all four places
(upper-cased with ``LINKQA_`` in the environment).

>>> load_settings(env={"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1", "LINKQA_MODEL": "qwen"},
...               flags={"concurrency": 32}).concurrency
32
"""

from __future__ import annotations

import os
import tomllib
import urllib.parse
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from ..errors import ConfigError
from .scrub import display_url, mask_url

__all__ = [
    "LLMSettings",
    "load_settings",
    "gather_settings",
    "read_secrets_file",
    "settings_from_mapping",
    "STRUCTURED_OUTPUT",
    "MODES",
    "DEFAULT_BASE_URL",
    "SOURCES",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
MODES = ("json_schema", "json_object_schema", "json_object", "prompt")
"""Structured-output modes, strongest first (see :mod:`linkqa_core.llm.modes`)."""
STRUCTURED_OUTPUT = ("auto",) + MODES
SOURCES = ("secrets.toml", "environment", "pipeline config", "command line")
DEFAULT_SECRETS_FILE = Path(".streamlit") / "secrets.toml"


def _split_urls(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(u).strip().rstrip("/") for u in items if u and str(u).strip())


def check_url(url: str) -> None:
    """Refuse a base URL that cannot work, with one message that never shows a credential."""
    shown = mask_url(url)
    if any(c.isspace() for c in url):
        raise ConfigError(f"base URL {shown!r} contains a space")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise ConfigError(f"base URL {shown!r} is not a usable URL ({_why(err)}); expected e.g. "
                          "http://127.0.0.1:8000/v1") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"base URL {shown!r} must start with http:// or https:// (expected e.g. "
                          "http://127.0.0.1:8000/v1)")
    if not parts.hostname:
        raise ConfigError(f"base URL {shown!r} names no host (expected e.g. http://127.0.0.1:8000/v1)")
    if port == 0:
        raise ConfigError(f"base URL {shown!r}: port must be 1-65535")


def _why(err: ValueError) -> str:
    text = str(err)
    return "port must be 1-65535" if "port" in text.lower() else "malformed"


@dataclass(frozen=True)
class LLMSettings:
    """Where and how to call the model. ``repr`` never shows ``api_key``.

    ``base_urls`` takes one URL, a comma-separated string or a sequence; requests are
    spread over them. Prices are USD per million tokens and only feed cost estimates and
    ``budget_usd``. ``temperature`` / ``max_tokens`` are defaults a request may override.
    ``structured_output`` is ``auto`` (settle per endpoint on the strongest mode it
    accepts) or one mode of :data:`MODES` to force. ``outage_after`` requests failing in a
    row after all their retries mean the endpoint is down: the batch stops.
    """

    base_urls: tuple[str, ...] = ()
    api_key: Optional[str] = field(default=None, repr=False)
    model: str = ""
    concurrency: int = 16
    rpm: Optional[int] = None
    tpm: Optional[int] = None
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    temperature: Optional[float] = None
    max_tokens: Optional[int] = None
    price_in_per_mtok: float = 0.0
    price_out_per_mtok: float = 0.0
    budget_tokens: Optional[int] = None
    budget_usd: Optional[float] = None
    fast_http: bool = True
    structured_output: str = "auto"
    outage_after: int = 8

    def __post_init__(self) -> None:
        urls = _split_urls(self.base_urls)  # type: ignore[arg-type]
        if not urls and self.api_key:
            urls = (DEFAULT_BASE_URL,)
        object.__setattr__(self, "base_urls", urls)
        for url in urls:
            check_url(url)
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.max_retries < 0:
            raise ConfigError(f"max_retries must be 0 or more, got {self.max_retries}")
        if self.timeout_s <= 0:
            raise ConfigError(f"timeout_s must be positive, got {self.timeout_s}")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ConfigError("backoff_base_s and backoff_max_s must be 0 or more")
        if self.outage_after < 1:
            raise ConfigError(f"outage_after must be at least 1, got {self.outage_after}")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive or unset, got {value}")
        for name in ("budget_tokens", "budget_usd", "price_in_per_mtok", "price_out_per_mtok"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name} must be 0 or more, got {value}")
        if self.budget_usd is not None and not (self.price_in_per_mtok or self.price_out_per_mtok):
            raise ConfigError("budget_usd needs price_in_per_mtok and price_out_per_mtok")
        mode = str(self.structured_output).strip().lower()
        if mode not in STRUCTURED_OUTPUT:
            raise ConfigError(f"structured_output must be one of {', '.join(STRUCTURED_OUTPUT)}, got "
                              f"{self.structured_output!r}")
        object.__setattr__(self, "structured_output", mode)

    def __repr__(self) -> str:
        """Every setting but the key, URLs with their credentials masked.

        >>> LLMSettings(base_urls="http://u:pw@127.0.0.1:8000/v1", model="qwen")  # doctest: +ELLIPSIS
        LLMSettings(base_urls=('http://***:***@127.0.0.1:8000/v1',), model='qwen', concurrency=16, ...)
        """
        parts = [f"base_urls={tuple(mask_url(u) for u in self.base_urls)!r}"]
        parts += [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name not in ("base_urls", "api_key")]
        return f"LLMSettings({', '.join(parts)})"

    @property
    def base_url(self) -> Optional[str]:
        """The first endpoint, or ``None``."""
        return self.base_urls[0] if self.base_urls else None

    @property
    def configured(self) -> bool:
        """True when there is somewhere to send requests and a model to ask."""
        return bool(self.base_urls or self.api_key) and bool(self.model)

    @classmethod
    def from_env(cls, **overrides: Any) -> "LLMSettings":
        """The environment, with keyword overrides (``None`` ones ignored, so unset
        command-line options pass straight through); see :func:`load_settings`."""
        return load_settings(flags=overrides, secrets={})

    def public_dict(self) -> dict[str, Any]:
        """The settings without the key, URLs without credentials: safe to store or show."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "api_key"}
        out["base_urls"] = [display_url(u) for u in self.base_urls]
        out["api_key_set"] = bool(self.api_key)
        return out


# -- the loader -------------------------------------------------------------------------------

_FIELDS = {f.name for f in fields(LLMSettings)}
_ALIASES = {"openai_base_url": "base_urls", "base_url": "base_urls", "url": "base_urls",
            "openai_api_key": "api_key", "key": "api_key", "linkqa_model": "model"}
_ENV_NAMES = {"openai_base_url": "base_urls", "openai_api_key": "api_key"}
_INT = {"concurrency", "rpm", "tpm", "max_retries", "max_tokens", "budget_tokens", "outage_after"}
_FLOAT = {"timeout_s", "backoff_base_s", "backoff_max_s", "temperature", "price_in_per_mtok", "price_out_per_mtok",
          "budget_usd"}
_BOOL = {"fast_http"}
_ENV_PREFIX = "linkqa_"


def _field_of(raw: str, *, env: bool) -> Optional[str]:
    """The setting a source's key names, or ``None`` (not an LLM setting).

    The environment: ``OPENAI_BASE_URL``, ``OPENAI_API_KEY`` and ``LINKQA_<SETTING>``.
    A mapping: those names too, the setting names and the short aliases (``base_url``, ``key``...).
    """
    name = raw.strip().lower()
    if name in _ENV_NAMES:
        return _ENV_NAMES[name]
    if name.startswith(_ENV_PREFIX) and name[len(_ENV_PREFIX):] in _FIELDS:
        return name[len(_ENV_PREFIX):]
    if env:
        return None
    if name in _ALIASES:
        return _ALIASES[name]
    return name if name in _FIELDS else None


def _coerce(name: str, value: Any, where: str, raw: str) -> Any:
    try:
        if name in _INT:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(str(value).strip().replace("_", "")) if isinstance(value, str) else int(value)
        if name in _FLOAT:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if name in _BOOL:
            if isinstance(value, str):
                return value.strip().lower() not in {"0", "false", "no", "off", ""}
            return bool(value)
    except (TypeError, ValueError):
        kind = "a whole number" if name in _INT else "a number"
        raise ConfigError(f"LLM setting {raw!r} ({where}) must be {kind}, got {value!r}") from None
    if name == "base_urls":
        return value if isinstance(value, (str, list, tuple)) else str(value)
    return str(value).strip() if isinstance(value, str) else value


def _flatten(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level scalar keys, plus those of an ``[llm]`` or ``[openai]`` table (top level wins)."""
    flat: dict[str, Any] = {}
    for section in ("openai", "llm"):
        inner = mapping.get(section) if hasattr(mapping, "get") else None
        if inner is not None and hasattr(inner, "items"):
            flat.update({str(k): v for k, v in inner.items()})
    flat.update({str(k): v for k, v in mapping.items() if not hasattr(v, "items")})
    return flat


def gather_settings(
    *,
    env: Mapping[str, str] | None = None,
    secrets: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The raw values by setting name and where each came from (one of :data:`SOURCES`).

    ``env=None`` reads ``os.environ``; ``secrets=None`` reads ``.streamlit/secrets.toml``
    under the working directory if there is one. Unknown keys in ``config`` or ``flags``
    are a :class:`ConfigError` (a typo must not be ignored); other keys of the secrets
    file and the environment are not LLM settings and are skipped. Empty values and
    ``None`` count as unset.
    """
    env = os.environ if env is None else env
    secrets = read_secrets_file() if secrets is None else secrets
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    sources = (("secrets.toml", _flatten(secrets or {}), False, False),
               ("environment", dict(env), True, False),
               ("pipeline config", dict(config or {}), False, True),
               ("command line", dict(flags or {}), False, True))
    for where, mapping, is_env, strict in sources:
        for raw, value in mapping.items():
            name = _field_of(str(raw), env=is_env)
            if name is None:
                if strict:
                    raise ConfigError(f"unknown LLM setting {raw!r} ({where}); known: {', '.join(sorted(_FIELDS))}")
                continue
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            values[name] = _coerce(name, value, where, str(raw))
            origin[name] = where
    return values, origin


def load_settings(
    *,
    env: Mapping[str, str] | None = None,
    secrets: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> LLMSettings:
    """The settings from every source, later ones winning (see the module docstring).

    A value that cannot work is a :class:`ConfigError` naming the setting and its source.
    """
    values, origin = gather_settings(env=env, secrets=secrets, config=config, flags=flags)
    try:
        return LLMSettings(**values)
    except ConfigError as err:
        text = str(err)
        name = "base_urls" if text.startswith("base URL") else text.split(" ", 1)[0]
        if name not in origin:
            raise
        label = "OPENAI_BASE_URL" if name == "base_urls" else name
        raise ConfigError(f"{text} ({label}, from the {origin[name]})") from None


def read_secrets_file(path: str | Path | None = None) -> dict[str, Any]:
    """The secrets file as a mapping (``{}`` when there is none); a broken one is a clear error."""
    file = Path(path) if path is not None else DEFAULT_SECRETS_FILE
    if not file.is_file():
        return {}
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{file}: cannot read it as TOML ({err})") from None


def settings_from_mapping(d: Mapping[str, Any] | None, *, env: bool = True) -> LLMSettings:
    """Settings from a mapping such as ``st.secrets`` (and the environment unless
    ``env=False``); the same precedence as :func:`load_settings`."""
    return load_settings(env=None if env else {}, secrets=d or {})
