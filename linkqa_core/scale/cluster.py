"""Joining a Ray cluster (or starting one in this process) for the length of a stage.

Ray is imported here and only here, when a stage is asked to run on it, so the studio and
every local command start as light as without the extra installed.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import ConfigError
from .settings import ScaleSettings

__all__ = ["require_ray", "connect", "NAMESPACE"]

NAMESPACE = "linkqa"
_PACKAGE = Path(__file__).resolve().parents[1]


def require_ray():
    """The ``ray`` module, or one line saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the backend needs Ray Data, not only Ray core
    except ImportError:
        raise ConfigError("the ray backend needs Ray: pip install -r requirements-ray.txt "
                          "(or pip install 'linkqa-studio[ray]')") from None
    return ray


def _quiet(ray) -> None:
    """Ray Data's progress lines and tips stay out of the command's output (the CLI draws its own)."""
    import logging
    import warnings

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    for name in ("ray.data", "ray.data._internal"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"ray\.data\..*")


@contextmanager
def connect(scale: ScaleSettings) -> Iterator[object]:
    """Ray, initialised for ``scale`` (left as it was if this process had already joined one).

    ``ship_code`` sends this ``linkqa_core`` to the workers (``runtime_env.py_modules``),
    so a cluster needs only the packages of requirements-ray.txt, not this checkout.
    """
    ray = require_ray()
    _quiet(ray)
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict = {"namespace": NAMESPACE, "include_dashboard": False, "log_to_driver": False,
                    "configure_logging": True, "logging_level": "WARNING"}
    if scale.ship_code:
        kwargs["runtime_env"] = {"py_modules": [str(_PACKAGE)], "excludes": ["__pycache__", "*.pyc"]}
    try:
        if scale.address == "local":
            ray.init(num_cpus=scale.num_cpus or max(os.cpu_count() or 1, scale.actors + 1), **kwargs)
        else:
            ray.init(address=scale.address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ConfigError(f"cannot join the Ray cluster at {scale.address!r}: {' '.join(str(err).split())[:300]}") \
            from None
    try:
        yield ray
    finally:
        ray.shutdown()
