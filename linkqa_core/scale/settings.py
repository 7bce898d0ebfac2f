"""Where and how a stage runs past one machine: the ``[backend]`` table and its CLI flags.

>>> ScaleSettings.from_dict({"kind": "ray", "address": "local", "storage": "/tmp/linkqa-scale"}).actors
2
>>> ScaleSettings.from_dict({"kind": "local"}).is_ray
False
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from ..errors import ConfigError

__all__ = ["ScaleSettings", "BACKENDS"]

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class ScaleSettings:
    """The knobs of the Ray backend; the same names in ``[backend]``, on the command line
    (``--backend``, ``--address``, ``--storage``, ``--actors``...) and in the run's config.

    ``address``: ``"local"`` starts a Ray instance in this process (``ray.init`` with
    ``num_cpus``); ``"auto"`` joins the cluster this machine belongs to; ``"ray://host:10001"``
    connects a Ray client. ``storage``: a folder every node can read and write (a shared
    mount) or an object-store URI that :mod:`pyarrow.fs` understands (``s3://bucket/prefix``).

    ``actors`` model actors each keep up to ``concurrency`` requests in flight (so the
    cluster keeps ``actors x concurrency``), spread over the endpoints in ``OPENAI_BASE_URL``.
    ``batch_size`` rows go to an actor at a time; an actor writes each finished batch at once,
    so a crash loses at most the batches in flight. ``import_limit``: a run with more items
    than this imports a stratified review sample of that size into SQLite (the rest stays
    in Parquet, and a full export reads it).
    """

    kind: str = "local"
    address: str = "local"
    storage: str = ""
    actors: int = 2
    concurrency: int = 64
    batch_size: int = 32
    actor_cpus: float = 1.0
    num_cpus: int | None = None
    import_limit: int = 200_000
    ship_code: bool = True
    timeout_s: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in BACKENDS:
            raise ConfigError(f"backend kind must be one of {', '.join(BACKENDS)}, not {self.kind!r}")
        if self.kind == "ray" and not str(self.storage).strip():
            raise ConfigError("the ray backend needs storage: a folder every node can reach or an object-store URI "
                              "(--storage DIR or [backend] storage = ...)")
        if not self.address or not isinstance(self.address, str):
            raise ConfigError("backend address must be 'local', 'auto' or ray://host:port")
        for name, lo in (("actors", 1), ("concurrency", 1), ("batch_size", 1), ("import_limit", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ConfigError(f"backend {name} must be a whole number of at least {lo}, got {value!r}")
        if not 0 < float(self.actor_cpus) <= 64:
            raise ConfigError(f"backend actor_cpus must be above 0, got {self.actor_cpus!r}")
        if self.num_cpus is not None and (not isinstance(self.num_cpus, int) or self.num_cpus < 1):
            raise ConfigError(f"backend num_cpus must be a whole number of at least 1, got {self.num_cpus!r}")
        if self.timeout_s < 0:
            raise ConfigError(f"backend timeout_s must be 0 (none) or more, got {self.timeout_s!r}")

    @property
    def is_ray(self) -> bool:
        return self.kind == "ray"

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> "ScaleSettings":
        """From a ``[backend]`` table or CLI values; unknown names are an error, ``None`` values are left out."""
        values = {k: v for k, v in (values or {}).items() if v is not None}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown backend setting {unknown[0]!r}; settings are {', '.join(sorted(known))}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """What the run's config records (no credentials: storage URIs are stored without them)."""
        d = asdict(self)
        d["storage"] = _display_storage(self.storage)
        return d


def _display_storage(uri: str) -> str:
    """A storage URI without user:password@ or query (object-store keys never reach the run config)."""
    import urllib.parse

    if "://" not in uri:
        return uri
    parts = urllib.parse.urlsplit(uri)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))
