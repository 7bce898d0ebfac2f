"""The offline composer: items from a bundle with no model, so every stage works without a key."""

from __future__ import annotations

import random

from ..records import Bundle, Item, Seed
from ..tasks import ReplyError
from .compose import Ask

__all__ = ["OfflineComposer", "OFFLINE_MODEL"]

OFFLINE_MODEL = "offline-composer"


class OfflineComposer:
    """Composes items from a bundle without a model: two linked seeds become one two-part item.

    The question asks both seed questions; the options pair each seed's correct answer
    with the other's distractors, so exactly one option is right. Honest but shallow: it
    exists so the pipeline, the app and the export work with no endpoint.
    """

    name = OFFLINE_MODEL

    def __init__(self, run_id: int = 0):
        self.run_id = run_id

    def run(self, ask: Ask) -> list[Item]:
        bundle = ask.bundle
        rng = random.Random(f"{self.run_id}:{bundle.path.index}")
        seeds = bundle.seeds
        pairs = [(a, b) for i, a in enumerate(seeds) for b in seeds[i + 1:]] or [(s, s) for s in seeds]
        items = []
        for k in range(ask.n_items):
            if not pairs:
                break
            a, b = pairs[k % len(pairs)]
            items.append(self._pair(a, b, bundle, rng, ask.difficulty, ask.multiple_choice))
        if not items:
            raise ReplyError("bundle has no seeds to compose from")
        return items

    @staticmethod
    def _pair(a: Seed, b: Seed, bundle: Bundle, rng: random.Random, difficulty: float,
              multiple_choice: bool) -> Item:
        shared = list(bundle.kps)[:3]
        question = (
            f"This two-part question links {', '.join(shared)}.\n"
            f"Part 1: {a.question.strip()}\nPart 2: {b.question.strip()}"
        )
        answer = f"Part 1: {a.answer}; Part 2: {b.answer}"
        options = None
        if multiple_choice:
            wrong_a = [o for o in (a.options or ()) if o != a.answer] or [f"not {a.answer}"]
            wrong_b = [o for o in (b.options or ()) if o != b.answer] or [f"not {b.answer}"]
            combos = {answer}
            tries = 0
            while len(combos) < 4 and tries < 50:
                tries += 1
                pa = a.answer if rng.random() < 0.34 else rng.choice(wrong_a)
                pb = b.answer if pa != a.answer and rng.random() < 0.5 else rng.choice(wrong_b)
                combos.add(f"Part 1: {pa}; Part 2: {pb}")
            options = sorted(combos)
            rng.shuffle(options)
        solution = (
            f"Composed offline from seeds {a.id} and {b.id} without a model. "
            f"Part 1: {a.answer.rstrip('.')}. Part 2: {b.answer.rstrip('.')}."
        )
        known = [d for d in (a.difficulty, b.difficulty) if d is not None]
        return Item(
            question=question,
            options=tuple(options) if options else None,
            answer=answer,
            solution=solution,
            kps_used=tuple(shared),
            difficulty=float(min(5, round(max(known) + 0.5))) if known else difficulty,
        )
