"""The command line: each command gathers arguments and calls one engine function.

``python -m linkqa_core --help`` lists the commands; every command takes ``--db`` and
``--json`` (one JSON object on stdout, for scripts). Every error is one line on stderr
("error: ...") with a non-zero exit, never a traceback; ``linkqa --debug COMMAND`` shows
the traceback of an unexpected one.

Over ~500 lines because it is the one list of commands and their options, each command
a thin function over one engine call; splitting it would scatter the ``--help`` a curator
reads top to bottom.
"""

from __future__ import annotations

import json
import sys
import time
from functools import wraps
from pathlib import Path
from typing import Any, Callable

import click

from . import __version__
from .errors import LinkQAError
from .scale.cli import backend_options  # the --backend option group (Ray: linkqa_core.scale)
from .store import Store, default_db_path

KNOB_FLAGS = ("w_pop", "w_cov", "w_diff", "alpha", "tau", "gamma", "min_len", "max_len", "difficulty_target")


class ProgressBar:
    """A one-line bar on stderr, drawn only once work has taken over a second."""

    def __init__(self, enabled: bool = True, width: int = 30):
        self.enabled = enabled
        self.width = width
        self.start = time.perf_counter()
        self.last = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int, message: str = "") -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.start < 1.0 or (now - self.last < 0.1 and done < total):
            return
        self.last = now
        frac = done / total if total else 1.0
        filled = int(self.width * frac)
        bar = "#" * filled + "-" * (self.width - filled)
        click.echo(f"\r[{bar}] {frac:6.1%} {message[:60]:<60}", err=True, nl=False)
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            click.echo("", err=True)


def _emit(as_json: bool, payload: dict[str, Any], text: str | Callable[[], str]) -> None:
    if as_json:
        click.echo(json.dumps(payload, ensure_ascii=False, default=str))
    else:
        click.echo(text() if callable(text) else text)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def common(func: Callable) -> Callable:
    """``--db``, ``--json`` and ``--quiet`` on every command; any error -> one line on stderr, exit 1."""

    @click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None,
                  help=f"SQLite database (default: $LINKQA_DB or {default_db_path()})")
    @click.option("--json", "as_json", is_flag=True, help="print one JSON object on stdout")
    @click.option("--quiet", "-q", is_flag=True, help="no progress bar")
    @wraps(func)
    def wrapper(db_path: str | None, as_json: bool, quiet: bool, **kwargs: Any) -> None:
        debug = bool((click.get_current_context().obj or {}).get("debug"))
        bar = ProgressBar(enabled=not quiet)
        store = None
        try:
            store = Store(db_path)
            func(store=store, as_json=as_json, progress=bar, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except LinkQAError as err:
            bar.close()
            click.echo(f"error: {_one_line(err)}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            bar.close()
            click.echo("interrupted: the database is as it was before the last unfinished step", err=True)
            sys.exit(130)
        except Exception as err:  # a bug: one line, the traceback only with --debug
            bar.close()
            if debug:
                raise
            click.echo(f"error: unexpected {type(err).__name__}: {_one_line(err)[:300]} "
                       "(run with linkqa --debug for the traceback)", err=True)
            sys.exit(1)
        finally:
            bar.close()
            if store is not None:
                store.close()

    return wrapper


def llm_settings(offline: bool = False, **flags: Any):
    """The LLM settings: secrets file, environment, then these flags (unset ones ignored,
    see :func:`linkqa_core.llm.settings.load_settings`); ``None`` means offline."""
    if offline:
        return None
    from .llm.settings import load_settings

    settings = load_settings(flags={k: v for k, v in flags.items() if v is not None})
    return settings if settings.configured else None


BUDGET_HELP = ("stop cleanly once this step's model calls on the run have spent this many {unit} (earlier, "
               "killed or stopped, commands of the step on the run count too; a resumed command keeps the "
               "run's budget); requests already in flight finish, so spending can pass it by at most "
               "--concurrency requests' worth")


def llm_options(func: Callable | None = None, *, budgets: bool = True, offline: bool = True) -> Callable:
    """The LLM flags; each has the setting's one name (``--structured-output`` is ``structured_output``,
    ``LINKQA_STRUCTURED_OUTPUT``, ``[llm] structured_output``)."""
    from .llm.settings import STRUCTURED_OUTPUT

    def wrap(f: Callable) -> Callable:
        opts = [
            click.option("--model", default=None, help="model name (default: $LINKQA_MODEL)"),
            click.option("--concurrency", type=int, default=None, help="requests in flight (default 16)"),
            click.option("--structured-output", type=click.Choice(STRUCTURED_OUTPUT), default=None,
                         help="how JSON is asked for: auto settles per endpoint on the strongest mode it accepts "
                              "(default: $LINKQA_STRUCTURED_OUTPUT or auto)"),
        ]
        if budgets:
            opts += [
                click.option("--budget-tokens", type=int, default=None,
                             help=BUDGET_HELP.format(unit="tokens")),
                click.option("--budget-usd", type=float, default=None,
                             help=BUDGET_HELP.format(unit="US dollars (needs LINKQA_PRICE_IN_PER_MTOK and "
                                                     "LINKQA_PRICE_OUT_PER_MTOK)")),
            ]
        if offline:
            opts.append(click.option("--offline", is_flag=True, help="work offline even if an endpoint is set"))
        for opt in reversed(opts):
            f = opt(f)
        return f

    return wrap(func) if func is not None else wrap


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="linkqa")
@click.option("--debug", is_flag=True, help="show the traceback of an unexpected error")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """LinkQA Studio engine: seeds -> knowledge points -> KP graph -> value-guided paths."""
    ctx.obj = {"debug": debug}


@main.command()
@click.argument("file", type=click.Path(dir_okay=False), required=False)
@click.option("--sample", "use_sample", is_flag=True, help="ingest the bundled MMLU sample")
@click.option("--map", "mapping", multiple=True, metavar="FIELD=COLUMN",
              help="column for a field (question, answer, options, subject, discipline, difficulty, source)")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "json", "csv", "parquet"]), default=None,
              help="file format (default: from the extension or the content)")
