"""Text as the gates compare it: folded tokens, word shingles, Jaccard similarity.

>>> sorted(shingles("The cat sat on the mat.", 3))
['cat sat on', 'on the mat', 'sat on the', 'the cat sat']
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any, Sequence

__all__ = ["shingles", "shingles_of", "bag_of", "jaccard", "item_shingles", "exact_key", "question_key", "word_bag", "norm_answer", "words",
           "tokens", "short",
           "fmt_sim"]

# Words, plus symbols that change meaning (+ - * / = < > ^ % ...); sentence punctuation and
# quotes are dropped so that "What is 2+2?" and "what is 2 + 2" compare equal while
# "2+2" and "2-2" do not.
_TOKEN = re.compile(r"\w+|[^\w\s.,;:!?'\"`“”‘’«»…]")
_WORD = re.compile(r"\w+")
_TRAILING = ".,;:!?。．"


def fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(fold(text))


def words(text: str) -> list[str]:
    """Lower-case words with punctuation stripped: the unit of decontamination n-grams."""
    return _WORD.findall(fold(text))


def norm_answer(text: str) -> str:
    """Whitespace-, case- and trailing-punctuation-insensitive form of an answer or option."""
    return " ".join(fold(text).split()).rstrip(_TRAILING).strip()


def short(text: Any, limit: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shingles(text: str, size: int = 3) -> set[str]:
    """Word ``size``-grams of ``text`` (case and sentence punctuation ignored).

    A text shorter than ``size`` words is one shingle of all its words, so that short
    options still count.

    >>> sorted(shingles("The cat sat on the mat.", 3))
    ['cat sat on', 'on the mat', 'sat on the', 'the cat sat']
    """
    return shingles_of(tokens(text), size)


def shingles_of(toks: Sequence[str], size: int = 3) -> set[str]:
    """:func:`shingles` of text already cut into :func:`tokens`."""
    if not toks:
        return set()
    if len(toks) <= size:
        return {" ".join(toks)}
    return {" ".join(toks[i : i + size]) for i in range(len(toks) - size + 1)}


def jaccard(a: set[Any], b: set[Any]) -> float:
    """|a ∩ b| / |a ∪ b|; 0.0 when both are empty (nothing to compare is not a duplicate)."""
    if not a and not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def item_shingles(question: str, options: Sequence[str] | None, size: int) -> set[str]:
    """Shingles of the question and of each option separately, so option order is irrelevant."""
    out = shingles(question, size)
    for opt in options or ():
        out |= shingles(opt, size)
    return out


def exact_key(question: str, options: Sequence[str] | None) -> str:
    """Normalised question plus the sorted normalised options: equal means the same item."""
    opts = sorted(" ".join(tokens(o)) for o in options or ())
    return "\x1e".join([" ".join(tokens(question)), *opts])


def fmt_sim(value: float) -> str:
    """Two decimals, rounded down, so a reported 0.80 is never really 0.7999."""
    return f"{math.floor(value * 100 + 1e-9) / 100:.2f}"



def question_key(question: str) -> str:
    """The question's tokens alone: equal means the same question whatever the options."""
    return " ".join(tokens(question))


def word_bag(text: str) -> set[str]:
    """The text's tokens as a bag (a repeated token counts again: ``the``, ``the#2``), order ignored.

    >>> sorted(word_bag("the cat saw the dog"))
    ['cat', 'dog', 'saw', 'the', 'the#2']
    """
    return bag_of(tokens(text))


def bag_of(toks: Sequence[str]) -> set[str]:
    """:func:`word_bag` of text already cut into :func:`tokens`."""
    seen: dict[str, int] = {}
    out = set()
    for tok in toks:
        k = seen[tok] = seen.get(tok, 0) + 1
        out.add(tok if k == 1 else f"{tok}#{k}")
    return out
