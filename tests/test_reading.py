"""Contract tests for neuraltab.data.read: delimiters, quoting, encodings, structure errors, null markers, formats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuraltab.errors import DataError
from neuraltab.data.read import NULL_MARKERS, read_table, read_table_and_format
from conftest import Notices, write_file as _write
from neuraltab.data.schema import drop_missing_target, infer_schema




# ======================================================================================================================
# read_table: delimiters, quoting, encodings
# ======================================================================================================================
@pytest.mark.parametrize("delim", [",", ";", "\t", "|"], ids=["comma", "semicolon", "tab", "pipe"])
def test_delimiter_is_sniffed(tmp_path, delim):
    rows = [["age", "city", "score"], ["31", "Paris", "1.5"], ["45", "Lyon", "2.5"], ["27", "Nice", "3.5"]]
    path = _write(tmp_path, "t.csv", "\n".join(delim.join(r) for r in rows) + "\n")
    df = read_table(path)
    assert list(df.columns) == ["age", "city", "score"]
    assert df["age"].tolist() == [31, 45, 27]
    assert df["city"].tolist() == ["Paris", "Lyon", "Nice"]
    assert df["score"].tolist() == [1.5, 2.5, 3.5]


def test_decimal_commas_inside_semicolon_file_do_not_fool_the_sniffer(tmp_path):
    path = _write(tmp_path, "t.csv", 'price;name\n"1,5";a\n"2,5";b\n"3,0";c\n')
    df = read_table(path)
    assert list(df.columns) == ["price", "name"]
    assert df["price"].tolist() == [1.5, 2.5, 3.0]  # and the decimal commas are read as numbers (issue 6)


def test_quoted_delimiters_and_quoted_newlines(tmp_path):
    path = _write(tmp_path, "t.csv", 'id,text,n\n1,"hello, world",3\n2,"two\nlines",4\n3,plain,5\n')
    df = read_table(path)
    assert df.shape == (3, 3)
    assert df["text"].tolist() == ["hello, world", "two\nlines", "plain"]
    assert df["n"].tolist() == [3, 4, 5]


def test_utf8_bom_is_not_part_of_the_first_column_name(tmp_path):
    path = _write(tmp_path, "t.csv", b"\xef\xbb\xbfname,value\ncaf\xc3\xa9,1\nthe,2\n")
    df = read_table(path)
    assert list(df.columns) == ["name", "value"]
    assert df["name"].tolist() == ["café", "the"]


def test_latin1_is_read_with_a_notice_and_decoded(tmp_path):
    path = _write(tmp_path, "t.csv", "name,city\ncafé,Zürich\nnaïve,Köln\n", encoding="latin-1")
    notices = Notices()
    df = read_table(path, notify=notices)
    assert df["name"].tolist() == ["café", "naïve"]
    assert df["city"].tolist() == ["Zürich", "Köln"]
    assert "Latin-1" in notices.text and "t.csv" in notices.text


def test_latin1_byte_after_the_sniffed_head_still_reads(tmp_path):
    lines = ["name,n"] + [f"plain{i},{i}" for i in range(12_000)] + ["café,1"]
    path = _write(tmp_path, "t.csv", "\n".join(lines) + "\n", encoding="latin-1")
    assert path.stat().st_size > (1 << 16)
    notices = Notices()
    df = read_table(path, notify=notices)
    assert df["name"].iloc[-1] == "café" and len(df) == 12_001
    assert "Latin-1" in notices.text


def test_explicit_encoding_is_used(tmp_path):
    path = _write(tmp_path, "t.csv", "name,n\ncafé,1\nthé,2\n", encoding="cp1252")
    assert read_table(path, encoding="cp1252")["name"].tolist() == ["café", "thé"]


def test_unknown_encoding_name_is_a_data_error(tmp_path):
    path = _write(tmp_path, "t.csv", "a,b\n1,2\n")
    with pytest.raises(DataError, match="unknown encoding 'klingon'"):
        read_table(path, encoding="klingon")


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be"])
def test_utf16_with_bom(tmp_path, codec):
    text = "name;value\ncafé;1\nnaïve;2\n"
    data = text.encode("utf-16") if codec == "utf-16" else b"\xfe\xff" + text.encode("utf-16-be")
    path = _write(tmp_path, "t.csv", data)
    df = read_table(path)
    assert list(df.columns) == ["name", "value"]
    assert df["name"].tolist() == ["café", "naïve"] and df["value"].tolist() == [1, 2]


def test_nul_bytes_are_an_unreadable_encoding(tmp_path):
    path = _write(tmp_path, "t.csv", b"a,b\n1,\x00\x002\n3,4\n")
    with pytest.raises(DataError, match="unreadable encoding") as info:
        read_table(path)
    assert "t.csv" in str(info.value)


# ======================================================================================================================
# read_table: broken files
# ======================================================================================================================
@pytest.mark.parametrize(("bad_row", "n_fields"), [("7,8,9,10", 4), ("7,8", 2)])
def test_ragged_row_names_the_line(tmp_path, bad_row, n_fields):
    path = _write(tmp_path, "t.csv", f"a,b,c\n1,2,3\n4,5,6\n{bad_row}\n1,2,3\n")
    with pytest.raises(DataError) as info:
        read_table(path)
    msg = str(info.value)
    assert "line 4" in msg and f"{n_fields} fields" in msg and "header has 3" in msg and "t.csv" in msg


def test_ragged_line_number_counts_physical_lines_after_a_quoted_newline(tmp_path):
    path = _write(tmp_path, "t.csv", 'a,b\n1,"x\ny"\n2,3\n4,5,6\n')
    with pytest.raises(DataError, match="line 5"):
        read_table(path)


def test_empty_file(tmp_path):
    path = _write(tmp_path, "t.csv", b"")
    with pytest.raises(DataError, match="empty"):
        read_table(path)


def test_header_only(tmp_path):
    path = _write(tmp_path, "t.csv", "a,b,c\n")
    with pytest.raises(DataError, match="no data rows"):
        read_table(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found") as info:
        read_table(tmp_path / "nope.csv")
    assert "nope.csv" in str(info.value)


def test_directory(tmp_path):
    with pytest.raises(DataError, match="folder"):
        read_table(tmp_path)


def test_not_a_path_or_dataframe():
    with pytest.raises(DataError, match="list"):
        read_table([1, 2, 3])  # type: ignore[arg-type]


def test_duplicate_and_blank_column_names_are_renamed_with_a_notice(tmp_path):
    path = _write(tmp_path, "t.csv", "a,a, ,b,\n1,2,3,4,5\n6,7,8,9,10\n")
    notices = Notices()
    df = read_table(path, notify=notices)
    assert list(df.columns) == ["a", "a.1", "unnamed_3", "b", "unnamed_5"]
    assert df["a.1"].tolist() == [2, 7]
    assert df.columns.is_unique
    assert "renamed 3" in notices.text and "'a' -> 'a.1'" in notices.text


def test_clean_names_give_no_notice(tmp_path):
    notices = Notices()
    read_table(_write(tmp_path, "t.csv", "a,b\n1,2\n"), notify=notices)
    assert notices == []


def test_null_markers_become_missing(tmp_path):
    path = _write(tmp_path, "t.csv", "num,text\n1.5,x\n,\nNA,NA\nN/A,N/A\n?,?\n2.5,y\n")
    df = read_table(path)
    assert df["num"].isna().tolist() == [False, True, True, True, True, False]
    assert df["text"].isna().tolist() == [False, True, True, True, True, False]
    assert pd.api.types.is_numeric_dtype(df["num"])
    assert df["num"].dropna().tolist() == [1.5, 2.5]


def test_parquet_round_trip(tmp_path):
    pytest.importorskip("pyarrow.parquet")
    df = pd.DataFrame({"x": [1.5, None, 3.0], "n": [1, 2, 3], "s": ["a", None, "c"], "b": [True, False, True]})
    df.to_parquet(tmp_path / "t.parquet")
    back = read_table(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(back, df, check_dtype=False)


def test_json_lines_round_trip(tmp_path):
    df = pd.DataFrame({"x": [1.5, 2.0, 3.25], "n": [1, 2, 3], "s": ["a", "b", "c"]})
    path = tmp_path / "t.jsonl"
    df.to_json(path, orient="records", lines=True)
    back = read_table(path)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)


def test_corrupt_parquet_is_a_data_error(tmp_path):
    path = _write(tmp_path, "t.parquet", b"PAR1 this is not parquet")
    with pytest.raises(DataError, match="Parquet"):
        read_table(path)


def test_dataframe_input_is_not_modified():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "id": np.arange(60),
        "amount": [str(v) for v in rng.normal(size=60).round(3)],
        "when": [f"2021-03-{d:02d}" for d in rng.integers(1, 28, 60)],
        " ": rng.integers(0, 3, 60),
        "dup": rng.normal(size=60),
        "dup2": rng.integers(0, 5, 60),
        "label": rng.choice(["yes", "no"], 60),
    })
    df.columns = ["id", "amount", "when", " ", "dup", "dup", "label"]  # a blank and a duplicate name
    df.loc[3, "label"] = None
    original = df.copy(deep=True)
    notices = Notices()
    out = read_table(df, notify=notices)
    out = drop_missing_target(out, "label", source="the DataFrame", notify=notices)
    infer_schema(out, "label", notify=notices)
    pd.testing.assert_frame_equal(df, original)
    assert list(df.columns) == list(original.columns)  # duplicates and blanks are renamed in the copy only
    assert "renamed" in notices.text


# ======================================================================================================================
# read_table_and_format: the file's decimal mark, recorded so that a model reads its prediction files the same way
# ======================================================================================================================
def test_a_decimal_comma_file_is_read_with_dots_as_thousands_separators(tmp_path):
    # "1.234" alone would be a decimal to the CSV parser, but in a file of decimal commas it is one thousand and more
    path = _write(tmp_path, "t.tsv", "price\tarea\tcity\n1,5\t1.234\ta\n2,25\t12\tb\n3,75\t2.500\tc\n")
    notices = Notices()
    df, number_format = read_table_and_format(path, notify=notices)
    assert df["price"].tolist() == [1.5, 2.25, 3.75]
    assert df["area"].tolist() == [1234.0, 12.0, 2500.0]
    assert number_format == {"decimal": ",", "decimal_from": "detected"}
    assert len(notices) == 1 and "2 column(s) of numbers written with decimal commas" in notices.text
    assert "'area' ('1.234' -> 1234)" in notices.text


def test_reading_again_with_the_recorded_mark_gives_the_same_values(tmp_path):
    """What a model relies on: its training file read with the recorded decimal mark gives the values it learned."""
    for name, content in [("comma.tsv", "a\tb\tc\n1,5\t1.234\t7\n2,25\t12\t8\n3,75\t2.500\t9\n"),
                          ("euro.csv", "a;b\n1.234.567,5;1,234\n2,25;2,500\n"),
                          ("thousands.csv", 'a,b\n"1,234.5","1,234"\n"2,000.25","2,500"\n')]:
        path = _write(tmp_path, name, content)
        df, number_format = read_table_and_format(path)
        assert number_format["decimal"] is not None, name
        pd.testing.assert_frame_equal(read_table(path, decimal=number_format["decimal"]), df, check_dtype=False)


@pytest.mark.parametrize(("content", "values", "decimal"), [
    # the '1,234.5' column fits only thousands separators: the ambiguous '1,234' column follows it, not the ';'
    ("a;b\n\"1,234.5\";\"1,234\"\n\"2,000.25\";\"2,500\"\n", [1234.0, 2500.0], "."),
    # the '1,5' column fits only decimal commas: the ambiguous column follows it, not the tab
    ("a\tb\n1,5\t1,234\n2,25\t2,500\n", [1.234, 2.5], ","),
], ids=["thousands", "decimal-commas"])
def test_an_ambiguous_column_follows_the_files_other_numbers(tmp_path, content, values, decimal):
    notices = Notices()
    df, number_format = read_table_and_format(_write(tmp_path, "t.txt", content), notify=notices)
    assert df["b"].tolist() == values
    assert number_format == {"decimal": decimal, "decimal_from": "detected"}
    assert "ambiguous: as the file's other numbers" in notices.text


def test_no_decimal_mark_is_recorded_when_the_file_says_nothing_or_both(tmp_path):
    plain = _write(tmp_path, "plain.csv", "a,b\n1.5,x\n2.5,y\n")
    both = _write(tmp_path, "both.tsv", "a\tb\n1,5\t\"1,234.5\"\n2,25\t\"2,000.25\"\n")  # each column fits one style
    for path in (plain, both):
        assert read_table_and_format(path)[1] == {"decimal": None, "decimal_from": None}
    df = pd.DataFrame({"a": [1.5, 2.5]})
    assert read_table_and_format(df)[1] == {"decimal": None, "decimal_from": None}


def test_a_given_decimal_mark_is_recorded_and_reads_dots_as_thousands(tmp_path):
    path = _write(tmp_path, "t.csv", "area;n\n1.234;1\n12;2\n2.500;3\n")
    assert read_table(path)["area"].tolist() == [1.234, 12.0, 2.5]  # the parser's reading, without a hint
    df, number_format = read_table_and_format(path, decimal=",")
    assert df["area"].tolist() == [1234.0, 12.0, 2500.0]
    assert number_format == {"decimal": ",", "decimal_from": "given"}
    assert read_table_and_format(path, decimal=".")[1] == {"decimal": ".", "decimal_from": "given"}


def test_a_file_without_quotes_reads_as_with_quoted_newlines_allowed(tmp_path):
    import pyarrow.csv as pacsv

    # several of pyarrow's 1 MiB blocks, Windows line ends, a blank line, an apostrophe, missing values
    lines = ["id,x,name"] + [f"{i},{i / 7:.6f},{'it' if i % 3 else 'NA'}'s {i % 11}" for i in range(120_000)]
    lines[5000] = ""
    path = tmp_path / "plain.csv"
    path.write_bytes("\r\n".join(lines).encode() + b"\r\n")
    careful = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(newlines_in_values=True),
                             convert_options=pacsv.ConvertOptions(null_values=NULL_MARKERS, strings_can_be_null=True))
    pd.testing.assert_frame_equal(read_table(path), careful.to_pandas())


def test_a_file_without_quotes_names_its_first_ragged_line(tmp_path):
    lines = ["a,b,c"] + [f"{i},{i},x" for i in range(200_000)]
    lines[150_000], lines[190_000] = "1,2", "1,2,3,4"
    path = tmp_path / "ragged.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="line 150001 has 2 fields but the header has 3"):
        read_table(path)


# ======================================================================================================================
# read_table: spaces around values
# ======================================================================================================================
def test_spaces_around_text_values_are_removed_with_a_notice_when_that_merges_values(tmp_path):
    path = _write(tmp_path, "t.csv", "size,answer,note\n1, no,a b\n2,no ,c\n3,no,d \n4,yes,e\n")
    notices = Notices()
    df = read_table(path, notify=notices)
    assert df["answer"].tolist() == ["no", "no", "no", "yes"]
    assert df["note"].tolist() == ["a b", "c", "d", "e"]  # inner spaces are the value's own
    assert len(notices) == 1 and "'answer'" in notices.text and "'note'" not in notices.text  # 'd ' merged nothing
    frame = pd.DataFrame({"answer": [" no", "no", None, 3], "x": [1.0, 2.0, 3.0, 4.0]})
    notices = Notices()
    assert read_table(frame, notify=notices)["answer"].tolist()[:2] == ["no", "no"]
    assert frame["answer"].tolist()[0] == " no" and "'answer'" in notices.text  # the caller's frame is untouched
    notices = Notices()
    read_table(pd.DataFrame({"answer": ["no", "yes"]}), notify=notices)
    assert not notices


# ======================================================================================================================
# read_table: missing-value words, percentages, currency
# ======================================================================================================================
@pytest.mark.parametrize("token", ["-", ".", "--", "missing", "(blank)", "#DIV/0!", "#VALUE!", "n.a."])
def test_spreadsheet_words_for_no_value_are_missing_and_the_column_stays_numeric(tmp_path, token):
    values = [str(v) for v in range(1, 21)] * 5
    for i in range(0, 100, 10):  # 10%: beyond the 5% of stray words a number column tolerates
        values[i] = token
    path = _write(tmp_path, "t.csv", "amount,y\n" + "\n".join(f"{v},{i % 2}" for i, v in enumerate(values)) + "\n")
    df = read_table(path)
    assert df["amount"].isna().sum() == 10 and pd.api.types.is_numeric_dtype(df["amount"])
    frame = pd.DataFrame({"amount": values, "y": [i % 2 for i in range(100)]})
    schema = infer_schema(frame, "y")
    assert [c.kind for c in schema.features] == ["numeric"]


def test_percentages_and_currency_are_numbers(tmp_path):
    path = _write(tmp_path, "t.csv", 'rate,price,eur,balance\n12%,"$1,200",1.200 €,"(1,200)"\n12 %,$5,"3,5 €",300\n'
                                     '1.5%,$7.25,10 €,(7)\n')
    notices = Notices()
    df = read_table(path, notify=notices)
    assert df["rate"].tolist() == pytest.approx([0.12, 0.12, 0.015])
    assert df["price"].tolist() == [1200.0, 5.0, 7.25]
    assert df["eur"].tolist() == [1200.0, 3.5, 10.0]
    assert df["balance"].tolist() == [-1200.0, 300.0, -7.0]
    assert "'12%' -> 0.12" in notices.text
    frame = pd.DataFrame({"rate": ["12%", "50 %", "7%", None], "y": ["a", "b", "a", "b"]})
    assert read_table(frame)["rate"].tolist()[:3] == pytest.approx([0.12, 0.5, 0.07])
    assert frame["rate"][0] == "12%"  # the caller's frame is untouched


def test_a_numeric_looking_text_column_says_which_values_did_not_parse_and_how_to_force_it():
    values = [str(v) for v in range(60)] + ["pending", "tbd", "pending", "n/k"] * 10
    frame = pd.DataFrame({"amount": values, "x": np.arange(100) % 7, "y": ["a", "b"] * 50})
    notices = Notices()
    schema = infer_schema(frame, "y", notify=notices)
    assert {c.name: c.kind for c in schema.features}["amount"] != "numeric"
    assert "'amount' looks numeric" in notices.text and "'pending'" in notices.text and "'tbd'" in notices.text
    assert "numeric=['amount']" in notices.text  # the option to force it, in the caller's words
    notices = Notices()
    schema = infer_schema(frame, "y", numeric=("amount",), notify=notices)
    assert {c.name: c.kind for c in schema.features}["amount"] == "numeric"
    assert "40 of 100 value(s) are not numbers" in notices.text


def test_few_rows_read_as_many_rows_do(monkeypatch):
    """A few rows' text columns are first looked at in Python (a served request's cost); the result is the one the
    vectorised path gives, for words, formatted numbers, missing-value words and spaces alike."""
    from neuraltab.data import read

    df = pd.DataFrame({"word": ["low", "high", "low"], "money": ["$1,200", "12%", "(3)"], "gap": ["-", "n.a.", "7"],
                       "spaced": [" no", "no ", "yes"], "empty": ["", "x", "y"], "num": [1.5, 2.0, None],
                       "mixed": ["a", 3, None], "dashes": ["-", "--", "-"],
                       "category": pd.Categorical([" a", "b", "a"]), "arrow": pd.Series([" x", "1,5", None], dtype="str")})
    fast = read.read_table(df)
    monkeypatch.setattr(read, "_FEW_ROWS", 0)
    slow = read.read_table(df)
    pd.testing.assert_frame_equal(fast, slow)
    assert fast["money"].dtype.kind == "f" and fast["spaced"].tolist() == ["no", "no", "yes"]