@click.option("--discipline-map", type=click.Path(exists=True, dir_okay=False), default=None,
              help='JSON file {"subject": "Discipline"} overriding the built-in taxonomy')
@click.option("--parallel/--no-parallel", default=None,
              help="parse in child processes while inserting (default: for JSON-lines files of 8 MB or more)")
@common
def ingest(store: Store, as_json: bool, progress: ProgressBar, file: str | None, use_sample: bool,
           mapping: tuple[str, ...], fmt: str | None, discipline_map: str | None, parallel: bool | None) -> None:
    """Load seed QA from FILE (JSONL, JSON, CSV, Parquet); bad rows are listed, the rest load."""
    from .ingest.load import ingest as ingest_file, sample_path
    from .taxonomy import load_discipline_map

    if use_sample == bool(file):
        raise click.UsageError("give a FILE or --sample (not both)")
    source = sample_path() if use_sample else file
    fields = {}
    for item in mapping:
        if "=" not in item:
            raise click.UsageError(f"--map '{item}' is not FIELD=COLUMN")
        key, _, col = item.partition("=")
        fields[key.strip()] = col.strip()
    overrides = load_discipline_map(discipline_map) if discipline_map else None
    report = ingest_file(store, source, mapping=fields or None, format=fmt, discipline_map=overrides,
                         progress=progress, parallel=parallel)
    payload = {
        "added": report.added,
        "duplicates": report.duplicates,
        "total_seeds": report.total_seeds,
        "rows_read": report.rows_read,
        "bad_rows": [{"line": b.line, "reason": b.reason} for b in report.bad_rows],
    }

    def text() -> str:
        lines = [f"added {report.added:,} seeds ({report.duplicates:,} already stored); "
                 f"{report.total_seeds:,} seeds in {store.path}"]
        if report.bad_rows:
            lines.append(f"{len(report.bad_rows):,} rows could not be used:")
            lines += [f"  line {b.line}: {b.reason}" for b in report.bad_rows[:50]]
            if len(report.bad_rows) > 50:
                lines.append(f"  … and {len(report.bad_rows) - 50:,} more (use --json for all)")
        return "\n".join(lines)

    _emit(as_json, payload, text)


