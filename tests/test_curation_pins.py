"""Export, pinned where mutation testing found the other curation tests blind: the file is
UTF-8 whatever the locale, and a part file that is already gone when an export fails does
not hide the reason it failed."""

from __future__ import annotations

import json
import locale
from pathlib import Path

import pytest

from linkqa_core.curation import export as ex
from linkqa_core.errors import InputError


@pytest.fixture
def ascii_locale():
    """The process's text encoding set to ASCII (the C locale) for the test, then put back."""
    before = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    try:
        yield
    finally:
        locale.setlocale(locale.LC_CTYPE, before)


def test_an_export_is_utf8_even_where_the_locale_is_ascii(tmp_path, ascii_locale):
    record = {"question": "Quelle enzyme catalyse l'hydrolyse de l'amidon ? (α-amylase, ≥ 37 °C)"}
    out = tmp_path / "out.jsonl"
    assert ex.write_jsonl(iter([record]), out) == 1
    data = out.read_bytes()
    assert "α-amylase, ≥ 37 °C".encode("utf-8") in data  # written as text, not as \u escapes
    assert json.loads(data.decode("utf-8")) == record


def _records_that_lose_their_part_file(folder: Path, error: BaseException):
    """One record, then the part file removed (a cleaner, another process), then ``error``."""
    yield {"a": 1}
    for part in folder.glob("*.part"):
        part.unlink()
    raise error


def test_a_failed_write_whose_part_file_is_already_gone_still_says_why(tmp_path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(InputError) as err:
        ex.write_jsonl(_records_that_lose_their_part_file(tmp_path, OSError(5, "Input/output error")), out)
    assert str(err.value) == f"cannot write {out}: Input/output error"
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_export_whose_part_file_is_already_gone_raises_the_interruption(tmp_path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        ex.write_jsonl(_records_that_lose_their_part_file(tmp_path, KeyboardInterrupt()), out)
    assert list(tmp_path.iterdir()) == []
