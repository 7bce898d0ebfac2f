"""Print the knowledge layer's figures: KP quality, extraction time, bundle linkage.

Run from the project root with the project's Python:

    python scripts/knowledge_report.py                       # bundled sample + full MMLU
    python scripts/knowledge_report.py --data sample --paths 1000 --json out.json

For each data set: extraction time (offline extractor, best of ``--repeat``), top 30 KPs,
singleton share, general-word share of the top 200 (definition in
:mod:`linkqa_core.kps.quality`), KPs per seed, precision on the hand-checked set
(``tests/data/kp_judgements.jsonl``), then ``--paths`` value-walk paths at default
settings with their bundles: bundle-size distribution, share with >= 2 and >= 3 seeds,
shared concept KPs per bundle, and three example bundles. No database is needed: the
graph is built from the extractions in memory.

``--before REV`` measures the extractor of git revision REV instead (its
``kps/offline.py`` and ``kps/names.py``, read with ``git show``) and walks with
``w_link = 0``, which draws exactly the paths of the walk before linkage existed:

    python scripts/knowledge_report.py --before ca9e584

``--items`` composes offline items from the same bundles (``--per-bundle`` each, as
synthesis does), rewrites each once with every offline operation it can take, and counts
the degenerate patterns a strict reader rejects (:mod:`linkqa_core.quality.degenerate`),
with three items in full. ``--composer-rev REV`` uses the offline composer and rewriter of
git revision REV instead (run against this tree's records and checks):

    python scripts/knowledge_report.py --items --composer-rev 4a10295
"""

from __future__ import annotations

import argparse
import os
import json
from collections import Counter
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from linkqa_core.graph.build import KPGraph, graph_from_links  # noqa: E402
from linkqa_core.ingest.load import load_seeds, sample_path  # noqa: E402
from linkqa_core.kps.extract import estimate_difficulty  # noqa: E402
from linkqa_core.kps.names import normalize_kp  # noqa: E402
from linkqa_core.kps.offline import OfflineExtractor  # noqa: E402
from linkqa_core.kps.quality import judged_precision, kp_quality, load_judgements  # noqa: E402
from linkqa_core.records import Extraction, Seed  # noqa: E402

MMLU = next((p for p in ([Path(os.environ["LINKQA_MMLU"])] if os.environ.get("LINKQA_MMLU") else [])
             + [ROOT.parent / "shared" / "data" / "mmlu_test.jsonl",  # beside a checkout, as the tests look
                ROOT.parent.parent / "shared" / "data" / "mmlu_test.jsonl"]  # beside a worktree folder
             if p.is_file()), ROOT.parent / "shared" / "data" / "mmlu_test.jsonl")
JUDGEMENTS = ROOT / "tests" / "data" / "kp_judgements.jsonl"


def graph_of(seeds: list[Seed], extractions: list[Extraction]) -> KPGraph:
    """The KP graph of in-memory extractions (rid = position + 1), as the store would build it."""
    disciplines = sorted({s.discipline for s in seeds})
    d_index = {d: i for i, d in enumerate(disciplines)}
    seed_disc = np.zeros(len(seeds) + 1, dtype=np.int16)
    seed_diff = np.full(len(seeds) + 1, np.nan)
    key_id: dict[str, int] = {}
    names: list[str] = []
    rids, kps = [], []
    by_id = {s.id: (i + 1, s) for i, s in enumerate(seeds)}
    for ex in extractions:
        rid, seed = by_id[ex.seed_id]
        seed_disc[rid] = d_index[seed.discipline]
        seed_diff[rid] = ex.difficulty if ex.difficulty is not None else estimate_difficulty(seed)
        seen = set()
        for name in ex.kps:
            key = normalize_kp(name)
            if not key or key in seen:
                continue
            seen.add(key)
            if key not in key_id:
                key_id[key] = len(key_id)
                names.append(str(name))
            rids.append(rid)
            kps.append(key_id[key])
    return graph_from_links(np.array(rids), np.array(kps), seed_disc, seed_diff, disciplines,
                            names=names, kp_ids=np.arange(len(names)))