@main.command()
@click.option("--extractor", type=click.Choice(["offline", "llm"]), default="offline", show_default=True)
@click.option("--only-missing", is_flag=True, help="only seeds that have no KPs yet")
@click.option("--batch-size", default=8, show_default=True, help="seeds per LLM request")
@click.option("--fallback/--no-fallback", default=True, show_default=True,
              help="seeds the model cannot answer get the offline extractor's KPs (so the graph has no holes)")
@llm_options(budgets=False, offline=False)
@common
@backend_options
def extract(store: Store, as_json: bool, progress: ProgressBar, extractor: str, only_missing: bool,
            batch_size: int, fallback: bool, scale: Any = None, **llm: Any) -> None:
    """Name 2–8 knowledge points for each seed and link seeds to them."""

    chosen = None
    if extractor == "llm":
        from .kps.llm import LLMExtractor

        settings = llm_settings(**llm)
        if settings is None:
            raise click.UsageError("--extractor llm needs an endpoint and a model: set OPENAI_BASE_URL and "
                                   "LINKQA_MODEL (or --model)")
        chosen = LLMExtractor(settings, store=store, batch_size=batch_size, fallback=fallback)
    t = time.perf_counter()
    from .scale import dispatch

    report = dispatch.extract(store, chosen, scale, settings=getattr(chosen, "settings", None), batch_size=batch_size,
                              only_missing=only_missing, progress=progress)
    payload = {"seeds": report.seeds, "kps": report.kps, "extractor": report.extractor,
               "failed": [{"line": b.line, "reason": b.reason} for b in report.failed],
               "by_path": report.by_path, "quality": report.quality,
               "seconds": round(time.perf_counter() - t, 3)}

    def text() -> str:
        lines = [f"{report.extractor} extractor: {report.seeds:,} seeds linked to {report.kps:,} KPs"]
        q = report.quality or {}
        if q:
            lines.append(f"KPs named by one seed only: {q['singleton_share']:.1%}; everyday words among the "
                         f"{q['top']} most frequent: {q['general_word_share']:.1%}; KPs per seed "
                         f"{q['kps_per_seed_min']}-{q['kps_per_seed_max']} (mean {q['kps_per_seed_mean']:.1f})")
        if report.by_path:
            lines.append("seeds by path: " + ", ".join(f"{k} {v:,}" for k, v in report.by_path.items()))
        if report.failed:
            stood_in = report.by_path.get("offline-fallback", 0)
            lines.append(f"the model could not answer {len(report.failed):,} seeds"
                         + (f" ({stood_in:,} got the offline extractor's KPs instead)" if stood_in else "") + ":")
            lines += [f"  {b.reason}" for b in report.failed[:20]]
            if len(report.failed) > 20:
                lines.append(f"  … and {len(report.failed) - 20:,} more (use --json for all)")
        return "\n".join(lines)

    _emit(as_json, payload, text)


@main.command()
@click.option("--communities/--no-communities", default=True, help="Louvain communities (skipped past 50k edges)")
@click.option("--top", default=10, show_default=True, help="how many top KPs to list")
@common
def graph(store: Store, as_json: bool, progress: ProgressBar, communities: bool, top: int) -> None:
    """Build the KP graph and print its statistics."""
    from .graph.build import build_graph
    from .graph.stats import graph_stats

    t = time.perf_counter()
    g = build_graph(store)
    build_s = time.perf_counter() - t
    stats = graph_stats(g, communities=communities)
    order = g.freq.argsort()[::-1][:top]
    stats["top_kps"] = [{"name": g.names[i], "freq": int(g.freq[i]), "degree": int(g.degree[i]),
                         "discipline": g.disciplines[int(g.discipline[i])]} for i in order]
    stats["build_seconds"] = round(build_s, 3)

    def text() -> str:
        lines = [
            f"{stats['nodes']:,} KPs, {stats['edges']:,} edges, {stats['components']:,} components "
            f"(largest holds {stats['largest_component_share']:.1%} of KPs), built in {build_s:.2f} s",
        ]
        if stats.get("degree"):
            d = stats["degree"]
            lines.append(f"degree: median {d['median']:g}, p90 {d['p90']:g}, max {d['max']}")
        if stats.get("communities"):
            c = stats["communities"]
            lines.append(f"communities: {c['count']} in the largest component, modularity {c['modularity']}")
        for name, count in sorted(stats.get("disciplines", {}).items(), key=lambda kv: -kv[1]):
            lines.append(f"  {name:<24} {count:>8,} KPs")
        lines.append("top KPs: " + ", ".join(f"{k['name']} ({k['freq']})" for k in stats["top_kps"]))
        return "\n".join(lines)

    _emit(as_json, stats, text)


