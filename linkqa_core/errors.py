"""Exceptions whose messages are meant for a curator, not a traceback reader."""

from __future__ import annotations

__all__ = [
    "LinkQAError",
    "InputError",
    "ConfigError",
    "NotFoundError",
    "LLMError",
    "BudgetExceeded",
    "DatabaseBusy",
    "DamagedDatabase",
    "LeaseHeld",
]


class LinkQAError(Exception):
    """Base class: the CLI and the app show ``str(err)`` and nothing else."""


class InputError(LinkQAError):
    """A file, row or value the curator supplied cannot be used."""


class ConfigError(LinkQAError):
    """A setting is out of range or inconsistent with another one."""


class NotFoundError(LinkQAError):
    """A run, KP or item that was asked for does not exist."""


class LLMError(LinkQAError):
    """A model endpoint failed in a way retries could not fix."""


class BudgetExceeded(LinkQAError):
    """The token or money budget of a run is spent; the run stops cleanly."""


class DatabaseBusy(LinkQAError):
    """Another process holds the database's write lock for longer than the busy time-out."""


class DamagedDatabase(LinkQAError):
    """The database file is damaged: refused for writing, readable only where SQLite can."""


class LeaseHeld(LinkQAError):
    """Another live process is already doing this work (a run's synthesis, say)."""
