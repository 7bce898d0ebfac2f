"""How seeds and items are written into prompts: one formatter each, for every stage.

>>> from linkqa_core.records import Seed
>>> print(format_seed(1, Seed("s1", "Which gas do plants take in?", "CO2", ("O2", "CO2"), "B", subject="biology")))
Seed 1 (biology): Which gas do plants take in?
  A. O2
  B. CO2
  Answer: B. CO2
"""

from __future__ import annotations

from typing import Sequence

from .records import Item, Seed

__all__ = ["format_seed", "format_seeds", "format_item", "MAX_QUESTION_CHARS"]

MAX_QUESTION_CHARS = 4000  # a seed question longer than this is cut in prompts


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_QUESTION_CHARS else text[:MAX_QUESTION_CHARS] + " …"


def format_seed(number: int, seed: Seed) -> str:
    """A seed as prompts show it: number, subject, question, lettered options, answer."""
    lines = [f"Seed {number} ({seed.subject or seed.discipline}): {_clip(seed.question)}"]
    if seed.options:
        lines += [f"  {chr(65 + j)}. {opt}" for j, opt in enumerate(seed.options)]
    letter = f"{seed.answer_letter}. " if seed.options and seed.answer_letter else ""
    lines.append(f"  Answer: {letter}{seed.answer}")
    return "\n".join(lines)


def format_seeds(seeds: Sequence[Seed]) -> str:
    """Seeds numbered from 1, a blank line apart; "(none)" when there are none."""
    return "\n\n".join(format_seed(i, s) for i, s in enumerate(seeds, 1)) or "(none)"


def format_item(item: Item, *, with_answer: bool = True) -> str:
    """A generated item as raters, rewriters and checkers see it."""
    lines = [f"Question: {item.question.strip()}"]
    if item.options:
        lines.append("Options:")
        lines += [f"{chr(65 + j)}. {o}" for j, o in enumerate(item.options)]
    if with_answer:
        lines.append(f"Answer: {item.answer}")
    return "\n".join(lines)
