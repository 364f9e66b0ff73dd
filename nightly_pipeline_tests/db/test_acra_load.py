"""One bad row of an ACRA file is reported by line and skipped; the good rows still load."""
from __future__ import annotations

import csv

import pytest

from nightly_pipeline.cli import main

HEADER = (b"uen,entity_name,entity_type_description,entity_status_description,registration_incorporation_date,"
          b"primary_ssic_code,primary_ssic_description,postal_code,street_name,note\n")


def row(uen: str, name: bytes = b"GOOD PTE LTD", street: bytes = b"MAIN ST", note: bytes = b"") -> bytes:
    return b",".join([uen.encode(), name, b"Local Company", b"Live", b"2019-01-01", b"62011", b"x", b"1",
                      street, note]) + b"\n"


@pytest.mark.database
def test_oversized_fields_nul_bytes_and_bad_encoding_reject_only_their_rows(db_env, admin, tmp_path, capsys):
    oversized = b"X" * (csv.field_size_limit() + 1)
    path = tmp_path / "acra.csv"
    path.write_bytes(HEADER
                     + row("201900001A")                                  # line 2
                     + row("201900002B", name=oversized)                  # line 3
                     + row("201900003C", street=b"MAIN\x00ST")            # line 4
                     + row("201900004D")                                  # line 5
                     + row("201900005E", street=b"CAF\xe9 ROAD")          # line 6: Latin-1, not UTF-8
                     + row("201900006F", note=b"a\x00b")                  # line 7: an extra column
                     + row("201900007G", name=b'"QUOTED\nOVER TWO LINES"')  # lines 8-9
                     + row("201900008H"))                                 # line 10
    code = main(["acra", "load", str(path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"{path}: 4 good rows (4 new, 0 updated, 0 unchanged), 4 rejected" in out
    errors = err.strip().splitlines()
    assert len(errors) == 4, err
    assert errors[0] == f"{path}: line 3: unreadable record: field larger than field limit ({csv.field_size_limit()})"
    assert errors[1] == f"{path}: line 4 (uen 201900003C): street_name contains a NUL byte"
    assert errors[2] == f"{path}: line 6 (uen 201900005E): street_name is not valid UTF-8"
    assert errors[3] == f"{path}: line 7 (uen 201900006F): note contains a NUL byte"
    loaded = [r[0] for r in admin.execute("SELECT uen FROM staging_acra_companies ORDER BY uen")]
    assert loaded == ["201900001A", "201900004D", "201900007G", "201900008H"]


@pytest.mark.database
def test_a_nul_byte_in_a_column_name_is_a_file_error(db_env, admin, tmp_path, capsys):
    path = tmp_path / "acra.csv"
    path.write_bytes(HEADER.replace(b"note", b"no\x00te") + row("201900001A"))
    assert main(["acra", "load", str(path)]) == 2
    assert "column name 'no\\x00te' contains a NUL byte" in capsys.readouterr().err
    assert admin.execute("SELECT count(*) FROM staging_acra_companies").fetchone()[0] == 0
