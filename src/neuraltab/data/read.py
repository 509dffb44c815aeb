"""Reading tables: a file (or a DataFrame) into a DataFrame.

``read_table`` reads CSV/TSV (with a sniffed delimiter and encoding, and numbers written with thousands separators or
decimal commas), Parquet and JSON lines, with one-line errors for everything a person can get wrong, after a memory
guard (:func:`check_memory`) has refused files that clearly will not fit. Deciding what the columns mean is
:mod:`.schema`'s job.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, Notify, no_notice, option
from ..system import available_memory

__all__ = [
    "NULL_MARKERS",
    "parse_numbers",
    "check_memory",
    "estimate_memory",
    "read_table",
    "read_table_and_format",
    "source_name",
]


NULL_MARKERS = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                "N/A", "NA", "NULL", "NaN", "n/a", "nan", "null", "?", "None", "none",
                # what spreadsheets and people write for "no value": dashes, a dot, words, and formula errors
                "-", "--", ".", "missing", "Missing", "MISSING", "(blank)", "n.a.", "N.A.", "n.a", "N.A",
                "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#NULL!"]
_SNIFF_BYTES = 1 << 16
_DELIMITERS = [",", ";", "\t", "|"]
_CSV_SUFFIXES = {".csv", ".tsv", ".txt", ".tab", ".data", ".dat", ""}

# ======================================================================================================================
# Reading
# ======================================================================================================================


def source_name(source: Any) -> str:
    """How messages refer to a data source."""
    return str(source) if isinstance(source, (str, Path)) else "the DataFrame"


def read_table(source: str | Path | pd.DataFrame, *, encoding: str | None = None, decimal: str | None = None,
               notify: Notify = no_notice) -> pd.DataFrame:
    """Read a CSV/TSV/Parquet/JSON-lines file (or pass a DataFrame through) with clear, one-line errors.

    The input is never modified. Column names are made unique and non-blank (with a notice). In a text file, a column
    of numbers written with thousands separators ("1,234.5") or decimal commas ("1,5", "1.234,5") is read as numbers,
    with a notice; ``decimal`` ("." or ",") says which the file uses, None detects it from the file's numbers. Before a
    file is read, :func:`check_memory` refuses one that clearly will not fit in memory.
    """
    return read_table_and_format(source, encoding=encoding, decimal=decimal, notify=notify)[0]


def read_table_and_format(source: str | Path | pd.DataFrame, *, encoding: str | None = None,
                          decimal: str | None = None, notify: Notify = no_notice) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`read_table`, and how the table wrote its numbers: ``{"decimal": d, "decimal_from": how}``.

    ``d`` is the decimal mark, "." or ",", and ``how`` is "given" (the ``decimal`` argument) or "detected" (from
    numbers written with thousands separators or decimal commas, all in one style); both are None when nothing said
    (a DataFrame, Parquet, or a text file with no such numbers, or with both styles). Reading another file with
    ``decimal=d`` reads numbers written the same way as the same values, even where that file alone is ambiguous.
    """
    if decimal not in (None, ".", ","):
        raise DataError(f"{option('decimal')} must be '.' or ',' (or None to detect it from the file), got {decimal!r}")
    detected = None
    if isinstance(source, pd.DataFrame):
        name = "the DataFrame"
        # text cells of numbers written for people ("$1,200", "12%") are numbers, as in a file
        df, notes = _parse_formatted_numbers(source, delimiter=",", decimal=decimal)
        _notify_formatted(notes, name, notify)
    elif isinstance(source, (str, Path)):
        path = Path(source)
        name = str(source)
        if not path.exists():
            raise DataError(f"{name}: file not found; check the path")
        if path.is_dir():
            raise DataError(f"{name}: is a folder, not a table file; pass a CSV, Parquet or JSON-lines file")
        if path.stat().st_size == 0:
            raise DataError(f"{name}: the file is empty; it needs a header row and at least one data row")
        suffix = path.suffix.lower()
        if suffix in (".xlsx", ".xls", ".xlsm", ".ods"):
            raise DataError(f"{name}: spreadsheet files are not read directly; save the sheet as CSV and pass that file")
        if suffix in (".gz", ".bz2", ".zip", ".xz", ".zst"):
            raise DataError(f"{name}: compressed files are not read directly; decompress it first")
        check_memory(path)
        if suffix in (".parquet", ".pq"):
            df = _read_parquet(path)
        elif suffix in (".jsonl", ".ndjson", ".json"):
            df = _read_json_lines(path)
        else:
            df, notes = _read_csv(path, encoding=encoding, decimal=decimal, notify=notify)
            _notify_formatted(notes, name, notify)
            if notes["decimal"] and not notes["thousands"]:
                detected = ","
            elif notes["thousands"] and not notes["decimal"]:
                detected = "."
    else:
        raise DataError(f"expected a file path or a pandas DataFrame, got {type(source).__name__}")

    if df.shape[1] == 0:
        raise DataError(f"{name}: no columns found; the file needs a header row")
    if len(df) == 0:
        raise DataError(f"{name}: has a header but no data rows; add rows below the header")
    if decimal is not None:
        number_format = {"decimal": decimal, "decimal_from": "given"}
    else:
        number_format = {"decimal": detected, "decimal_from": "detected" if detected else None}
    return _strip_values(_clean_column_names(df, name, notify), name, notify), number_format


