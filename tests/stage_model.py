"""A fake model that reads the prompts of LinkQA's stages and answers each plausibly.

Give it to :class:`~openai_server.FakeOpenAI` as the responder. It recognises the prompt
of every model-backed stage from the prompt text alone and answers valid JSON derived
from it, the way a competent model would:

==================  ===================================================================
stage               answer
==================  ===================================================================
``synthesis``       ``{"items": [...]}``: as many items as asked; each joins two path
                    KPs and two seeds, reuses short pieces of their wording (never a
                    copy, never 10+ words in a row), takes its options and answer from
                    a seed, so the answer follows from the seeds
``kps``             ``{"seeds": [...]}``: one entry per numbered seed; 2-3 KPs that are
                    phrases of that seed's own text, a discipline from the prompt's
                    list, a difficulty from the question's length
``kps-repair``      the entries the repair request asks for
``difficulty-rate`` ``{"difficulty": 1-5, "why": ...}`` from words, steps and constraints
``difficulty-rewrite`` the item made harder as the operation says (same options and
                    answer, a new KP joined when asked)
``difficulty-check`` ``{"answer": ...}``: the answer of an item it wrote, else its best guess
``difficulty-judge`` ``{"verdict": "yes", "why": ...}``
==================  ===================================================================

It misbehaves on request, deterministically: ``misbehave`` maps a kind from
:data:`MISBEHAVIOURS` to N, and the misbehaviour happens on every N-th request of the
stages it concerns (1 = always), counted per stage in arrival order::

    model = StageModel(misbehave={"fewer_items": 1, "copy_seed": 2})
    with FakeOpenAI(model, profile="prose") as srv:
        ...
    model.log    # [("synthesis", ("fewer_items",)), ("synthesis", ("fewer_items", "copy_seed")), ...]

The server's profile then applies its own quirks to these answers (prose and fences,
``<think>``, ``reasoning_content``, blank JSON-mode content).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from openai_specs import Answer

__all__ = ["StageModel", "MISBEHAVIOURS", "STAGES", "SeedText", "stage_of"]

STAGES = ("synthesis", "kps", "kps-repair", "difficulty-rate", "difficulty-rewrite", "difficulty-check",
          "difficulty-judge")

MISBEHAVIOURS: dict[str, tuple[str, tuple[str, ...]]] = {
    "more_items": ("one synthesis item more than asked", ("synthesis",)),
    "fewer_items": ("one synthesis item fewer than asked (an empty list when one was asked)", ("synthesis",)),
    "copy_seed": ("the first synthesis item is seed 1 copied verbatim", ("synthesis",)),
    "letter_answer": ("answers give the option letter ('B') instead of its text", ("synthesis", "difficulty-check")),
    "drop_seed": ("a KP batch answer leaves out its last seed; the repair answers it", ("kps",)),
    "drop_seed_always": ("the last seed is left out of the batch answer and of the repair", ("kps", "kps-repair")),
    "example_kps": ("every seed's KPs are the prompt's own examples", ("kps", "kps-repair")),
    "judge_no": ("the judge says no", ("difficulty-judge",)),
    "truncated": ("the JSON is cut off halfway, with finish_reason 'length'", STAGES),
}
"""kind -> (what happens, the stages it concerns)."""

_EXAMPLE_KPS = ("Bayes' theorem", "Le Chatelier's principle", "price elasticity of demand")

_STOP = frozenset("""a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each either few for from further given had has
have having he her here hers him his how i if in into is it its itself just least let like many may me might more
most much must my neither no nor not now of off on once one only or other our out over own per same she should so
some such than that the their them then there these they this those through to too two under until up upon us very
was we were what when where whether which while who whom whose why will with would you your yours following
statement statements true false best describes correct answer question choose select value find determine
take takes taken took place give gives given gave make makes made use used uses get gets occur occurs cause causes
happen happens show shows mean means called known become becomes describe contain contains produce produces absorb
absorbs capture captures increase increases decrease decreases lead leads result results""".split())

_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*[A-Za-z]|[A-Za-z]")

_DISCIPLINE_WORDS = (
    ("Mathematics", ("math", "algebra", "calculus", "geometry", "statistics", "probability", "number")),
    ("Physics", ("physics", "astronomy", "mechanics")),
    ("Chemistry", ("chemistry", "chemical")),
    ("Biology", ("biology", "genetics", "anatomy", "virology", "ecology")),
    ("Medicine & Health", ("medicine", "medical", "clinical", "nutrition", "health", "nursing")),
    ("Computer Science", ("computer", "machine learning", "security", "programming")),
    ("Engineering", ("engineering", "electrical")),
    ("Economics & Business", ("economics", "econometrics", "accounting", "marketing", "management", "business")),
    ("Law", ("law", "jurisprudence", "legal")),
    ("Philosophy & Religion", ("philosophy", "religion", "moral", "logic")),
    ("History", ("history", "prehistory")),
    ("Social Sciences", ("psychology", "sociology", "politics", "geography", "policy", "relations", "sexuality")),
)


@dataclass
class SeedText:
    """A seed as a prompt shows it: its number, subject, question, options and answer."""

    number: int
    subject: str
    question: str
    options: list[str] = field(default_factory=list)
    answer: str = ""


# -- reading prompts ---------------------------------------------------------------------------

_SYN_SEED = re.compile(r"^Seed (\d+) \((.*?)\): ", re.M)
_KPS_SEED = re.compile(r"^Seed (\d+) \(subject: (.*?)\):\n", re.M)
_OPTION_LINE = re.compile(r"^\s*([A-Z])\. (.*)$")


def _texts(body: Any) -> list[tuple[str, str]]:
    out = []
    for m in (body.get("messages") or []) if isinstance(body, dict) else []:
        if isinstance(m, dict):
            c = m.get("content")
            if isinstance(c, list):
                c = "\n".join(str(p.get("text", "")) for p in c if isinstance(p, dict))
            out.append((str(m.get("role")), c if isinstance(c, str) else ""))
    return out


def stage_of(body: Any) -> Optional[str]:
    """Which of our stages a request comes from, read from its prompt (``None``: not ours)."""
    msgs = _texts(body)
    users = [t for r, t in msgs if r == "user"]
    if not users:
        return None
    last = users[-1].lstrip()
    if any(r == "assistant" for r, _ in msgs) and last.startswith("That answer cannot be used"):
        return "kps-repair"
    if last.startswith("Name the knowledge points"):
        return "kps"
    for prefix, stage in (("Rewrite this exam question", "difficulty-rewrite"),
                          ("Rate the difficulty", "difficulty-rate"), ("Answer this", "difficulty-check"),
                          ("Judge whether", "difficulty-judge")):
        if last.startswith(prefix):
            return stage
    if _SYN_SEED.search(last) and '"items"' in last:
        return "synthesis"
    return None


def _blocks(text: str, head: re.Pattern[str], stop: Optional[str] = None) -> list[tuple[re.Match[str], str]]:
    starts = list(head.finditer(text))
    out = []
    for k, m in enumerate(starts):
        end = starts[k + 1].start() if k + 1 < len(starts) else len(text)
        block = text[m.end():end]
        if stop and k + 1 == len(starts) and stop in block:
            block = block[: block.index(stop)]
        out.append((m, block.rstrip()))
    return out


def synthesis_seeds(text: str) -> list[SeedText]:
    """Seeds as ``render_prompt`` and the rewrite/judge prompts list them."""
    seeds = []
    for m, block in _blocks(text, _SYN_SEED, stop="\n\n"):
        question_lines, options, answer = [], [], ""
        for line in block.split("\n"):
            opt = _OPTION_LINE.match(line) if line.startswith("  ") else None
            if opt and not answer:
                options.append(opt.group(2).strip())
            elif line.startswith("  Correct: "):
                answer = re.sub(r"^[A-Z]\. ", "", line[len("  Correct: "):]).strip()
            elif line.startswith("  Answer: "):
                answer = line[len("  Answer: "):].strip()
                if options:  # "Answer: B. CO2" names the option by letter too
                    answer = re.sub(r"^[A-Z]\. ", "", answer)
            elif not options and not answer:
                question_lines.append(line)
        seeds.append(SeedText(int(m.group(1)), m.group(2), "\n".join(question_lines).strip(), options, answer))
    return seeds


def kp_seeds(text: str) -> list[SeedText]:
    """Seeds as ``render_batch_prompt`` numbers them."""
    seeds = []
    for m, block in _blocks(text, _KPS_SEED):
        question, options, answer = [], [], ""
        for line in block.split("\n"):
            if line.startswith("Question: "):
                question.append(line[len("Question: "):])
            elif line.startswith("Options: "):
                options = [re.sub(r"^[A-Z]\. ", "", o) for o in line[len("Options: "):].split("; ")]
            elif line.startswith("Answer: "):
                answer = line[len("Answer: "):]
            elif question and not options and not answer:
                question.append(line)
        seeds.append(SeedText(int(m.group(1)), m.group(2), "\n".join(question).strip(), options, answer.strip()))
    return seeds


def _item_block(text: str) -> tuple[str, list[str], str]:
    """Question, options and stated answer of an item shown as ``Question: ... Options: ... Answer: ...``."""
    m = re.search(r"^Question: (.*?)(?=^Options:|^Answer:|^Solution:|^Worked solution:|\Z)", text, re.S | re.M)
    question = m.group(1).strip() if m else ""
    options: list[str] = []
    o = re.search(r"^Options:\n((?:[A-Z]\. .*\n?)+)", text, re.M)
    if o:
        options = [line[3:].strip() for line in o.group(1).strip().split("\n")]
    a = re.search(r"^Answer: (.*)$", text, re.M)
    return question, options, a.group(1).strip() if a else ""


# -- writing answers ---------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _content(word: str) -> bool:
    w = word.lower()
    return len(w) >= 3 and w not in _STOP and not w.startswith(("'", "-")) and not w.endswith("ly")


def seed_phrases(seed: SeedText, limit: int = 3) -> list[str]:
    """Up to ``limit`` KP-like phrases that occur in the seed's own text (question, then
    answer): runs of two content words first, then single longer words."""
    found: list[str] = []
    for source in (seed.question, seed.answer):
        words = _words(source)
        runs: list[list[str]] = [[]]
        for w in words:
            if _content(w):
                runs[-1].append(w)
            elif runs[-1]:
                runs.append([])
        for run in runs:
            for i in range(len(run) - 1):
                phrase = f"{run[i]} {run[i + 1]}".lower()
                if phrase in source.lower() and phrase not in found:
                    found.append(phrase)
        if len(found) >= limit:
            break
    if len(found) < limit:
        for w in sorted((w for w in _words(seed.question + " " + seed.answer) if _content(w) and len(w) >= 5),
                        key=len, reverse=True):
            if w.lower() not in found and not any(w.lower() in f.split() for f in found):
                found.append(w.lower())
            if len(found) >= limit:
                break
    if len(found) < 2:  # a tiny seed: the subject words are in its block too
        found += [w.lower() for w in _words(seed.subject) if w.lower() not in found][: 2 - len(found)]
    while len(found) < 2:
        found.append(f"{(found or ['topic'])[0]} basics")
    return found[:limit]


def _discipline(subject: str, allowed: list[str]) -> str:
    key = subject.replace("_", " ").lower()
    for name in allowed:
        if name.lower() == key:
            return name
    for name, words in _DISCIPLINE_WORDS:
        if name in allowed and any(w in key for w in words):
            return name
    return "Other" if "Other" in allowed else (allowed[0] if allowed else "Other")


def _level(question: str) -> int:
    words = len(question.split())
    steps = len(re.findall(r"\b(?:step|part)\s*\d", question, re.I))
    constraints = len(re.findall(r"\b(?:assume|must|only if|given that|at least|at most)\b", question, re.I))
    return int(min(5, max(1, round(1 + words / 40 + 0.5 * steps + 0.5 * constraints))))


def _clip(text: str, n: int, *, tail: bool = False) -> str:
    words = " ".join(text.split()).rstrip("?.!:,;").split(" ")
    part = words[-n:] if tail else words[:n]
    return " ".join(part)


def _norm(text: str) -> str:
    return " ".join(_words(text.lower()))


@dataclass
class StageModel:
    """The fake model (a ``FakeOpenAI`` responder). ``misbehave``: kind -> every N-th.

    ``reasoning=True`` gives every answer a short ``reasoning_content``, as a reasoning
    model's answers have. :attr:`log` lists ``(stage, misbehaviours applied)`` per
    answered request; :attr:`counts` counts requests per stage.
    """

    misbehave: Mapping[str, int] = field(default_factory=dict)
    reasoning: bool = False
    log: list[tuple[str, tuple[str, ...]]] = field(default_factory=list, init=False)
    counts: Counter = field(default_factory=Counter, init=False)

    def __post_init__(self) -> None:
        for kind, every in self.misbehave.items():
            if kind not in MISBEHAVIOURS:
                raise ValueError(f"unknown misbehaviour {kind!r}; known: {', '.join(MISBEHAVIOURS)}")
            if not isinstance(every, int) or every < 1:
                raise ValueError(f"misbehave[{kind!r}] must be N >= 1 (every N-th request), got {every!r}")
        self._lock = threading.Lock()
        self._answers: dict[str, str] = {}  # normalised question -> answer text, for items it wrote
        self._levels: dict[str, int] = {}  # normalised question -> level, for its rewrites (parent + 1)

    def __call__(self, body: Any) -> Optional[Answer]:
        stage = stage_of(body)
        if stage is None:
            return None
        with self._lock:
            self.counts[stage] += 1
            k = self.counts[stage]
            faults = tuple(kind for kind, every in self.misbehave.items()
                           if stage in MISBEHAVIOURS[kind][1] and k % every == 0)
            self.log.append((stage, faults))
        texts = _texts(body)
        users = [t for r, t in texts if r == "user"]
        data = getattr(self, "_" + stage.replace("-", "_"))(users, faults)
        text = json.dumps(data, ensure_ascii=False)
        why = f"Answering the {stage} request from its prompt." if self.reasoning else None
        if "truncated" in faults:
            return Answer(text[: max(1, len(text) // 2)], reasoning_content=why, finish_reason="length")
        return Answer(text, reasoning_content=why)

    def _remember(self, question: str, answer: str) -> None:
        with self._lock:
            self._answers[_norm(question)] = answer

    # -- synthesis ---------------------------------------------------------------------------

    def _synthesis(self, users: list[str], faults: tuple[str, ...]) -> dict:
        text = users[-1]
        seeds = synthesis_seeds(text) or [SeedText(1, "", "the topic", [], "unknown")]
        m = re.search(r"\b(\d+) new\b", text)
        n = int(m.group(1)) if m else 1
        n += 1 if "more_items" in faults else 0
        n -= 1 if "fewer_items" in faults else 0
        kps_line = re.search(r"^Knowledge points, in the order they link: (.*)$", text, re.M)
        kps = [k.strip() for k in kps_line.group(1).split("->")] if kps_line else []
        kps = [k for k in kps if k] or seed_phrases(seeds[0])
        disc = re.search(r"^Discipline: (.*)$", text, re.M)
        discipline = disc.group(1).strip() if disc else "general"
        target = re.search(r"difficulty \(1 = easy, 5 = very hard\): ([\d.]+)", text)
        difficulty = float(target.group(1)) if target else 3.0
        multiple_choice = "Give no options" not in text
        items = []
        for k in range(max(0, n)):
            if k == 0 and "copy_seed" in faults:
                a = seeds[0]
                item = {"question": a.question, "options": a.options if multiple_choice else [], "answer": a.answer,
                        "solution": f"As seed {a.number} says: {a.answer}.", "kps_used": kps[:2],
                        "difficulty": difficulty}
            else:
                item = self._compose(seeds[k % len(seeds)], seeds[(k + 1) % len(seeds)], kps, k, discipline,
                                     difficulty, multiple_choice)
            self._remember(item["question"], item["answer"])
            if "letter_answer" in faults and item["options"] and item["answer"] in item["options"]:
                item["answer"] = chr(65 + item["options"].index(item["answer"]))
            items.append(item)
        return {"items": items}

    @staticmethod
    def _compose(a: SeedText, b: SeedText, kps: list[str], k: int, discipline: str, difficulty: float,
                 multiple_choice: bool) -> dict:
        kp1, kp2 = kps[k % len(kps)], kps[(k + 1) % len(kps)]
        question = (f"Question {k + 1}, joining {kp1} with {kp2} in {discipline}: someone who has settled "
                    f"\"{_clip(a.question, 8)} ...\" (answer: {_clip(a.answer, 8)}) must now take a second step. "
                    f"In that combined setting, what is the answer to \"... {_clip(b.question, 9, tail=True)}\"?")
        answer = b.answer or a.answer or "unknown"
        options: list[str] = []
        if multiple_choice:
            options = list(dict.fromkeys(b.options)) if len(set(b.options)) >= 2 else []
            if answer not in options:
                fillers = [a.answer, f"not {answer}", "none of these", "all of these"]
                options = list(dict.fromkeys([answer] + [f for f in fillers if f and f != answer]))[:4]
        solution = (f"Seed {a.number} gives {_clip(a.answer, 8)}; seed {b.number} then gives {answer}. "
                    f"Using {kp1} and {kp2} together, the answer is {answer}.")
        return {"question": question, "options": options, "answer": answer, "solution": solution,
                "kps_used": [kp1, kp2] if kp1 != kp2 else [kp1], "difficulty": difficulty}

    # -- knowledge points ----------------------------------------------------------------------

    @staticmethod
    def _kp_entries(text: str, numbers: list[int], faults: tuple[str, ...]) -> list[dict]:
        seeds = {s.number: s for s in kp_seeds(text)}
        listed = re.search(r"exactly one of: (.*?);\n", text)
        allowed = [d.strip() for d in listed.group(1).split(",")] if listed else []
        examples = re.search(r"would list it \((.*?)\)", text, re.S)
        example_kps = re.findall(r'"([^"]+)"', examples.group(1)) if examples else list(_EXAMPLE_KPS)
        out = []
        for number in numbers:
            seed = seeds.get(number)
            if seed is None:
                continue
            kps = list(example_kps) if "example_kps" in faults else seed_phrases(seed)
            out.append({"index": number, "kps": kps, "discipline": _discipline(seed.subject, allowed),
                        "difficulty": _level(seed.question)})
        return out

    def _kps(self, users: list[str], faults: tuple[str, ...]) -> dict:
        numbers = [s.number for s in kp_seeds(users[-1])]
        if ("drop_seed" in faults or "drop_seed_always" in faults) and len(numbers) > 1:
            numbers = numbers[:-1]
        return {"seeds": self._kp_entries(users[-1], numbers, faults)}

    def _kps_repair(self, users: list[str], faults: tuple[str, ...]) -> dict:
        wanted = re.search(r"Give an entry for seed\(s\) ([\d, ]+)", users[-1])
        first = users[0]
        numbers = [int(x) for x in wanted.group(1).replace(" ", "").split(",") if x] if wanted else \
            [s.number for s in kp_seeds(first)]
        if "drop_seed_always" in faults:
            last = max(s.number for s in kp_seeds(first)) if kp_seeds(first) else None
            numbers = [x for x in numbers if x != last]
        return {"seeds": self._kp_entries(first, numbers, faults)}

    # -- difficulty ------------------------------------------------------------------------------

    def _difficulty_rate(self, users: list[str], faults: tuple[str, ...]) -> dict:
        question, _, _ = _item_block(users[-1])
        with self._lock:
            level = self._levels.get(_norm(question)) or _level(question)
        return {"difficulty": level, "why": f"{len(question.split())} words and the steps it asks for: level {level}."}

    def _difficulty_rewrite(self, users: list[str], faults: tuple[str, ...]) -> dict:
        text = users[-1]
        op = re.search(r"^Operation: (.*)$", text, re.M)
        operation = op.group(1) if op else ""
        path = re.search(r"^Knowledge points of the path, in order: (.*)$", text, re.M)
        path_kps = [k.strip() for k in path.group(1).split("->")] if path and path.group(1) != "(none)" else []
        used = re.search(r"^Knowledge points the question uses now: (.*)$", text, re.M)
        kps_used = [k.strip() for k in used.group(1).split(",")] if used and used.group(1) != "(none)" else []
        parent = text.split("The question (difficulty", 1)[-1]
        question, options, answer = _item_block(parent)
        seeds = synthesis_seeds(text.split("The question (difficulty", 1)[0])
        joined = re.search(r"also need '(.*?)'", operation)
        kp = joined.group(1) if joined else next((k for k in path_kps if k not in kps_used), None) or \
            (path_kps or kps_used or ["the main idea"])[0]
        detail = seed_phrases(seeds[0])[0] if seeds else kp
        tag = hashlib.sha256(question.encode()).hexdigest()[:6]
        if operation.startswith("Add a constraint"):
            lead = (f"Assume the case must also satisfy a condition set by {kp}, and that only reasoning which "
                    f"accounts for {detail} is accepted (case {tag}).")
        elif operation.startswith("Deepen"):
            lead = f"Through the principle of {kp} that underlies {detail} (case {tag}), explain and then answer."
        elif operation.startswith("Concretise"):
            lead = (f"Take a specific case (case {tag}): 3 samples, 12 units each, where {kp} and {detail} both "
                    "apply.")
        elif operation.startswith("Require more reasoning"):
            lead = (f"Step 1: derive the intermediate result that {kp} gives for {detail} (case {tag}). "
                    "Step 2: use it to answer.")
        else:
            lead = f"This version also needs {kp}: apply {kp} to {detail} first (case {tag}), then answer."
        if seeds:
            lead += f" Recall from seed {seeds[0].number}: \"{_clip(seeds[0].question, 9)} ...\" (answer: " \
                    f"{_clip(seeds[0].answer, 6)})."
        new_question = f"{lead} {question}"
        self._remember(new_question, answer)
        with self._lock:
            self._levels[_norm(new_question)] = min(5, (self._levels.get(_norm(question)) or _level(question)) + 1)
        kps = list(dict.fromkeys(kps_used + [kp]))
        return {"question": new_question, "options": options, "answer": answer,
                "solution": f"First use {kp} on {detail}; then, as before, the answer is {answer}.", "kps_used": kps}

    def _difficulty_check(self, users: list[str], faults: tuple[str, ...]) -> dict:
        question, options, _ = _item_block(users[-1])
        with self._lock:
            known = self._answers.get(_norm(question))
        given = known if known is not None else (options[0] if options else "unknown")
        if "letter_answer" in faults and given in options:
            given = chr(65 + options.index(given))
        return {"answer": given}

    def _difficulty_judge(self, users: list[str], faults: tuple[str, ...]) -> dict:
        if "judge_no" in faults:
            return {"verdict": "no", "why": "The stated answer does not follow from the linked seeds."}
        seeds = synthesis_seeds(users[-1])
        which = f"seed {seeds[0].number}" if seeds else "the seeds"
        return {"verdict": "yes", "why": f"The stated answer follows from {which} with sound reasoning."}
