"""Keeping keys out of sight: the one scrubber for messages, logs and pages, and safe URLs.

A key can reach a message three ways: the API key itself (a server quoting it back,
OpenAI's "Incorrect API key provided: sk-..."), credentials written into the endpoint URL
(``http://user:pass@host/v1``, ``?api-key=...``, ``?key=...``), or anything that merely
looks like a key. :class:`Scrubber` removes all three; :func:`scrubber_for` builds the
one for a set of settings. :func:`display_url` is the form stored in the database and
written to logs (no credentials, no query); :func:`mask_url` is the form a page shows
(same shape as written, secrets replaced by ``***``).

>>> mask_url("https://me:hunter22@api.example.com/v1?api-key=abc123&api-version=2024")
'https://***:***@api.example.com/v1?api-key=***&api-version=2024'
>>> Scrubber(["hunter22"])("login hunter22 failed at http://me:hunter22@h/v1")
'login [redacted] failed at http://***@h/v1'
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.parse
from typing import Any, Iterable

__all__ = ["Scrubber", "scrubber_for", "display_url", "mask_url", "url_secrets", "is_secret_param", "REDACTED",
           "guard_logs"]

REDACTED = "[redacted]"
_SECRET_PARAM = re.compile(r"key|token|secret|passw|auth|sig|credential", re.I)
_TOKENISH = re.compile(r"\b(?:sk-[A-Za-z0-9_\-]{6,}|Bearer\s+[A-Za-z0-9._\-~+/=]{6,})")
_URL_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.\-]*://)[^/\s@?#]+@", re.I)
_URL_SECRET_QUERY = re.compile(r"([?&;][^=&#\s]*(?:key|token|secret|passw|auth|sig|credential)[^=&#\s]*=)[^&#\s]*", re.I)
_MIN_SECRET = 4  # shorter strings would scrub ordinary words


def is_secret_param(name: str) -> bool:
    """A query parameter whose value is a credential (``api-key``, ``key``, ``token``, ``sig``...)."""
    return bool(_SECRET_PARAM.search(name))


def _split(url: str) -> urllib.parse.SplitResult | None:
    try:
        return urllib.parse.urlsplit(url.strip())
    except ValueError:
        return None


def url_secrets(url: str) -> list[str]:
    """The credentials written into a URL: user, password, secret query values (raw and decoded)."""
    parts = _split(url)
    if parts is None:
        return []
    found: list[str] = []
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    if userinfo:
        user, _, password = userinfo.partition(":")
        found += [user, password, urllib.parse.unquote(user), urllib.parse.unquote(password)]
    for piece in parts.query.split("&"):
        name, sep, value = piece.partition("=")
        if sep and is_secret_param(urllib.parse.unquote_plus(name)):
            found += [value, urllib.parse.unquote_plus(value)]
    return [s for s in dict.fromkeys(found) if len(s) >= _MIN_SECRET]


def _host(parts: urllib.parse.SplitResult) -> str:
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host


def display_url(url: str) -> str:
    """A URL without ``user:password@``, query or fragment: what is logged and stored.

    >>> display_url("http://u:p@127.0.0.1:8000/v1?key=k")
    'http://127.0.0.1:8000/v1'
    """
    parts = _split(url)
    if parts is None or not parts.scheme:
        return "<invalid url>"
    return urllib.parse.urlunsplit((parts.scheme, _host(parts), parts.path.rstrip("/"), "", ""))


def mask_url(url: str) -> str:
    """The URL as written, with credentials replaced by ``***``: what a page shows."""
    parts = _split(url)
    if parts is None or not parts.scheme:
        return "<invalid url>"
    netloc = _host(parts)
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = ("***:***@" if ":" in userinfo else "***@") + netloc
    query = []
    for piece in parts.query.split("&") if parts.query else []:
        name, sep, _ = piece.partition("=")
        query.append(f"{name}=***" if sep and is_secret_param(urllib.parse.unquote_plus(name)) else piece)
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "&".join(query), ""))


class Scrubber:
    """Removes known secrets and anything key-like from text. Call it on every message
    that may hold what a server or a library said."""

    def __init__(self, secrets: Iterable[str | None] = ()):
        found = {s for s in secrets if s and len(s) >= _MIN_SECRET}
        self.secrets = tuple(sorted(found, key=len, reverse=True))  # longest first: no partial leftovers

    def __call__(self, text: Any) -> str:
        text = "" if text is None else str(text)
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _URL_USERINFO.sub(r"\1***@", text)
        text = _URL_SECRET_QUERY.sub(r"\1***", text)
        return _TOKENISH.sub(REDACTED, text)

    def __repr__(self) -> str:
        return f"<Scrubber of {len(self.secrets)} secret(s)>"


def scrubber_for(settings: Any) -> Scrubber:
    """The scrubber for a set of LLM settings: the key and every credential in the URLs."""
    secrets: list[str | None] = [getattr(settings, "api_key", None)]
    for url in getattr(settings, "base_urls", ()) or ():
        secrets += url_secrets(url)
    return Scrubber(secrets)


# -- the HTTP libraries' own logs -----------------------------------------------------------------

_LIBRARY_LOGGERS = ("httpx2", "httpx", "httpcore", "openai", "openai._base_client")
_LOG_SECRETS: set[str] = set()
_LOG_LOCK = threading.Lock()


class _LogScrubber(logging.Filter):
    """Scrubs the records of the HTTP libraries (httpx logs every request's URL, query included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = Scrubber(_LOG_SECRETS)(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


_FILTER = _LogScrubber()


def guard_logs(scrubber: Scrubber) -> None:
    """Make the HTTP libraries' log records pass through the scrubber (its secrets are
    remembered for the life of the process). Costs nothing while their logging is off."""
    with _LOG_LOCK:
        _LOG_SECRETS.update(scrubber.secrets)
        for name in _LIBRARY_LOGGERS:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