def knob_options(func: Callable) -> Callable:
    from .graph.walks import KNOBS

    for name, default, low, high, help_text in reversed(KNOBS):
        kind = int if name in ("min_len", "max_len") else float
        func = click.option(f"--{name.replace('_', '-')}", name, type=kind, default=default, show_default=True,
                            help=f"{help_text} [{low:g}-{high:g}]")(func)
    return func


@main.command()
@click.option("--paths", "n_paths", type=int, default=100, show_default=True, help="how many paths")
@knob_options
@click.option("--mix", default=None, metavar="DISCIPLINE=SHARE,…",
              help="discipline target shares (default: as in the data)")
@click.option("--seed", type=int, default=0, show_default=True, help="random seed (same seed, same paths)")
@click.option("--ledger", type=click.Choice(["fresh", "all"]), default="fresh", show_default=True,
              help="coverage starts from zero, or from every saved run so far")
@click.option("--min-seeds", default=3, show_default=True, help="seeds per bundle, at least")
@click.option("--max-seeds", default=5, show_default=True, help="seeds per bundle, at most")
@click.option("--save", is_flag=True, help="store the sample as a run")
@click.option("--name", default=None, help="a name for the saved run")
@click.option("--show", default=5, show_default=True, help="paths to print (text mode)")
@common
def sample(store: Store, as_json: bool, progress: ProgressBar, n_paths: int, mix: str | None, seed: int,
           ledger: str, min_seeds: int, max_seeds: int, save: bool, name: str | None, show: int,
           **knobs: Any) -> None:
    """Sample value-guided KP paths with their seed bundles; metrics beside a uniform walk."""
    from .graph.metrics import METRIC_NAMES
    from .graph.sampling import sample as run_sample
    from .graph.walks import WalkParams, parse_mix

    params = WalkParams(**knobs, mix=parse_mix(mix) if mix else None)
    result = run_sample(store, params, n_paths, seed=seed, ledger=ledger, min_seeds=min_seeds,
                        max_seeds=max_seeds, save=save, name=name, progress=progress)
    paths = result.paths(store)
    payload = {
        "run_id": result.run_id,
        "config": result.config(),
        "paths": [p.to_json() for p in paths],
        "metrics": result.metrics,
        "baseline": result.baseline,
        "timings": {k: round(v, 4) for k, v in result.timings.items()},
    }

    def text() -> str:
        lines = [f"{'metric':<30}{'value walk':>12}{'uniform':>12}"]
        for key in METRIC_NAMES:
            lines.append(f"{key:<30}{result.metrics[key]:>12.4f}{result.baseline[key]:>12.4f}")
        lines.append("")
        for p in paths[:show]:
            lines.append(f"[{p.discipline}] " + " -> ".join(p.kps) + f"   seeds: {', '.join(p.seed_ids)}")
        if result.run_id is not None:
            lines.append(f"\nsaved as run {result.run_id}")
        return "\n".join(lines)

    _emit(as_json, payload, text)


