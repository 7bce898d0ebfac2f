"""Uploaded seed files before they are imported: preview, column mapping, the subject ->
discipline table, and the import itself. UI-free (no Streamlit), so it is tested directly.

>>> mapping_from_choices({"question": "Prompt", "answer": "(none)", "options": ["A", "B"]})
{'question': 'Prompt', 'answer': '', 'options': ['A', 'B']}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from linkqa_core.errors import InputError
from linkqa_core.records import IngestReport
from linkqa_core.store import Store

__all__ = ["UploadPreview", "preview_upload", "mapping_from_choices", "import_upload", "DisciplineValue",
           "discipline_plan", "ingest_mapping", "bad_rows_table"]

Progress = Any  # progress(done, total, message)


@dataclass
class UploadPreview:
    """What an uploaded file looks like before import."""

    filename: str
    columns: list[str]
    rows: list[dict[str, Any]]
    mapping: dict[str, Any]  # the guessed mapping, field -> column or [columns]
    size: int = 0
    options_hint: str = field(default="")


def preview_upload(data: bytes, filename: str, n: int = 5) -> UploadPreview:
    """Columns, first rows and the guessed mapping of an uploaded file; InputError if unreadable."""
    from linkqa_core.ingest.load import guess_mapping, peek

    if not data:
        raise InputError(f"{filename} is empty")
    columns, rows = peek(data, filename=filename, n=n)
    mapping = guess_mapping(columns) if columns else {}
    return UploadPreview(filename, [str(c) for c in columns], rows, dict(mapping), len(data))


def mapping_from_choices(choices: Mapping[str, Any]) -> dict[str, Any]:
    """Selectbox choices (``"(none)"`` or ``None`` = unmapped) as an explicit ``mapping=``."""
    out: dict[str, Any] = {}
    for fld, value in choices.items():
        if value in (None, "", "(none)") or value == []:
            out[fld] = ""
        elif isinstance(value, (list, tuple)):
            out[fld] = list(value)
        else:
            out[fld] = str(value)
    return out


def import_upload(store: Store, data: bytes, filename: str, mapping: Mapping[str, Any] | None = None,
                  progress: Progress | None = None, discipline_map: Mapping[str, str] | None = None) -> IngestReport:
    """Ingest uploaded bytes; the whole file or nothing (raises InputError on a bad file).

    ``discipline_map`` sets the discipline of rows by their subject/discipline value.
    """
    from linkqa_core.ingest.load import ingest

    if not data:
        raise InputError(f"{filename} is empty")
    mapping, discipline_map = ingest_mapping(mapping or {}, discipline_map or {})
    return ingest(store, data, filename=filename, mapping=mapping or None, progress=progress,
                  discipline_map=discipline_map or None)


@dataclass(frozen=True)
class DisciplineValue:
    """A subject or discipline value of an uploaded file: how many rows carry it and the
    discipline proposed for it (``None``: no good match, such rows go to "Other")."""

    value: str
    rows: int
    proposed: str | None


def _match_discipline(value: str) -> str | None:
    """The taxonomy's matcher when the engine has it, else the subject table / keywords."""
    from linkqa_core import taxonomy

    match = getattr(taxonomy, "match_discipline", None)
    if match is not None:
        return match(value)
    found = taxonomy.discipline_for(value)
    return None if found == "Other" and " ".join(value.split()).lower() != "other" else found


def discipline_plan(data: bytes, filename: str, mapping: Mapping[str, Any] | None,
                    limit: int = 200) -> tuple[list[DisciplineValue], str | None]:
    """The distinct subject/discipline values of an upload with their rows and proposals,
    and the column they come from (``None`` when the mapping names neither).

    Uses ``linkqa_core.ingest.load.discipline_values`` when the engine has it; else reads
    the file once here (the same rows :func:`import_upload` would keep).
    """
    from linkqa_core.ingest import load

    mapping = dict(mapping or {})
    column = mapping.get("discipline") or mapping.get("subject") or None
    if not column:
        return [], None
    engine = getattr(load, "discipline_values", None)
    if engine is not None:
        rows = engine(data, filename=filename, mapping=mapping, limit=limit)
        return [DisciplineValue(str(v), int(n), d) for v, n, d in rows], column
    result = load.load_seeds(data, filename=filename, mapping=mapping)
    counts: dict[str, int] = {}
    for seed in result.seeds:
        value = seed.discipline if mapping.get("discipline") else seed.subject
        if value:
            counts[value] = counts.get(value, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [DisciplineValue(v, n, _match_discipline(v)) for v, n in ranked], column


def ingest_mapping(mapping: Mapping[str, Any], discipline_map: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The column mapping and ``discipline_map`` to give :func:`import_upload`.

    An engine without ``discipline_values`` applies ``discipline_map`` to subjects only
    (a discipline column wins as written): a file with a discipline column and no subject
    column then has that column read as the subject, so the curator's choices apply.
    """
    from linkqa_core.ingest import load

    mapping = dict(mapping)
    if (discipline_map and not hasattr(load, "discipline_values") and mapping.get("discipline")
            and not mapping.get("subject")):
        mapping["subject"], mapping["discipline"] = mapping["discipline"], ""
    return mapping, dict(discipline_map)


def bad_rows_table(report: IngestReport, limit: int = 5000) -> list[dict[str, Any]]:
    return [{"line": b.line, "reason": b.reason} for b in report.bad_rows[:limit]]
