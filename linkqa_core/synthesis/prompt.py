"""The synthesis prompt: an editable template, checked before any call is made.

The template is stored with the run; its fields are :data:`TEMPLATE_FIELDS`.
"""

from __future__ import annotations

import string
from typing import Any

from ..errors import ConfigError
from ..prompting import format_seeds
from ..records import Bundle

__all__ = ["DEFAULT_TEMPLATE", "TEMPLATE_FIELDS", "ITEM_SCHEMA", "check_template", "render_prompt"]

DEFAULT_TEMPLATE = """You write new exam questions that need several pieces of knowledge at once.

Knowledge points, in the order they link: {kps}
Discipline: {discipline}
Target difficulty (1 = easy, 5 = very hard): {difficulty}

Seed questions that together cover these knowledge points:
{seeds}

Write {n_items} new, self-contained question(s) in {discipline}. Each must combine at least
two of the knowledge points above, must not copy a seed, and must have one correct answer
that follows from the knowledge in the seeds. {format_rules}

Answer with JSON only, in this form:
{{"items": [{{"question": "...", "options": ["...", "...", "...", "..."], "answer": "<the correct option's text>",
"solution": "<worked solution>", "kps_used": ["..."], "difficulty": 1-5}}]}}"""

TEMPLATE_FIELDS = ("kps", "discipline", "difficulty", "seeds", "n_items", "format_rules")
_MC_RULES = "Give four options (A-D) with exactly one correct; 'answer' is the correct option's text."
_OPEN_RULES = "Give no options: an open question with a short, checkable final answer ('options': [])."

ITEM_SCHEMA: dict[str, Any] = {
    "name": "qa_items",
    "schema": {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "question": {"type": "string"},
                        "options": {"type": "array", "items": {"type": "string"}},
                        "answer": {"type": "string"},
                        "solution": {"type": "string"},
                        "kps_used": {"type": "array", "items": {"type": "string"}},
                        "difficulty": {"type": "number"},
                    },
                    "required": ["question", "answer", "solution"],
                },
            }
        },
        "required": ["items"],
    },
}


def check_template(template: str) -> None:
    """Refuse templates with unknown or malformed placeholders before any call is made."""
    try:
        names = {f[1] for f in string.Formatter().parse(template) if f[1] is not None}
    except ValueError as err:
        raise ConfigError(f"the prompt template is malformed: {err} (write literal braces as {{{{ and }}}})") from None
    unknown = names - set(TEMPLATE_FIELDS)
    if unknown:
        raise ConfigError(
            f"the prompt template uses unknown field(s) {', '.join(sorted('{' + n + '}' for n in unknown))}; "
            f"known: {', '.join('{' + n + '}' for n in TEMPLATE_FIELDS)}"
        )
    if "seeds" not in names or "kps" not in names:
        raise ConfigError("the prompt template must contain {kps} and {seeds}")


def render_prompt(template: str, bundle: Bundle, n_items: int, difficulty: float, multiple_choice: bool) -> str:
    return template.format(
        kps=" -> ".join(bundle.kps),
        discipline=bundle.discipline,
        difficulty=f"{difficulty:g}",
        seeds=format_seeds(bundle.seeds),
        n_items=n_items,
        format_rules=_MC_RULES if multiple_choice else _OPEN_RULES,
    )
