"""Time the quality gates on generated item sets, and count what they catch among planted seed copies.

Run from the project root with the project's Python:

    python scripts/gate_timing.py                        # 10k, 30k, 100k items against full MMLU seeds
    python scripts/gate_timing.py --sizes 10000 --seeds sample --json out.json

Items are made from the seed questions, deterministically (``--seed``):

- *fresh*: a seed question with a third of its words replaced by words of other seeds
  (not a copy by any measure), with four options;
- *planted* seed copies, each kind ``--planted`` of the items (default 2%): ``with_options``
  (question and options), ``no_options`` (question alone), ``reordered`` (its sentences and
  clauses in another order, options kept), ``punctuation`` (trailing punctuation changed,
  no options) and ``inline_letter`` (options written into the question, answer "C. text");
- *item duplicates*: 3% copies of earlier fresh items.

The baseline, measured in the same run on the same items, is :func:`run_gates` of git
revision ``--baseline`` (default 4a10295, before the question-alone and word-order views
and the letter check). Per size: seconds for both, microseconds per item, and per planted
kind how many each version rejected and by which gate. Times are wall-clock, best of
``--repeat``; the machine is shared, so read ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import time
import types
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from linkqa_core.ingest.load import load_seeds, sample_path  # noqa: E402
from linkqa_core.quality.gates import run_gates  # noqa: E402
from linkqa_core.records import Item, Seed  # noqa: E402

MMLU = ROOT.parent.parent / "shared" / "data" / "mmlu_test.jsonl"
KINDS = ("with_options", "no_options", "reordered", "punctuation", "inline_letter")


def baseline_gates(rev: str):
    """``run_gates`` of git revision ``rev``: its quality package (gates, checks, text,
    reference) loaded as a package of its own, on this tree's records and errors."""
    package = f"linkqa_core.quality_at_{rev}"
    pkg = types.ModuleType(package)
    pkg.__path__ = []  # a package: its modules are registered below
    sys.modules[package] = pkg
    for name in ("text", "checks", "reference", "gates"):
        src = subprocess.run(["git", "show", f"{rev}:linkqa_core/quality/{name}.py"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        module = types.ModuleType(f"{package}.{name}")
        module.__package__ = package
        sys.modules[module.__name__] = module
        exec(compile(src, f"{rev}:linkqa_core/quality/{name}.py", "exec"), module.__dict__)
        setattr(pkg, name, module)
    return pkg.gates.run_gates


def reorder(question: str, rng: random.Random) -> str:
    """The same words in another order: sentences rotated, then the clauses of the longest swapped."""
    sentences = [s for s in re.split(r"(?<=[.?!])\s+", question.strip()) if s]
    if len(sentences) > 1:
        k = rng.randrange(1, len(sentences))
        sentences = sentences[k:] + sentences[:k]
    longest = max(range(len(sentences)), key=lambda i: len(sentences[i]))
    clauses = sentences[longest].split(", ")
    if len(clauses) > 1:
        clauses = clauses[1:] + clauses[:1]
    else:
        words = clauses[0].split()
        cut = max(1, len(words) // 3)
        clauses = [" ".join(words[cut:] + words[:cut])]
    sentences[longest] = ", ".join(clauses)
    return " ".join(sentences)


def make_items(seeds: list[Seed], n: int, planted: float, rng: random.Random) -> tuple[list[Item], dict[int, str]]:
    """``n`` items and, for the planted ones, their kind by item id."""
    vocab = [w for s in rng.sample(seeds, min(len(seeds), 2000)) for w in s.question.split()]
    with_opts = [s for s in seeds if s.options and len(s.options) >= 3 and len(s.question.split()) >= 6]
    items: list[Item] = []
    kinds: dict[int, str] = {}
    fresh: list[Item] = []
    n_planted = int(n * planted)
    for k in range(n):
        r = k % 100
        if k < n_planted * len(KINDS):
            kind = KINDS[k % len(KINDS)]
            s = rng.choice(with_opts)
            opts = list(s.options)
            if kind == "with_options":
                item = Item(s.question, s.answer, tuple(opts))
            elif kind == "no_options":
                item = Item(s.question, s.answer)
            elif kind == "reordered":
                item = Item(reorder(s.question, rng), s.answer, tuple(opts))
            elif kind == "punctuation":
                q = s.question.rstrip().rstrip("?.!:")
                item = Item(q + rng.choice(["", ".", "?!", " ?", "..."]), s.answer)
            else:
                idx = opts.index(s.answer) if s.answer in opts else 0
                inline = s.question + "\n" + "\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(opts))
                item = Item(inline, f"{chr(65 + idx)}. {opts[idx]}")
            kinds[k] = kind
        elif fresh and r < 3:
            item = rng.choice(fresh)
        else:
            s = rng.choice(seeds)
            words = s.question.split()
            for j in rng.sample(range(len(words)), max(1, len(words) // 3)):
                words[j] = rng.choice(vocab)
            opts = [f"{rng.choice(vocab)} {rng.choice(vocab)} {i}" for i in range(4)]
            item = Item(" ".join(words) + " (" + str(k) + ")", opts[1], tuple(opts))
            fresh.append(item)
        items.append(item.with_(id=k))
    order = list(range(n))
    rng.shuffle(order)
    return [items[i] for i in order], kinds


def timed(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def measure(seeds: list[Seed], n: int, args: argparse.Namespace, old_gates) -> dict:
    items, kinds = make_items(seeds, n, args.planted, random.Random(args.seed))
    seed_rows = [(s.id, s.question, list(s.options) if s.options else None) for s in seeds]
    new_s, new = timed(lambda: run_gates(items, seeds=seed_rows), args.repeat)
    old_s, old = timed(lambda: old_gates(items, seeds=seed_rows), args.repeat)
    caught = {}
    for name, results in (("new", new), ("baseline", old)):
        by_kind: dict[str, Counter] = {k: Counter() for k in KINDS}
        for r in results:
            if r.key in kinds:
                by_kind[kinds[r.key]][r.gate or "passed"] += 1
        caught[name] = {k: dict(c) for k, c in by_kind.items()}
    gates = {name: dict(Counter(r.gate or "passed" for r in res)) for name, res in (("new", new), ("baseline", old))}
    return {"items": n, "seeds": len(seeds), "new_seconds": round(new_s, 2), "baseline_seconds": round(old_s, 2),
            "new_us_per_item": round(new_s / n * 1e6, 1), "baseline_us_per_item": round(old_s / n * 1e6, 1),
            "gates": gates, "planted": caught, "planted_each": int(n * args.planted)}


def show(r: dict) -> None:
    print(f"\n{r['items']:,} items vs {r['seeds']:,} seeds: new {r['new_seconds']} s ({r['new_us_per_item']} us/item),"
          f" baseline {r['baseline_seconds']} s ({r['baseline_us_per_item']} us/item),"
          f" ratio {r['new_seconds'] / max(r['baseline_seconds'], 1e-9):.2f}")
    for name in ("baseline", "new"):
        print(f"  {name:8} gates: {r['gates'][name]}")
    print(f"  planted seed copies, {r['planted_each']} of each kind: rejected (by gate)")
    for kind in KINDS:
        row = []
        for name in ("baseline", "new"):
            c = r["planted"][name][kind]
            rejected = sum(v for k, v in c.items() if k != "passed")
            row.append(f"{name} {rejected}/{sum(c.values())} {dict(sorted((k, v) for k, v in c.items() if k != 'passed'))}")
        print(f"    {kind:14} " + " | ".join(row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,30000,100000")
    ap.add_argument("--seeds", default="mmlu", help="mmlu (full MMLU test split) or sample (bundled sample)")
    ap.add_argument("--planted", type=float, default=0.02, help="share of items planted per copy kind")
    ap.add_argument("--baseline", default="4a10295", help="git revision whose gates are the baseline")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    path = MMLU if args.seeds == "mmlu" and MMLU.is_file() else sample_path()
    seeds = load_seeds(path).seeds
    old_gates = baseline_gates(args.baseline)
    results = []
    for n in (int(x) for x in args.sizes.split(",")):
        results.append(measure(seeds, n, args, old_gates))
        show(results[-1])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