def extractor_at(rev: str | None) -> type:
    """The offline extractor class of this tree, or of git revision ``rev`` (loaded from its source)."""
    if rev is None:
        return OfflineExtractor
    show = lambda path: subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True,  # noqa: E731
                                       capture_output=True, text=True).stdout
    folder = Path(tempfile.mkdtemp())
    (folder / "_before_names.py").write_text(show("linkqa_core/kps/names.py"))
    sys.path.insert(0, str(folder))
    src = (show("linkqa_core/kps/offline.py").replace("from .names import", "from _before_names import")
           .replace("from ..errors", "from linkqa_core.errors").replace("from ..records", "from linkqa_core.records")
           .replace("from .extract", "from linkqa_core.kps.extract"))
    module = types.ModuleType(f"offline_{rev}")
    exec(compile(src, f"{rev}:linkqa_core/kps/offline.py", "exec"), module.__dict__)
    return module.OfflineExtractor


def extract(seeds: list[Seed], repeat: int, extractor: type) -> tuple[list[Extraction], float, float]:
    """Extractions and the best wall and CPU seconds of ``repeat`` runs (CPU time barely moves on a busy machine)."""
    wall = cpu = float("inf")
    out: list[Extraction] = []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = extractor().extract(seeds)
        wall, cpu = min(wall, time.perf_counter() - t), min(cpu, time.process_time() - c)
    return out, wall, cpu


def precision(extractions_by_id: dict[str, Extraction]) -> dict | None:
    if not JUDGEMENTS.is_file():
        return None
    return judged_precision(extractions_by_id, load_judgements(JUDGEMENTS)).to_dict()


