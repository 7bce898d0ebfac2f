"""The decontamination reference: how files are read, which rows are kept, and where n-grams start and stop."""

import json

import pytest

from linkqa_core.errors import ConfigError, InputError
from linkqa_core.quality.reference import Reference, load_reference
from linkqa_core.records import BadRow

TEXT = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi"  # 14 words


def jsonl(*rows):
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode()


# -- the index ------------------------------------------------------------------------------


def test_from_texts_defaults_to_thirteen_word_grams_named_reference():
    ref = Reference.from_texts([TEXT])
    assert (ref.name, ref.decontam_ngram, ref.items, ref.ngrams) == ("reference", 13, 1, 2)


@pytest.mark.parametrize("n", [2, 101, 2.5])
def test_from_texts_refuses_a_gram_size_outside_three_to_a_hundred(n):
    with pytest.raises(ConfigError) as err:
        Reference.from_texts([TEXT], decontam_ngram=n)
    assert str(err.value) == f"decontam_ngram must be a whole number from 3 to 100 (got {n!r})"


@pytest.mark.parametrize("n", [3, 100])
def test_from_texts_accepts_the_bounds(n):
    assert Reference.from_texts([TEXT], decontam_ngram=n).decontam_ngram == n


def test_a_text_exactly_n_words_long_is_one_gram_and_matches_itself():
    ref = Reference.from_texts(["one two three"], decontam_ngram=3)
    assert ref.ngrams == 1
    assert ref.match("one two three") == 1
    assert ref.match("so: one two three!") == 1
    assert ref.match("two three") is None  # shorter than n: nothing to compare
    assert Reference.from_texts(["one two three four"], decontam_ngram=3).ngrams == 2
    assert Reference.from_texts(["one two"], decontam_ngram=3).ngrams == 0


def test_a_gram_is_found_at_the_very_end_of_the_text():
    ref = Reference.from_texts(["x y one two three"], decontam_ngram=3)
    assert ref.match("a b c d one two three") == 1
    assert ref.match("a b c d one two") is None


# -- reading files ----------------------------------------------------------------------------


def test_uploaded_bytes_without_a_name_are_called_reference():
    with pytest.raises(InputError, match="^reference is empty$"):
        load_reference(b"  \n ")


def test_a_folder_is_not_a_reference_file(tmp_path):
    with pytest.raises(InputError) as err:
        load_reference(tmp_path)
    assert str(err.value) == f"{tmp_path} is a directory, not a reference file"


def test_a_nul_byte_first_is_binary_at_byte_zero():
    with pytest.raises(InputError, match=r"^ref is not a text file \(binary content at byte 0\)$"):
        load_reference(b"\x00" + TEXT.encode(), name="ref")


def test_a_nul_byte_beyond_the_first_8_kb_is_not_looked_at():
    data = (TEXT + "\n").encode() * 600  # 9,000 bytes
    assert load_reference(data[:8192] + b"\x00" + data[8192:], name="r").items == 600
    with pytest.raises(InputError, match=r"byte 8191\)$"):
        load_reference(data[:8191] + b"\x00" + data[8191:], name="r")


@pytest.mark.parametrize("sep", [b"\t", b"\r\n", b"\x0c"])
def test_tabs_carriage_returns_and_form_feeds_are_text(sep):
    data = sep.join([b"a b c"] * 200) + b"\n" + TEXT.encode()
    assert load_reference(data, name="r").items >= 1


def test_control_characters_are_binary_only_above_one_in_twenty_bytes():
    clean = b"abcdefghij" * 20  # 200 bytes
    ten = bytearray(clean)
    for k in range(10):
        ten[5 + 20 * k] = 1  # ten controls in 200 bytes: 10 * 20 is not above 200
    assert load_reference(bytes(ten), name="r").items == 1
    eleven = bytearray(ten)
    eleven[199] = 2
    with pytest.raises(InputError, match=r"binary content at byte 5\)$"):
        load_reference(bytes(eleven), name="r")
    one = bytearray(clean)
    one[7] = 1
    assert load_reference(bytes(one), name="r").items == 1


def test_cp1252_and_latin1_files_are_decoded_so_their_words_still_match():
    # 0x8a is "Š" in cp1252 (a letter) and a control in latin-1
    ref = load_reference(b"\x8aabc " + TEXT.encode(), name="r")
    assert ref.match("šabc " + " ".join(TEXT.split()[:12])) == 1
    # 0x81 has no cp1252 character: latin-1 reads anything
    ref = load_reference(b"\x81 " + TEXT.encode(), name="r")
    assert ref.match(TEXT) == 1


def test_jsonl_bad_rows_are_kept_with_their_line_and_reason_and_reading_goes_on():
    data = jsonl("{\"question\": \"" + TEXT + "\"}", "{not json", "[1, 2]", {"question": 7}, {"other": "x"},
                 {"question": TEXT + " again"})
    ref = load_reference(data, name="r")
    assert ref.items == 2
    assert ref.bad_rows[0].line == 2 and ref.bad_rows[0].reason.startswith("not valid JSON (")
    assert ref.bad_rows[1:] == [
        BadRow(3, "not a JSON object"),
        BadRow(4, "question field is not text (got int)"),
        BadRow(5, "no question, prompt, problem, input field"),
    ]


def test_an_exact_field_name_wins_and_other_cases_are_found():
    ref = load_reference(jsonl({"question": TEXT, "Question": "other words entirely here"}), name="r")
    assert ref.match(TEXT) == 1
    ref = load_reference(jsonl({"Question": TEXT}, {"PROMPT": "one two three four five six seven eight nine ten"
                                                     " eleven twelve thirteen"}), name="r")
    assert (ref.items, ref.match(TEXT), ref.match("one two three four five six seven eight nine ten eleven twelve"
                                                   " thirteen")) == (2, 1, 2)


def test_a_first_line_that_only_looks_like_json_makes_a_plain_text_file():
    ref = load_reference(("{not json " + TEXT + "\n" + TEXT).encode(), name="r")
    assert ref.items == 2 and not ref.bad_rows and ref.match(TEXT) == 1


def test_a_json_line_may_start_with_spaces():
    ref = load_reference(b"   " + jsonl({"question": TEXT}), name="r")
    assert ref.items == 1 and ref.match(TEXT) == 1


def test_a_json_file_whose_first_line_starts_with_spaces_is_read_as_json():
    ref = load_reference(b"   " + jsonl({"question": TEXT}, "{broken"), name="r")
    assert ref.items == 1 and [b.line for b in ref.bad_rows] == [2]