@main.command()
@click.option("--kind", default=None, help="only runs of this kind (sample, synthesis)")
@common
def runs(store: Store, as_json: bool, progress: ProgressBar, kind: str | None) -> None:
    """List saved runs, with the cumulative KP coverage of all of them."""
    rows = store.runs.list(kind)
    payload = {"runs": [r.to_dict() for r in rows], "cumulative_kp_coverage": store.runs.cumulative_coverage(),
               "counts": store.counts()}

    def text() -> str:
        from .pipeline import resume_command

        lines = [f"{'id':>4}  {'kind':<10}{'status':<13}{'paths':>7}{'items':>7}  {'coverage':>8}  created"]
        interrupted = []
        for r in rows:
            cov = (r.metrics or {}).get("kp_coverage")
            created = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at))
            lines.append(f"{r.id:>4}  {r.kind:<10}{r.status:<13}{r.n_paths:>7}{r.n_items:>7}  "
                         f"{'' if cov is None else f'{cov:.3f}':>8}  {created}  {r.name or ''}")
            if r.status == "interrupted":
                interrupted.append(r.id)
        lines.append(f"cumulative KP coverage of all saved runs: {payload['cumulative_kp_coverage']:.3f}")
        for run_id in interrupted:
            command = resume_command(store, run_id)
            if command:
                lines.append(f"run {run_id} was interrupted; resume it with: {command}")
        return "\n".join(lines)

    _emit(as_json, payload, text)


@main.command()
@click.option("--run", "run_id", type=int, required=True, help="run id (see `runs`)")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="JSONL file to write")
@click.option("--format", "fmt", type=click.Choice(["records", "messages"]), default="records", show_default=True)
@click.option("--status", type=click.Choice(["accepted", "unrejected", "all"]), default="accepted",
              show_default=True, help="which items: accepted; unrejected (accepted + not yet reviewed); all "
                                      "(rejected and superseded too, each with its status) -- runs with items only")
@common
def export(store: Store, as_json: bool, progress: ProgressBar, run_id: int, out: str, fmt: str, status: str) -> None:
    """Write a run to JSONL: its QA items if it has any, else its paths and bundles."""
    from .curation.export import export_run

    report = export_run(store, run_id, out, fmt=fmt, status=status)
    _emit(as_json, report, f"wrote {report['records']:,} {report['kind']} records to {out}")


@main.command("init-sample")
@common
def init_sample(store: Store, as_json: bool, progress: ProgressBar) -> None:
    """Ingest the bundled sample and extract its KPs, if the database has no seeds yet."""
    from .kps.extract import run_extraction
    from .ingest.load import ingest as ingest_file, sample_path

    if store.seeds.count():
        payload = {"initialised": False, **store.counts()}
        _emit(as_json, payload, f"{store.path} already holds {payload['seeds']:,} seeds; nothing to do")
        return
    report = ingest_file(store, sample_path(), progress=progress)
    ext = run_extraction(store, progress=progress)
    payload = {"initialised": True, "added": report.added, "kps": ext.kps, **store.counts()}
    _emit(as_json, payload, f"loaded the bundled sample: {report.added:,} seeds, {ext.kps:,} KPs in {store.path}")


@main.command()
@common
def check(store: Store, as_json: bool, progress: ProgressBar) -> None:
    """Check the database file for damage (reads every page) and list who is working on it."""
    damage = store.check(full=True)
    payload = {"path": store.path, "ok": damage is None, "damage": damage, "schema": store.schema_version,
               "working": store.leases()}
    lines = [f"{store.path}: no damage found" if damage is None else damage]  # the damage names the file
    lines += [f"  {r['what']} (pid {r['pid']}, since {time.strftime('%H:%M', time.localtime(r['started_at']))})"
              for r in payload["working"]]
    _emit(as_json, payload, "\n".join(lines))
    if damage is not None:
        sys.exit(2)


def run(argv: list[str] | None = None) -> None:
    """The ``linkqa`` entry point: click's errors (usage, bad values) as one line too."""
    try:
        main.main(args=argv, prog_name="linkqa", standalone_mode=False)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except click.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(1)
    except click.ClickException as err:
        hint = ""
        if isinstance(err, click.UsageError) and err.ctx is not None:
            hint = f" (see {err.ctx.command_path} --help)"
        click.echo(f"error: {_one_line(err.format_message())}{hint}", err=True)
        sys.exit(err.exit_code)


