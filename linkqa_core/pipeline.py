"""One unattended run from a TOML file: ingest → extract → graph → sample → synthesize →
enhance → gates → export. Started again after a crash it picks up where it stopped: ingest
is idempotent (content ids), extraction runs only when seeds lack KPs, the sample run is
found again by the hash of its settings, and synthesis resumes item by item.

Example ``pipeline.toml``::

    [ingest]
    files = ["seeds.jsonl"]        # or: sample = true
    [sample]
    paths = 200
    seed = 1
    w_cov = 2.0
    mix = { Mathematics = 0.5, Physics = 0.5 }
    [llm]                          # optional; the key comes from OPENAI_API_KEY only
    model = "deepseek-reasoner"
    concurrency = 32
    structured_output = "auto"     # or json_schema, json_object_schema, json_object, prompt
    [synthesize]
    per_bundle = 2
    items = 300
    [enhance]
    targets = "default=3:0.3,4:0.4,5:0.3"
    [gates]
    reference = "benchmark.jsonl"
    [export]
    out = "out/run.jsonl"
    [backend]                      # optional: the model stages and the gates on Ray (docs/scale.md)
    kind = "ray"
    address = "auto"
    storage = "/mnt/shared/linkqa"
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any, Callable

from .errors import ConfigError, InputError
from .store import Store

__all__ = ["run_from_config", "load_config", "llm_settings_for", "resume_command"]

SECTIONS = {"ingest", "extract", "sample", "llm", "synthesize", "enhance", "gates", "export", "backend"}
_SECRET_KEYS = {"api_key", "key", "openai_api_key", "token", "password"}


def load_config(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read it ({err})") from err
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"{path}: not valid TOML ({err})") from err
    unknown = set(data) - SECTIONS
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {sorted(unknown)}; known: {sorted(SECTIONS)}")
    for section, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
        secret = _SECRET_KEYS & {k.lower() for k in values}
        if secret:
            raise ConfigError(f"{path}: [{section}] holds {sorted(secret)[0]}: keys belong in the environment "
                              "(OPENAI_API_KEY) or .streamlit/secrets.toml, never in a run config")
    return data


def _resolve(base: Path, p: str) -> Path:
    q = Path(p)
    return q if q.is_absolute() else (base / q)


def run_from_config(store: Store, path: Path, *, progress: Callable[[int, int, str], None] | None = None,
                    flags: dict[str, Any] | None = None) -> dict:
    """Run every section of the config at ``path``. ``flags`` are command-line LLM settings
    (they win over the config's ``[llm]`` table, see :func:`~linkqa_core.llm.settings.load_settings`)."""
    from .graph.sampling import sample
    from .ingest.load import ingest, sample_path
    from .synthesis.run import DEFAULT_TEMPLATE, SynthesisConfig
    from .graph.walks import WalkParams

    from .scale import dispatch
    from .scale.settings import ScaleSettings

    cfg = load_config(path)
    base = Path(path).resolve().parent
    report: dict[str, Any] = {}
    scale = ScaleSettings.from_dict(cfg.get("backend"))

    ing = cfg.get("ingest", {})
    files = [sample_path()] if ing.get("sample") else [_resolve(base, f) for f in ing.get("files", [])]
    if not files and not store.seeds.count():
        raise ConfigError(f"{path}: [ingest] names no files (files = [...] or sample = true) and the database is empty")
    report["ingest"] = []
    for f in files:
        r = ingest(store, f, mapping=ing.get("map"), progress=progress)
        report["ingest"].append({"file": str(f), "added": r.added, "duplicates": r.duplicates,
                                 "bad_rows": len(r.bad_rows)})

    missing = store.seeds.count_without_kps()
    ext_cfg = cfg.get("extract", {})
    extractor = None
    settings = llm_settings_for(cfg, flags)
    if ext_cfg.get("extractor", "offline") == "llm":
        from .kps.llm import LLMExtractor

        if settings is None:
            raise ConfigError(f"{path}: [extract] extractor = \"llm\" needs an endpoint and a model "
                              "(OPENAI_BASE_URL, LINKQA_MODEL) and [llm] offline unset")
        extractor = LLMExtractor(settings, store=store, batch_size=int(ext_cfg.get("batch_size", 8)),
                                 fallback=bool(ext_cfg.get("fallback", True)))
    if missing:
        e = dispatch.extract(store, extractor, scale, settings=settings, progress=progress,
                             batch_size=int(ext_cfg.get("batch_size", 8)))
        report["extract"] = {"seeds": e.seeds, "kps": e.kps, "extractor": e.extractor, "by_path": e.by_path,
                             "failed": len(e.failed)}
    else:
        report["extract"] = {"skipped": "every seed already has KPs"}

    s_cfg = dict(cfg.get("sample", {}))
    n_paths = int(s_cfg.pop("paths", 100))
    seed = int(s_cfg.pop("seed", 0))
    name = s_cfg.pop("name", None)
    ledger = s_cfg.pop("ledger", "fresh")
    params = WalkParams.from_dict(s_cfg)
    key = hashlib.sha256(json.dumps([params.to_dict(), n_paths, seed, ledger, str(path)], sort_keys=True)
                         .encode()).hexdigest()[:16]
    found = store.runs.find("pipeline", key)
    if found is not None:
        run_id = found
        report["sample"] = {"run_id": run_id, "resumed": True}
    else:
        result = sample(store, params, n_paths, seed=seed, ledger=ledger, save=True, name=name, progress=progress)
        run_id = result.run_id
        store.runs.update(run_id, config={**store.runs.get(run_id).config, "pipeline": key})
        report["sample"] = {"run_id": run_id, "kp_coverage": result.metrics["kp_coverage"],
                            "baseline_kp_coverage": result.baseline["kp_coverage"]}

    if "synthesize" in cfg:
        sy = cfg["synthesize"]
        template = _resolve(base, sy["template_file"]).read_text(encoding="utf-8") if sy.get("template_file") \
            else DEFAULT_TEMPLATE
        scfg = SynthesisConfig(per_bundle=int(sy.get("per_bundle", 2)), target_items=sy.get("items"),
                               template=template, multiple_choice=bool(sy.get("multiple_choice", True)))
        r = dispatch.synthesize(store, run_id, scfg, settings, scale, progress=progress)
        report["synthesize"] = {"items": r.items_ok, "failed": r.items_failed, "model": r.model,
                                "requests": r.requests, "cached": r.cached, "stopped": r.stopped,
                                "tokens": r.prompt_tokens + r.completion_tokens,
                                "estimated_calls": r.estimated_calls}
    if "enhance" in cfg:
        from .difficulty.enhance import DifficultyTargets

        en = cfg["enhance"]
        targets = DifficultyTargets.parse(en["targets"]) if en.get("targets") else DifficultyTargets()
        r = dispatch.enhance(store, run_id, targets, settings, scale, max_rounds=int(en.get("max_rounds", 2)),
                             progress=progress)
        report["enhance"] = r.to_dict() if hasattr(r, "to_dict") else dict(r.__dict__)
    if "gates" in cfg:
        from .quality.checks import GateConfig

        g = cfg["gates"]
        gcfg = GateConfig.from_dict({k: v for k, v in g.items() if k != "reference"})
        report["gates"] = dispatch.gates(store, run_id, gcfg, scale,
                                         reference=_resolve(base, g["reference"]) if g.get("reference") else None)
    if "export" in cfg:
        from .curation.export import export_run

        ex = cfg["export"]
        report["export"] = export_run(store, run_id, _resolve(base, ex.get("out", f"run{run_id}.jsonl")),
                                      fmt=ex.get("format", "records"), status=ex.get("status", "accepted"))
    report["run_id"] = run_id
    return report


def llm_settings_for(cfg: dict[str, Any], flags: dict[str, Any] | None = None) -> Any:
    """The run's LLM settings: environment and secrets file, the config's ``[llm]`` table,
    then ``flags``; ``None`` when offline (``offline = true`` or no endpoint and model)."""
    from .llm.settings import load_settings

    llm = dict(cfg.get("llm", {}))
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    offline = bool(flags.pop("offline", False)) | bool(llm.pop("offline", False))
    if offline:
        return None
    settings = load_settings(config=llm, flags=flags)
    return settings if settings.configured else None


def resume_command(store: Store, run_id: int) -> str | None:
    """The command that finishes a run a killed process left unfinished, or ``None``.

    ``synthesize`` and ``enhance`` take their settings (budgets included) from the run's
    stored config when no option is given, so the command is short.
    """
    work = store.runs.interrupted_work(run_id)
    if work == "synthesizing":
        return f"python -m linkqa_core synthesize --run {run_id}"
    if work == "enhancing":
        return f"python -m linkqa_core enhance --run {run_id}"
    return None