def _text_columns(df: pd.DataFrame) -> list[int]:
    """Positions of the columns of text (object or string dtype), from the dtypes alone: taking each column out of
    the frame to look at its dtype cost a few-row table more than the rest of its reading."""
    return [j for j, dtype in enumerate(df.dtypes) if dtype == np.dtype(object) or (
        # a Series of categories counts as text when they are strings, which its dtype alone does not say
        pd.api.types.is_string_dtype(df.iloc[:, j]) if isinstance(dtype, pd.CategoricalDtype)
        else pd.api.types.is_string_dtype(dtype))]


def _strip_values(df: pd.DataFrame, name: str, notify: Notify) -> pd.DataFrame:
    """``df`` with spaces around text values removed (column names are stripped too), so that " no", "no " and "no"
    are one category or class; a notice names the columns where that merged values. The input is not modified."""
    out = df
    merged: list[str] = []
    for j in _text_columns(df):
        s = df.iloc[:, j]
        if len(s) <= _FEW_ROWS and not any(isinstance(v, str) and v != v.strip() for v in s.to_numpy()):
            continue  # nothing to strip; for a few rows (a served request) this look costs less than pandas' strip
        if s.dtype == object:  # mixed cells: only the text ones change
            stripped = s.map(lambda v: v.strip() if isinstance(v, str) else v)
        else:
            stripped = s.str.strip()
        changed = (s.notna() & (stripped != s)).to_numpy(dtype=bool)
        if not changed.any():
            continue
        if out is df:
            out = df.copy()
        out.isetitem(j, stripped)
        raw = pd.Series(pd.unique(s.dropna()), dtype=object)
        keys = raw.map(lambda v: v.strip() if isinstance(v, str) else v)
        together = keys.duplicated(keep=False).to_numpy()
        if together.any():
            examples = ", ".join(repr(v) for v in raw[together].iloc[:3])
            merged.append(f"{str(df.columns[j])!r} ({examples} ...)")
    if merged:
        notify(f"{name}: removed spaces around text values, which made values that differed only in them one "
               f"value, in {len(merged)} column(s): " + "; ".join(merged[:5]) + (" ..." if len(merged) > 5 else ""))
    return out


