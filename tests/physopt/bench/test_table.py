"""The one table formatter: aligned text and GitHub markdown from rows and a column spec."""
import pytest

from physopt.bench.table import Column, dash_or, format_table, text_column

ROWS = [{"name": "adam", "step_s": 0.0123, "peak": 3 * 2 ** 20, "note": None},
        {"name": "sip", "step_s": None, "peak": 2 ** 20, "note": "diverged"}]
COLUMNS = [text_column("optimizer", "name"), Column("ms", "step_s", "{:.3g}", 1e3),
           Column("MiB", "peak", "{:.1f}", 2 ** -20), text_column("note", "note")]


def test_text_tables_align_numbers_right_and_names_left_with_dashes_for_missing_values():
    lines = format_table(ROWS, COLUMNS).splitlines()
    assert lines[0] == "optimizer    ms  MiB  note"
    assert set(lines[1]) == {"-"} and len(lines[1]) == len(lines[0])
    assert lines[2] == "adam       12.3  3.0  -"
    assert lines[3] == "sip           -  1.0  diverged"


def test_markdown_tables_have_a_header_rule_and_one_line_per_row():
    assert format_table(ROWS, COLUMNS, style="markdown").splitlines() == [
        "| optimizer | ms | MiB | note |", "| --- | --- | --- | --- |", "| adam | 12.3 | 3.0 | - |",
        "| sip | - | 1.0 | diverged |"]


def test_integers_stay_integers():
    assert format_table([{"b": 16}], [Column("batch", "b", "{}")], style="markdown").splitlines()[-1] == "| 16 |"


def test_a_column_can_compute_its_cell():
    col = Column("grid", cell=lambda r: f"{r['n']}^2")
    assert format_table([{"n": 64}], [col], style="markdown").splitlines()[-1] == "| 64^2 |"


def test_unknown_style_is_refused():
    with pytest.raises(ValueError, match="markdown"):
        format_table(ROWS, COLUMNS, style="html")


def test_dash_or_scales_and_formats():
    assert dash_or(None) == "-" and dash_or(0.5, 1e3, "{:.1f}") == "500.0"
