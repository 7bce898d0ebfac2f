"""The ``--backend`` option group of the model commands, kept apart from ``cli.py``.

``@backend_options`` adds ``--backend local|ray``, ``--address``, ``--storage``,
``--actors`` and ``--actor-concurrency`` and hands the command one ``scale`` argument (a
:class:`~.settings.ScaleSettings`, or ``None`` for the local backend). Defaults come from
``LINKQA_BACKEND``, ``LINKQA_RAY_ADDRESS`` and ``LINKQA_STORAGE``, so a cluster's machines
can set them once.
"""

from __future__ import annotations

import os
from functools import wraps
from typing import Any, Callable

import click

from .settings import BACKENDS, ScaleSettings

__all__ = ["backend_options", "scale_from_options"]


def scale_from_options(backend: str | None, address: str | None, storage: str | None, actors: int | None,
                       actor_concurrency: int | None) -> ScaleSettings | None:
    kind = backend or os.environ.get("LINKQA_BACKEND") or "local"
    if kind == "local":
        return None
    return ScaleSettings.from_dict({"kind": kind, "address": address or os.environ.get("LINKQA_RAY_ADDRESS"),
                                    "storage": storage or os.environ.get("LINKQA_STORAGE"), "actors": actors,
                                    "concurrency": actor_concurrency})


def backend_options(func: Callable) -> Callable:
    @click.option("--backend", type=click.Choice(BACKENDS), default=None,
                  help="where the model calls run: here (local, default) or on a Ray cluster (ray)")
    @click.option("--address", default=None, help="Ray cluster: auto, ray://host:10001 or local "
                                                  "(default $LINKQA_RAY_ADDRESS or local)")
    @click.option("--storage", default=None, help="folder every node reaches, or s3://bucket/prefix "
                                                  "(default $LINKQA_STORAGE)")
    @click.option("--actors", type=int, default=None, help="model actors on the cluster (default 2)")
    @click.option("--actor-concurrency", type=int, default=None, help="requests in flight per actor (default 64)")
    @wraps(func)
    def wrapper(*args: Any, backend: str | None, address: str | None, storage: str | None, actors: int | None,
                actor_concurrency: int | None, **kwargs: Any) -> Any:
        scale = scale_from_options(backend, address, storage, actors, actor_concurrency)
        return func(*args, scale=scale, **kwargs)

    return wrapper