def _read_csv(path: Path, *, encoding: str | None, decimal: str | None, notify: Notify,
              source: bytes | None = None) -> tuple[pd.DataFrame, dict[str, dict[int, str]]]:
    """Read a delimited text file with pyarrow, and the notes on its formatted numbers (see
    :func:`_parse_formatted_numbers`). ``source``: the file's bytes with blank lines removed (a second try)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    name = str(path)
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if len(head) < _SNIFF_BYTES and not head.strip():
        raise DataError(f"{name}: the file is empty (only blank lines); it needs a header row and at least one data row")
    if encoding is None:
        encoding = _sniff_encoding(head, name, notify)
    try:
        text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(head, final=False)
    except LookupError:
        raise DataError(f"{name}: unknown encoding {encoding!r}; use a name such as utf-8, latin-1 or utf-16") from None
    delimiter = _sniff_delimiter(text)
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8", "utf-8-sig")
    read_opts = pacsv.ReadOptions(encoding="utf8" if utf8 or source is not None else encoding)
    # a line break inside a value needs quotes around it: without a quote in the file, the faster parallel split
    newlines = (b'"' in source if source is not None else _has_quote(path)) if utf8 or source is not None else True
    parse_opts = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=newlines)

    # codes written with leading zeros ("001", "02134") stay text: the parser would make them 1 and 2134
    as_text = {name: pa.string() for name in _leading_zero_columns(text, delimiter)}

    def read(decimal_point: str) -> pa.Table:
        convert_opts = pacsv.ConvertOptions(null_values=NULL_MARKERS, strings_can_be_null=True,
                                            quoted_strings_can_be_null=True, decimal_point=decimal_point,
                                            column_types=as_text)
        return pacsv.read_csv(io.BytesIO(source) if source is not None else path, read_options=read_opts,
                              parse_options=parse_opts, convert_options=convert_opts)

    try:
        table = read(decimal or ".")
    except pa.ArrowInvalid as exc:
        msg = str(exc)
        if "Empty CSV file" in msg:
            if head.strip():
                raise DataError(f"{name}: has a header but no data rows; add rows below the header") from None
            raise DataError(f"{name}: the file is empty; it needs a header row and at least one data row") from None
        match = re.search(r"Expected (\d+) columns, got (\d+)", msg)
        if match:
            if source is None:
                cleaned = _without_blank_lines(path, encoding)
                if cleaned is not None:  # lines of spaces or tabs (often trailing): skip them, as empty lines are
                    return _read_csv(path, encoding=encoding, decimal=decimal, notify=notify, source=cleaned)
            line = _first_ragged_line(path, encoding, delimiter, int(match.group(1)))
            where = f"line {line}" if line else "a row"
            raise DataError(
                f"{name}: {where} has {match.group(2)} fields but the header has {match.group(1)} (ragged rows); "
                f"fix that line, or quote values that contain the delimiter {delimiter!r}"
            ) from None
        if "UTF8" in msg or "utf8" in msg.lower():
            notify(f"{name}: not valid UTF-8; read as Latin-1 (pass {option('encoding')} to choose another)")
            return _read_csv(path, encoding="latin-1", decimal=decimal, notify=notify)
        raise DataError(f"{name}: cannot parse as a delimited text table ({msg.splitlines()[0]})") from None
    except (UnicodeDecodeError, pa.ArrowException) as exc:
        raise DataError(f"{name}: cannot decode the file as {encoding} ({type(exc).__name__}); pass "
                        f"{option('encoding')}") from None
    if utf8 and any(pa.types.is_binary(t) for t in table.schema.types):
        # pyarrow keeps invalid UTF-8 past the sniffed head as binary columns instead of failing
        notify(f"{name}: not valid UTF-8; read as Latin-1 (pass {option('encoding')} to choose another)")
        return _read_csv(path, encoding="latin-1", decimal=decimal, notify=notify)
    df, notes = _parse_formatted_numbers(table.to_pandas(date_as_object=False), delimiter=delimiter, decimal=decimal)
    if decimal is None and notes["decimal"] and not notes["thousands"]:
        # The file writes decimal commas, so its dots group thousands ("1.234" is 1234), which the parser has read as
        # decimals: read it again as decimal="," (the same read a prediction file gets with the model's choice).
        df, again = _parse_formatted_numbers(read(",").to_pandas(date_as_object=False), delimiter=delimiter,
                                             decimal=",")
        for j, note in again["decimal"].items():  # columns only this read converts ("1.234.567,5" is in both)
            notes["decimal"].setdefault(j, note)
    return df, notes


_LEADING_ZERO = re.compile(r"^[+-]?0\d+$")


def _leading_zero_columns(text: str, delimiter: str) -> list[str]:
    """Header names of the columns whose values in the file's first lines include whole numbers written with a
    leading zero ("001"): codes and labels, to be kept as written."""
    rows = list(csv.reader(text.splitlines()[:1000], delimiter=delimiter))
    if len(rows) < 2:
        return []
    header = rows[0]
    found = set()
    for row in rows[1:-1] if len(rows) > 2 else rows[1:]:  # the last line may be cut short
        for j, value in enumerate(row[: len(header)]):
            if j not in found and _LEADING_ZERO.match(value.strip()):
                found.add(j)
    names = [header[j] for j in sorted(found)]
    return [n for n in names if header.count(n) == 1]  # a repeated name cannot be told apart


def _has_quote(path: Path) -> bool:
    """Whether the (ASCII-compatible) file has a double quote anywhere: read through one buffer, with no mapping."""
    buf = bytearray(1 << 20)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            if buf.find(b'"', 0, n) >= 0:
                return True
    return False


_BLANK_LINE = re.compile(r"^[ \t]+(\r\n|\n|\r|$)", re.MULTILINE)


def _without_blank_lines(path: Path, encoding: str) -> bytes | None:
    """The file as UTF-8 without its lines of only spaces and tabs, or None when it has none."""
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        text = fh.read()
    cleaned, n = _BLANK_LINE.subn("", text)
    return cleaned.encode("utf-8") if n else None


# Numbers written for people: "1,234,567.5" (thousands commas), "1.234.567,5" / "1\u202f234,5" (decimal comma; the
# French thousands separator is a no-break space: a plain space is not taken, or "+33 612 345 678" would be a number).
_THOUSANDS_COMMA = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$")
_DECIMAL_COMMA = re.compile(r"^[+-]?(\d{1,3}([.\u00a0\u202f]\d{3})+|\d+)(,\d+)?$")
_DIGIT = re.compile(r"\d")
_NULL_SET = frozenset(NULL_MARKERS)
# up to this many rows, text columns are first looked at in Python: cheaper than pandas' strip and number regexes
# well past a 1,000-row request (benchmarks/README.md, "Figures behind the code")
_FEW_ROWS = 4096
_FORMATTED_SHARE = 0.95  # this share of a column's values must be numbers in the format for it to be converted
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
# a number with a currency sign before or after it, a percent sign, or in parentheses (accounting's negatives)
_CURRENCY = "$€£¥₹"
_AFFIXED = re.compile(rf"^(?P<open>\()?\s*(?P<sign>[+-])?\s*(?P<pre>[{_CURRENCY}])?\s*(?P<sign2>[+-])?\s*"
                      rf"(?P<core>\.?\d[\d.,\u00a0\u202f]*)\s*(?P<post>[{_CURRENCY}])?\s*(?P<pct>%)?\s*(?P<close>\))?$")


def _split_affixes(text: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray, np.ndarray]:
    """Text values without their currency signs, percent signs and accounting parentheses: (the number's own text,
    its factor (-1 for "(1,200)", 0.01 for "12%"), which values had such signs, which had a currency sign after the
    number, as "1.200 €" is written where the comma is the decimal mark). Other values are left as they are."""
    n = len(text)
    if n == 0 or not text.str.contains(rf"[{_CURRENCY}%()]", regex=True).any():
        return text, np.ones(n), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    m = text.str.extract(_AFFIXED)
    opened, closed = m["open"].notna().to_numpy(), m["close"].notna().to_numpy()
    pct, pre, post = (m[g].notna().to_numpy() for g in ("pct", "pre", "post"))
    affixed = m["core"].notna().to_numpy() & (opened == closed) & (opened | pct | pre | post) & ~(pre & post)
    negative = opened | (m["sign"].eq("-") | m["sign2"].eq("-")).fillna(False).to_numpy(dtype=bool)
    factor = np.where(affixed & negative, -1.0, 1.0) * np.where(affixed & pct, 0.01, 1.0)
    core = text.where(~affixed, m["core"])
    return core, factor, affixed, affixed & post & ~pct


def parse_numbers(text: pd.Series) -> pd.Series:
    """Text as numbers (float; NaN where a value is not one): plain numbers, and numbers with a currency sign, a
    percent sign ("12%" is 0.12) or in parentheses ("(1,200)" is -1200, its commas grouping thousands)."""
    text = text.astype("string").str.strip()
    core, factor, affixed, euro = _split_affixes(text)
    if affixed.any():
        grouped = core.str.replace(",", "", regex=False)
        european = core.str.replace(r"[.\u00a0\u202f]", "", regex=True).str.replace(",", ".", regex=False)
        core = core.where(~affixed, grouped.where(~euro, european))
    return pd.to_numeric(core, errors="coerce").astype(float) * factor


def _parse_formatted_numbers(df: pd.DataFrame, *, delimiter: str,
                             decimal: str | None) -> tuple[pd.DataFrame, dict[str, dict[int, str]]]:
    """Text columns of numbers with thousands separators or decimal commas, as float columns; and a note per converted
    column (by position), by style ("thousands" or "decimal"), for the notice.

    A column whose every separated value is ambiguous ("1,234": 1234 or 1.234?) follows the file's other columns when
    those that fit only one style all agree; otherwise it is read with thousands separators when it also has numbers
    under 1000 written without one ("999"), else decimal commas in a ``;``-delimited file (the usual pairing) and
    thousands separators in others. ``decimal`` overrides the guess; with ``decimal=","`` a dot between digits groups
    thousands even in a column without commas ("1.234" is 1234).
    """
    separator = r"\d[.,\u00a0\u202f]\d" if decimal == "," else r"\d[,\u00a0\u202f]\d"
    found: list[tuple[int, pd.Series, np.ndarray, dict[str, np.ndarray], np.ndarray, list[str], bool, np.ndarray,
                      pd.Series]] = []
    for j in _text_columns(df):
        s = df.iloc[:, j]
        if len(s) <= _FEW_ROWS and not any(isinstance(v, str) and (_DIGIT.search(v) or v.strip() in _NULL_SET)
                                           for v in s.to_numpy()):
            continue  # no digit and no missing-value word: no number here; cheaper than pandas' regexes for a few rows
        present = s.notna().to_numpy()
        # a text column of words is ruled out on its first values, cheaply: before the whole column is converted
        where = np.flatnonzero(present[:4096])  # usually enough; else all of the column
        if len(where) < 1000:
            where = np.flatnonzero(present)
        end = where[999] + 1 if len(where) >= 1000 else len(s)
        head = _split_affixes(s.iloc[:end][present[:end]].astype(str).str.strip())[0]
        head = head[~head.isin(_MARKER_SET)]  # a DataFrame's "-" or "N/A": missing, not a number that failed
        if head.empty or (head.str.match(_THOUSANDS_COMMA) | head.str.match(_DECIMAL_COMMA)).mean() < _FORMATTED_SHARE:
            continue
        present = present & ~s.astype(str).str.strip().isin(_MARKER_SET).to_numpy(dtype=bool)
        original = s[present].astype(str).str.strip()
        text, factor, affixed, euro = _split_affixes(original)
        separated = text.str.contains(separator, regex=True).to_numpy()
        if euro.mean() > 0.5 and decimal != ".":  # "1.200 €": the dot groups thousands where the euro sign follows
            separated = text.str.contains(r"\d[.,\u00a0\u202f]\d", regex=True).to_numpy()
        if not separated.any() and not affixed.any():
            continue
        fits: dict[str, np.ndarray] = {}
        if decimal != ",":
            fits["thousands"] = text.str.match(_THOUSANDS_COMMA).to_numpy()
        if decimal != ".":
            fits["decimal"] = text.str.match(_DECIMAL_COMMA).to_numpy()
        usable = [style for style, ok in fits.items() if ok.mean() >= _FORMATTED_SHARE and (ok & separated).any()]
        if euro.mean() > 0.5 and "decimal" in usable:
            usable = ["decimal"]
        if not usable and affixed.any():  # "12%", "$5": signs around plain numbers
            fits["plain"] = text.str.match(_PLAIN_NUMBER).to_numpy()
            usable = ["plain"] if fits["plain"].mean() >= _FORMATTED_SHARE else []
        if usable:
            # "999" next to "1,234": numbers under 1000 written without a separator
            short = len(usable) == 2 and bool(text[~separated].str.fullmatch(r"[+-]?\d{1,3}").any())
            found.append((j, text, present, fits, separated, usable, short, factor, original))
    # the file's evidence: the styles of the columns that fit only one
    firm = {usable[0] for *_, usable, _, _, _ in found if len(usable) == 1 and usable[0] != "plain"}

    out = df
    notes: dict[str, dict[int, str]] = {"thousands": {}, "decimal": {}, "plain": {}}
    for j, text, present, fits, separated, usable, short, factor, original in found:
        why = ""
        if len(usable) == 1:
            style = usable[0]
        elif len(firm) == 1:
            style = next(iter(firm))
            why = f"as the file's other numbers, written with {_STYLE_NAMES[style]}"
        elif short:
            style, why = "thousands", "a comma before 3 digits taken as a thousands separator"
        else:
            style = "decimal" if delimiter == ";" else "thousands"
            why = ("decimal commas are usual with ';' delimiters" if style == "decimal" else
                   "a comma before 3 digits taken as a thousands separator")
        ok = fits[style]
        if style == "thousands":
            plain = text.str.replace(",", "", regex=False)
        elif style == "decimal":
            plain = text.str.replace(r"[.\u00a0\u202f]", "", regex=True).str.replace(",", ".", regex=False)
        else:
            plain = text
        parsed = pd.to_numeric(plain.where(ok), errors="coerce").to_numpy(dtype=float) * factor
        values = np.full(len(present), np.nan)
        values[present] = parsed
        if out is df:
            out = df.copy()
        out.isetitem(j, values)
        shown = np.flatnonzero(ok & (separated | (text != original).to_numpy(dtype=bool)))
        first = int(shown[0]) if len(shown) else int(np.flatnonzero(ok)[0])
        note = f"{str(df.columns[j])!r} ({original.iloc[first]!r} -> {parsed[first]:.10g})"
        if why:
            note += f" (ambiguous: {why})"
        if not ok.all():
            examples = ", ".join(repr(v) for v in pd.unique(original[~ok])[:3])
            note += f" with {int((~ok).sum())} value(s) that are not numbers ({examples}) as missing"
        notes[style][j] = note
    return out, notes


_STYLE_NAMES = {"thousands": "thousands separators", "decimal": "decimal commas",
                "plain": "currency or percent signs or in parentheses"}
_MARKER_SET = frozenset(NULL_MARKERS)


def _notify_formatted(notes: dict[str, dict[int, str]], name: str, notify: Notify) -> None:
    """One notice per style of formatted numbers read as numbers."""
    for style, said in notes.items():
        if said:
            shown = "; ".join(list(said.values())[:5]) + (" ..." if len(said) > 5 else "")
            notify(f"{name}: read {len(said)} column(s) of numbers written with {_STYLE_NAMES[style]}: {shown}")


def _sniff_encoding(head: bytes, name: str, notify: Notify) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8"  # pyarrow drops the BOM itself
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in head:
        utf16 = _utf16_without_bom(head)
        if utf16:
            return utf16
        raise DataError(f"{name}: unreadable encoding: the file contains binary data (NUL bytes), not text; "
                        "export the table as CSV (UTF-8) and try again")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 13))
    if controls > max(8, len(head) // 100):
        raise DataError(f"{name}: unreadable encoding: the file is neither UTF-8 nor plain text; "
                        "export the table as CSV (UTF-8) and try again")
    notify(f"{name}: not valid UTF-8; read as Latin-1 (pass {option('encoding')} to choose another)")
    return "latin-1"


def _utf16_without_bom(head: bytes) -> str | None:
    """"utf-16-le"/"utf-16-be" when the bytes look like UTF-16 text written without a BOM: a NUL in (nearly) every
    other byte, as ASCII text gives, and text once decoded."""
    even, odd = head[0::2], head[1::2]
    if len(odd) < 2:
        return None
    for codec, zeros, chars in (("utf-16-le", odd, even), ("utf-16-be", even, odd)):
        if zeros.count(0) >= 0.6 * len(zeros) and chars.count(0) <= 0.02 * len(chars):
            try:
                text = head[: len(head) // 2 * 2].decode(codec)
            except UnicodeDecodeError:
                continue
            if sum(ch.isprintable() or ch in "\t\r\n" for ch in text) >= 0.98 * len(text):
                return codec
    return None


# ======================================================================================================================
# Memory guard
# ======================================================================================================================

# bytes in memory per byte on disk while a file is read into a DataFrame (the Arrow table and the DataFrame coexist)
MEMORY_FACTORS = {"text": 3.0, "json": 2.0, "parquet": 5.0}


def estimate_memory(path: str | Path) -> int:
    """Rough bytes of memory needed to read ``path`` into a DataFrame: its size on disk times a factor per format."""
    path = Path(path)
    suffix = path.suffix.lower()
    kind = ("parquet" if suffix in (".parquet", ".pq") else
            "json" if suffix in (".jsonl", ".ndjson", ".json") else "text")
    return int(path.stat().st_size * MEMORY_FACTORS[kind])


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def check_memory(path: str | Path, *, available: int | None = None) -> None:
    """Refuse, with one line, to read a file that clearly will not fit in memory, rather than be killed mid-read.

    ``available`` defaults to :func:`available_memory`; the check is skipped when that is unknown.
    """
    if available is None:
        available = available_memory()
    if available is None:
        return
    needed = estimate_memory(path)
    if needed > available:
        size = Path(path).stat().st_size
        raise DataError(f"{path}: reading this {_size(size)} file needs about {_size(needed)} of memory but only "
                        f"{_size(available)} is available; train on a sample of its rows (e.g. the first rows, or a "
                        "random share) or free memory; a streaming option for tables larger than memory is planned "
                        "for a later release")


def _sniff_delimiter(text: str) -> str:
    """Pick the delimiter that splits the first lines into the same number (> 1) of fields, the most fields winning."""
    lines = [ln for ln in text.splitlines()[:50] if ln.strip()]
    if len(lines) > 1 and not text.endswith("\n"):
        lines = lines[:-1]  # the sample may cut the last line short
    best, best_score = ",", (0, 0)
    for delim in _DELIMITERS:
        try:
            counts = [len(row) for row in csv.reader(lines, delimiter=delim)]
        except csv.Error:
            continue
        if not counts or counts[0] < 2:
            continue
        consistent = sum(c == counts[0] for c in counts) / len(counts)
        score = (round(consistent, 2), counts[0])
        if score > best_score:
            best, best_score = delim, score
    return best


def _first_ragged_line(path: Path, encoding: str, delimiter: str, expected: int) -> int | None:
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        for row in reader:
            if row and len(row) != expected and not (len(row) == 1 and not row[0].strip()):  # blank lines are skipped
                return reader.line_num
    return None


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pandas(date_as_object=False)
    except Exception as exc:  # pyarrow raises many types for corrupt files
        raise DataError(f"{path}: cannot read as Parquet ({str(exc).splitlines()[0]}); check the file is complete") from None


def _read_json_lines(path: Path) -> pd.DataFrame:
    import pyarrow.json as pajson

    with open(path, "rb") as fh:
        first = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if first == b"[":  # a JSON array of objects, as many tools write a .json table
        return _read_json_array(path)
    try:
        return pajson.read_json(path).to_pandas(date_as_object=False)
    except Exception as exc:
        raise DataError(f"{path}: cannot read as JSON lines, one object per line ({str(exc).splitlines()[0]})") from None


def _read_json_array(path: Path) -> pd.DataFrame:
    import json

    try:
        with open(path, encoding="utf-8-sig") as fh:
            rows = json.load(fh)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read as JSON ({str(exc).splitlines()[0]}); check the file is complete") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise DataError(f"{path}: a JSON array must hold one object per row ({{\"column\": value, ...}}); "
                        "write the table that way or as JSON lines")
    return pd.DataFrame.from_records(rows)


def _clean_column_names(df: pd.DataFrame, name: str, notify: Notify) -> pd.DataFrame:
    original = [str(c) for c in df.columns]
    cleaned: list[str] = []
    seen: set[str] = set()
    for i, col in enumerate(original):
        new = col.strip() or f"unnamed_{i + 1}"
        base, n = new, 1
        while new in seen:
            new = f"{base}.{n}"
            n += 1
        seen.add(new)
        cleaned.append(new)
    changed = [(a, b) for a, b in zip(original, cleaned) if a != b]
    if changed:
        shown = ", ".join(f"{a!r} -> {b!r}" for a, b in changed[:5])
        notify(f"{name}: renamed {len(changed)} blank or duplicate column name(s): {shown}")
    if cleaned != list(df.columns):
        df = df.set_axis(cleaned, axis=1)
    return df