def _stored(store: Store, run_id: int, section: str) -> dict[str, Any]:
    """What a run's config remembers of an earlier ``synthesize`` or ``enhance`` on it."""
    return dict(store.runs.get(run_id).config.get(section) or {})


@main.command()
@click.option("--run", "run_id", type=int, required=True, help="a saved sample run (see `runs`)")
@click.option("--per-bundle", type=int, default=None,
              help="new items asked per bundle (default: as the run was started, else 2)")
@click.option("--items", "target_items", type=int, default=None,
              help="how many items to end with (more paths are sampled if needed); default: as the run was "
                   "started, else paths × per-bundle")
@click.option("--template", type=click.Path(exists=True, dir_okay=False), default=None,
              help="prompt template file (fields: {kps} {seeds} {discipline} {difficulty} {n_items} {format_rules}); "
                   "default: the run's own, else the built-in one")
@click.option("--open-ended", is_flag=True, default=None, help="open questions instead of multiple choice")
@click.option("--estimate", is_flag=True, help="only print the cost estimate")
@llm_options
@common
@backend_options
def synthesize(store: Store, as_json: bool, progress: ProgressBar, run_id: int, per_bundle: int | None,
               target_items: int | None, template: str | None, open_ended: bool | None, estimate: bool,
               offline: bool, budget_tokens: int | None, budget_usd: float | None, scale: Any = None,
               **llm: Any) -> None:
    """Write new QA items for each bundle of a run; run it again (no options needed) to resume.

    When the endpoint stops answering, it stops with a message and exit status 1; the
    bundles not done stay planned for the next start.
    """
    from .synthesis.run import DEFAULT_TEMPLATE, SynthesisConfig, estimate_synthesis_cost

    before = _stored(store, run_id, "synthesis")
    text = Path(template).read_text(encoding="utf-8") if template else before.get("template", DEFAULT_TEMPLATE)
    multiple_choice = not open_ended if open_ended is not None else bool(before.get("multiple_choice", True))
    cfg = SynthesisConfig(per_bundle=per_bundle or int(before.get("per_bundle", 2)),
                          target_items=target_items or before.get("target_items"), template=text,
                          multiple_choice=multiple_choice)
    budget_tokens = budget_tokens if budget_tokens is not None else before.get("budget_tokens")
    budget_usd = budget_usd if budget_usd is not None else before.get("budget_usd")
    settings = llm_settings(offline, budget_tokens=budget_tokens, budget_usd=budget_usd, **llm)
    cost = estimate_synthesis_cost(store, run_id, cfg, settings)
    if estimate:
        _emit(as_json, cost, f"{cost['requests']:,} requests, about {cost['total_tokens']:,} tokens, ${cost['usd']:.2f}")
        return
    if settings is None and not as_json:
        why = "--offline" if offline else "no LLM endpoint configured (OPENAI_BASE_URL / LINKQA_MODEL)"
        click.echo(f"{why}: using the offline composer", err=True)
    from .scale import dispatch

    report = dispatch.synthesize(store, run_id, cfg, settings, scale, progress=progress)
    payload = {**report.__dict__, "estimate": cost}
    payload["errors"] = report.errors[:100]
    notes = []
    if report.stopped:
        notes.append(f"stopped: {report.stopped}")
    if report.retry_later:
        notes.append(f"{report.retry_later} request(s) failed for now; their bundles stay planned")
    if report.estimated_calls:
        notes.append(f"tokens of {report.estimated_calls} call(s) estimated from the text (the server sent no usage)")
    _emit(as_json, payload,
          f"run {run_id}: {report.items_ok:,}/{report.target_items:,} items ({report.items_failed} failed) by "
          f"{report.model}; {report.requests:,} requests ({report.cached} cached), "
          f"{report.prompt_tokens + report.completion_tokens:,} tokens"
          + (f" (+{report.spent_before:,} spent before)" if report.spent_before else "")
          + "".join(f"; {n}" for n in notes))


