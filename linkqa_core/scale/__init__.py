"""Past one machine: the model stages and the gates on a Ray cluster, over Parquet.

Optional: ``pip install -r requirements-ray.txt``. Nothing here imports Ray until a stage is
asked to run on it, so the studio and the local commands start as light as without it.

- :mod:`.settings` -- the ``[backend]`` knobs (:class:`ScaleSettings`);
- :mod:`.storage` -- the run's folder on a shared mount or an object store, atomic shards;
- :mod:`.tables` -- records as Parquet rows, and the stable ids that make stages idempotent;
- :mod:`.bundles` -- walks stay on one machine; paths, bundles and seeds go to Parquet;
- :mod:`.limiter` -- one rate limit and one budget for the whole cluster (a named actor);
- :mod:`.cache` -- the request cache every node shares;
- :mod:`.actors` -- the async model actor: a stage's task, many requests in flight;
- :mod:`.synthesis` -- diffusion synthesis as a Ray Data pipeline;
- :mod:`.dedup` -- the quality gates at scale (MinHash map, LSH group-by, components);
- :mod:`.importer`, :mod:`.export` -- results back into SQLite; the full export from Parquet;
- :mod:`.manifest` -- the manifest, and :func:`progress` for the CLI and the studio.

See ``docs/scale.md``.
"""

from __future__ import annotations

from typing import Any

from .settings import BACKENDS, ScaleSettings

__all__ = ["progress", "ScaleSettings", "BACKENDS"]


def progress(storage: str) -> dict[str, Any]:
    """The manifest of a run's storage folder, or of every run under a storage root (see :mod:`.manifest`).

    >>> progress("/nonexistent/linkqa-storage")
    {}
    """
    from .manifest import progress as read

    return read(storage)