def bundle_report(graph: KPGraph, seeds: list[Seed], n_paths: int, w_link: float | None) -> dict:
    from linkqa_core.graph.bundles import choose_bundles
    from linkqa_core.graph.metrics import sample_metrics
    from linkqa_core.graph.walks import WalkParams, value_walks

    params = WalkParams() if w_link is None else WalkParams(w_link=w_link)
    walks = value_walks(graph, params, n_paths, seed=0)
    bundles = choose_bundles(graph, walks)
    metrics = sample_metrics(graph, walks, bundles)
    sizes = np.bincount(bundles.sizes, minlength=6)
    examples = []
    for i in (0, n_paths // 3, 2 * n_paths // 3):
        path = [graph.names[int(v)] for v in walks.path(i)]
        rids = [int(r) for r in bundles.of(i)]
        kp_sets = {r: {int(v) for v in walks.path(i) if r in set(graph.seeds_of(int(v)).tolist())} for r in rids}
        shared = sorted({graph.names[v] for v in walks.path(i).tolist()
                         if sum(v in s for s in kp_sets.values()) >= 2})
        examples.append({"path": path, "seeds": [seeds[r - 1].question[:110] for r in rids], "shared_kps": shared})
    return {"size_histogram": {str(k): int(c) for k, c in enumerate(sizes) if c},
            "metrics": {k: v for k, v in metrics.items() if not isinstance(v, dict)}, "examples": examples}


def module_at(rev: str | None, path: str, package: str) -> types.ModuleType:
    """A module of this tree, or its source at git revision ``rev`` run inside this tree's package."""
    import importlib

    if rev is None:
        return importlib.import_module(f"{package}.{Path(path).stem}")
    src = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout
    module = types.ModuleType(f"{package}._{Path(path).stem}_at_{rev}")
    module.__package__ = package
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    exec(compile(src, f"{rev}:{path}", "exec"), module.__dict__)
    return module


def items_report(graph: KPGraph, seeds: list[Seed], extractions: list[Extraction], n_paths: int,
                 per_bundle: int, rev: str | None) -> dict:
    """Offline items (composed, then rewritten once per operation) and their degenerate patterns."""
    from linkqa_core.graph.bundles import choose_bundles
    from linkqa_core.graph.walks import WalkParams, value_walks
    from linkqa_core.quality.degenerate import count_degenerate, findings
    from linkqa_core.records import Bundle
    from linkqa_core.records import Path as KPPath
    from linkqa_core.synthesis.compose import Ask
    from linkqa_core.tasks import ReplyError

    composer = module_at(rev, "linkqa_core/synthesis/offline.py", "linkqa_core.synthesis").OfflineComposer(1)
    rewrite = module_at(rev, "linkqa_core/difficulty/rewrite.py", "linkqa_core.difficulty")
    rewriter = rewrite.OfflineRewriter(None)
    walks = value_walks(graph, WalkParams(), n_paths, seed=0)
    bundles = choose_bundles(graph, walks)
    seed_kps = {e.seed_id: {normalize_kp(k) for k in e.kps} for e in extractions}
    composed: list[tuple] = []
    rewritten: list[tuple] = []
    no_item = 0
    t = time.perf_counter()
    for i in range(len(walks)):
        kps = tuple(graph.names[int(v)] for v in walks.path(i))
        chosen = tuple(seeds[int(r) - 1] for r in bundles.of(i))
        bundle = Bundle(KPPath(i, kps, graph.disciplines[int(walks.discipline[i])], tuple(s.id for s in chosen)),
                        chosen)
        try:
            items = composer.run(Ask(bundle, per_bundle, 3.0, True))
        except ReplyError:
            no_item += 1
            continue
        composed += [(it, chosen) for it in items]
        ctx = rewrite.RewriteContext(list(kps), list(chosen), seed_kps)
        for op in rewriter.operations:
            job = rewrite.Rewrite(items[0], op, ctx, f"p{i}:0/r1")
            if rewriter.prepare(job):
                child = rewriter.run(job)
                rewritten.append((child, chosen if job.seed is None or job.seed in chosen else (*chosen, job.seed)))
    seconds = time.perf_counter() - t

    def examples(pairs: list[tuple]) -> list[dict]:
        picks = [pairs[k] for k in (0, len(pairs) // 3, 2 * len(pairs) // 3)] if pairs else []
        return [{"item": {"question": it.question, "options": list(it.options or ()), "answer": it.answer,
                          "solution": it.solution}, "seeds": [s.id for s in ss],
                 "findings": [f"{f.pattern}: {f.detail}" for f in findings(it, ss)]} for it, ss in picks]

    def flagged(pairs: list[tuple]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for it, ss in pairs:
            for f in findings(it, ss):
                if len(out.setdefault(f.pattern, [])) < 3:
                    out[f.pattern].append(f.detail)
        return out

    def kept(pairs: list[tuple]) -> dict[str, int]:
        """What the gates keep (against each other and all seeds), and of that what the checklist passes too."""
        from linkqa_core.quality.gates import run_gates

        items = [it.with_(id=k) for k, (it, _) in enumerate(pairs)]
        results = run_gates(items, seeds=[(s.id, s.question, s.options) for s in seeds])
        passed = [k for k, r in enumerate(results) if r.passed]
        return {"gates_pass": len(passed), "gates_and_checklist_pass": sum(not findings(*pairs[k]) for k in passed),
                "rejected_by_gate": dict(Counter(r.gate for r in results if not r.passed))}

    return {"composer_rev": rev, "composed_kept": kept(composed), "rewritten_kept": kept(rewritten),
            "composed_flagged": flagged(composed), "rewritten_flagged": flagged(rewritten), "paths": n_paths, "per_bundle": per_bundle, "bundles_without_item": no_item,
            "compose_seconds": round(seconds, 2),
            "composed": count_degenerate(composed).to_dict(), "rewritten": count_degenerate(rewritten).to_dict(),
            "composed_examples": examples(composed), "rewritten_examples": examples(rewritten)}


def report(name: str, path: Path, args: argparse.Namespace) -> dict:
    seeds = load_seeds(path).seeds
    extractions, seconds, cpu = extract(seeds, args.repeat, extractor_at(args.before))
    quality = kp_quality(extractions, seeds)
    out = {"data": name, "before": args.before, "seeds": len(seeds), "extract_seconds": round(seconds, 3), "extract_cpu_seconds": round(cpu, 3), "quality": quality.to_dict(),
           "precision": precision({e.seed_id: e for e in extractions})}
    graph = graph_of(seeds, extractions)
    out["bundles"] = bundle_report(graph, seeds, args.paths, 0.0 if args.before else None)
    if args.items:
        out["items"] = items_report(graph, seeds, extractions, args.paths, args.per_bundle, args.composer_rev)
    return out


def show(r: dict) -> None:
    q = r["quality"]
    print(f"\n== {r['data']}{' (before: ' + r['before'] + ')' if r.get('before') else ''}: {r['seeds']:,} seeds, extraction {r['extract_seconds']:.2f} s"
          f" ({r['extract_cpu_seconds']:.2f} s CPU) ==")
    print(f"KPs {q['kps']:,}; per seed {q['kps_per_seed_min']}-{q['kps_per_seed_max']} (mean {q['kps_per_seed_mean']});"
          f" outside 2-8: {q['seeds_outside_bounds']}; singleton share {q['singleton_share']:.1%};"
          f" multi-word {q['multiword_share']:.1%}")
    print(f"general-language words in the top {q['top']}: {q['general_word_share']:.1%} {q['general_words']}")
    print("top 30:", ", ".join(f"{n} ({c})" for n, c in q["top_kps"]))
    if r["precision"]:
        p = r["precision"]
        print(f"hand-checked set: precision {p['precision']:.1%} ({p['accepted']}/{p['judged']} judged KPs accepted,"
              f" {p['unjudged']} unjudged) over {p['seeds']} seeds")
    b = r["bundles"]
    m = b["metrics"]
    print(f"bundles of {m['n_paths']} default paths: sizes {b['size_histogram']};"
          f" >=2 seeds {m['bundle_share_2plus']:.1%}, >=3 {m['bundle_share_3plus']:.1%}; below min_seeds {m['bundles_below_min_seeds']};"
          f" shared concept KPs per bundle {m['mean_shared_kps']};"
          f" mean link strength {m['mean_link_strength']}")
    for ex in b["examples"]:
        print("  path:", " -> ".join(ex["path"]), "| shared:", ex["shared_kps"])
        for q_ in ex["seeds"]:
            print("     -", q_)


def show_items(r: dict) -> None:
    it = r["items"]
    print(f"offline items{' of ' + it['composer_rev'] if it['composer_rev'] else ''}: {it['paths']} paths,"
          f" {it['per_bundle']} per bundle, {it['bundles_without_item']} bundles without an item,"
          f" {it['compose_seconds']} s")
    for kind in ("composed", "rewritten"):
        c = it[kind]
        print(f"  {kind}: {c['items']} items, a strict reader rejects {c['rejected']} ({c['share']:.1%});"
              f" by pattern {', '.join(f'{k} {v}' for k, v in c['by_pattern'].items() if v) or 'none'}")
        k = it[f"{kind}_kept"]
        print(f"     the gates keep {k['gates_pass']} (rejected by gate: {k['rejected_by_gate']});"
              f" kept by the gates and the checklist: {k['gates_and_checklist_pass']}")
        for pattern, details in it[f"{kind}_flagged"].items():
            print(f"     e.g. {pattern}: {' | '.join(details)}")
    for kind in ("composed", "rewritten"):
        for ex in it[f"{kind}_examples"]:
            print(f"  -- {kind} item from seeds {', '.join(ex['seeds'])}; findings: {ex['findings'] or 'none'}")
            print("     question:", ex["item"]["question"].replace("\n", "\n               "))
            for k, o in enumerate(ex["item"]["options"]):
                print(f"        {chr(65 + k)}. {o}")
            print("     answer:", ex["item"]["answer"])
            print("     solution:", ex["item"]["solution"].replace("\n", "\n               "))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="sample,mmlu", help="sample, mmlu or both (comma-separated)")
    ap.add_argument("--paths", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3, help="extraction runs; the best time is shown")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--before", metavar="REV", help="measure the extractor of git revision REV, walks without linkage")
    ap.add_argument("--items", action="store_true", help="also compose offline items and count degenerate ones")
    ap.add_argument("--per-bundle", type=int, default=2, help="offline items per bundle (--items)")
    ap.add_argument("--composer-rev", metavar="REV", help="offline composer and rewriter of git revision REV")
    args = ap.parse_args()
    results = []
    for name in args.data.split(","):
        path = sample_path() if name == "sample" else MMLU
        if not path.is_file():
            print(f"skipping {name}: {path} is missing")
            continue
        results.append(report(name, path, args))
        show(results[-1])
        if args.items:
            show_items(results[-1])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