@main.command()
@click.option("--run", "run_id", type=int, required=True)
@click.option("--targets", default=None, metavar="SPEC",
              help='difficulty mix per discipline, e.g. "default=3:0.3,4:0.4,5:0.3;Mathematics=4:0.5,5:0.5" '
                   "(default: as the run was last enhanced, else default=3:0.3,4:0.4,5:0.3)")
@click.option("--max-rounds", type=int, default=None, help="rounds for the run in all (default: as before, else 2)")
@llm_options
@common
@backend_options
def enhance(store: Store, as_json: bool, progress: ProgressBar, run_id: int, targets: str | None,
            max_rounds: int | None, offline: bool, budget_tokens: int | None, budget_usd: float | None,
            scale: Any = None, **llm: Any) -> None:
    """Rewrite items below the target difficulty mix harder; report the mix before and after."""
    from .difficulty.enhance import DifficultyTargets

    before = _stored(store, run_id, "difficulty")
    spec = targets or before.get("targets")
    tgt = DifficultyTargets.parse(spec) if spec else DifficultyTargets()
    budget_tokens = budget_tokens if budget_tokens is not None else before.get("budget_tokens")
    budget_usd = budget_usd if budget_usd is not None else before.get("budget_usd")
    settings = llm_settings(offline, budget_tokens=budget_tokens, budget_usd=budget_usd, **llm)
    rounds = max_rounds if max_rounds is not None else int(before.get("max_rounds", 2))
    from .scale import dispatch

    report = dispatch.enhance(store, run_id, tgt, settings, scale, max_rounds=rounds, progress=progress)
    payload = report.to_dict() if hasattr(report, "to_dict") else dict(report.__dict__)
    _emit(as_json, payload, lambda: _mix_text(payload))





def _mix_text(payload: dict[str, Any]) -> str:
    lines = []
    for key in ("mix_before", "mix_after"):
        mix = payload.get(key) or {}
        lines.append(f"{key.replace('_', ' ')}:")
        for disc, levels in sorted(mix.items()):
            lines.append(f"  {disc:<24}" + "  ".join(f"{lvl}:{levels.get(lvl, levels.get(str(lvl), 0)):>4}"
                                                     for lvl in range(1, 6)))
    rest = {k: v for k, v in payload.items() if k not in ("mix_before", "mix_after")}
    lines.append(json.dumps(rest, default=str))
    return "\n".join(lines)


@main.command()
@click.option("--run", "run_id", type=int, required=True)
@click.option("--reference", type=click.Path(exists=True, dir_okay=False), default=None,
              help="benchmark file to decontaminate against (JSONL with a question field, or one item a line)")
@click.option("--near-dup", type=float, default=0.8, show_default=True, help="Jaccard threshold for near-duplicates")
@click.option("--ngram", type=int, default=13, show_default=True, help="n-gram size for decontamination")
@common
@backend_options
def gates(store: Store, as_json: bool, progress: ProgressBar, run_id: int, reference: str | None, near_dup: float,
          ngram: int, scale: Any = None) -> None:
    """Quality gates on a run's generated items; rejected items keep their reason."""
    from .quality.checks import GateConfig

    cfg = GateConfig(near_dup_threshold=near_dup, decontam_ngram=ngram)
    from .scale import dispatch

    summary = dispatch.gates(store, run_id, cfg, scale, reference=reference)
    _emit(as_json, {"run_id": run_id, "rejected": summary},
          "rejected by gate: " + ", ".join(f"{k} {v}" for k, v in summary.items()))


@main.command("run")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="TOML file with [ingest] [extract] [sample] [llm] [synthesize] [enhance] [gates] sections")
@llm_options
@common
def run_pipeline(store: Store, as_json: bool, progress: ProgressBar, config_path: str, **llm: Any) -> None:
    """ingest -> extract -> graph -> sample -> synthesize -> enhance -> gates, in one go, resumable.

    LLM flags win over the config's [llm] table, which wins over the environment.
    """
    from .pipeline import run_from_config

    report = run_from_config(store, Path(config_path), progress=progress, flags=llm)
    _emit(as_json, report, lambda: "\n".join(f"{k}: {json.dumps(v, default=str)}" for k, v in report.items()))
