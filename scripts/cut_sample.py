"""Cut the bundled MMLU sample: 20 questions a subject, chosen by a fixed random seed.

Run from the project root: python scripts/cut_sample.py ../shared/data/mmlu_test.jsonl
"""

import json
import random
import sys
from collections import defaultdict
from pathlib import Path

PER_SUBJECT = 20


def main(src: str) -> None:
    by_topic: dict[str, list[str]] = defaultdict(list)
    with open(src, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row.get("correct_answer") not in {"A", "B", "C", "D"}:
                continue
            by_topic[row["topic"]].append(line.rstrip("\n"))
    rng = random.Random(2508_01317)
    out = Path(__file__).resolve().parent.parent / "linkqa_core" / "data" / "mmlu_sample.jsonl"
    with open(out, "w", encoding="utf-8") as fh:
        for topic in sorted(by_topic):
            for line in rng.sample(by_topic[topic], min(PER_SUBJECT, len(by_topic[topic]))):
                fh.write(line + "\n")
    print(f"{sum(min(PER_SUBJECT, len(v)) for v in by_topic.values())} rows, {len(by_topic)} subjects -> {out}")


if __name__ == "__main__":
    main(sys.argv[1])
