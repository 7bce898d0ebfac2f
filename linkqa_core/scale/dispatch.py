"""One call per stage that runs it where ``[backend]`` says: here, or on a Ray cluster.

The command line and the pipeline call these instead of the stage functions, so choosing
the backend is one setting, not a second code path in every caller. With no backend (or
``kind = "local"``) each is exactly the local stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..store import Store
from .settings import ScaleSettings

__all__ = ["synthesize", "enhance", "gates", "extract", "on_ray"]

Progress = Callable[[int, int, str], None]


def on_ray(scale: ScaleSettings | None) -> bool:
    return scale is not None and scale.is_ray


def synthesize(store: Store, run_id: int, cfg: Any, settings: Any, scale: ScaleSettings | None, *,
               progress: Progress | None = None) -> Any:
    if not on_ray(scale):
        from ..synthesis.run import synthesize as local

        return local(store, run_id, cfg, settings, progress=progress)
    from .synthesis import synthesize_on_ray

    return synthesize_on_ray(store, run_id, cfg, settings, scale, progress=progress)  # type: ignore[arg-type]


def gates(store: Store, run_id: int, cfg: Any, scale: ScaleSettings | None, *,
          reference: str | Path | None = None) -> dict[str, int]:
    if not on_ray(scale):
        from ..quality.gates import apply_gates
        from ..quality.reference import load_reference

        ref = load_reference(reference, decontam_ngram=cfg.decontam_ngram) if reference else None
        return apply_gates(store, run_id, reference=ref, cfg=cfg)
    from .gates import gates_on_ray

    return gates_on_ray(store, run_id, cfg, scale, reference=reference)  # type: ignore[arg-type]


def _cluster_client(settings: Any, scale: ScaleSettings, name: str) -> Any:
    from ..errors import ConfigError
    from .client import ClusterClient
    from .storage import open_storage

    if settings is None or not getattr(settings, "configured", False):
        raise ConfigError("the ray backend runs model stages: set OPENAI_BASE_URL and LINKQA_MODEL")
    return ClusterClient(settings, scale, open_storage(scale.storage), name=name)


def enhance(store: Store, run_id: int, targets: Any, settings: Any, scale: ScaleSettings | None, *,
            max_rounds: int = 2, progress: Progress | None = None) -> Any:
    from ..difficulty.enhance import enhance as local

    if not on_ray(scale):
        return local(store, run_id, targets, settings, max_rounds=max_rounds, progress=progress)
    from .cluster import connect

    with connect(scale):  # type: ignore[arg-type]
        with _cluster_client(settings, scale, f"enhance-run{run_id}") as client:  # type: ignore[arg-type]
            return local(store, run_id, targets, settings, max_rounds=max_rounds, progress=progress, client=client)


def extract(store: Store, extractor: Any, scale: ScaleSettings | None, *, settings: Any = None, batch_size: int = 8,
            only_missing: bool = False, progress: Progress | None = None) -> Any:
    """``extractor`` is the local one to use (None: offline); on Ray the LLM extractor's calls go to the cluster."""
    from ..kps.extract import run_extraction

    if not on_ray(scale):
        return run_extraction(store, extractor, only_missing=only_missing, progress=progress)
    from ..kps.llm import LLMExtractor
    from .cluster import connect

    with connect(scale):  # type: ignore[arg-type]
        with _cluster_client(settings, scale, "extract") as client:  # type: ignore[arg-type]
            return run_extraction(store, LLMExtractor(settings, batch_size=batch_size, client=client),
                                  only_missing=only_missing, progress=progress)
