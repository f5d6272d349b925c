"""index/metadata.py: styles.csv read as shipped, quirks included, no row lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from fashionrec.index.metadata import read_metadata
from fashionrec.errors import MetadataError

HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName\n"


def test_quirks_on_a_small_file(tmp_path: Path) -> None:
    path = tmp_path / "styles.csv"
    path.write_text(
        HEADER
        + "1,Men,Apparel,Topwear,Tshirts,NA,Summer,2012,Casual,Plain Tee\n"
        + "2,Men,Accessories,Ties,Ties,Pink,,2012,Formal,Turtle Men Formal Pink Tie, Cufflink and Pocket Square Set\n"
        + "3,Women,Apparel,Bottomwear,Shorts,Pink,Fall,,NA,Nike Women's EM Tempo 3.5\" Pink Short\n"
        + "\n"
        + "4,Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Casual,A, B, C\n"
    )
    table = read_metadata(path)
    assert list(table.rows) == ["1", "2", "3", "4"]
    assert table.columns[0] == "gender" and len(table.columns) == 9
    assert table.get("1")["baseColour"] is None
    assert table.get("2")["productDisplayName"] == "Turtle Men Formal Pink Tie, Cufflink and Pocket Square Set"
    assert table.get("2")["season"] is None
    assert table.get("3")["productDisplayName"] == "Nike Women's EM Tempo 3.5\" Pink Short"
    assert table.get("3")["year"] is None and table.get("3")["usage"] is None
    assert table.get("4")["productDisplayName"] == "A, B, C"
    assert table.repaired_rows == 2 and table.get("999") is None


def test_the_real_file_loses_no_row(sample_dir: Path) -> None:
    table = read_metadata(sample_dir / "styles.csv")
    lines = (sample_dir / "styles.csv").read_text().splitlines()[1:]
    assert len(table.rows) == len(lines) == 7254
    assert table.repaired_rows == 22
    for line in lines:  # the name is everything after the 9th comma, byte for byte
        product_id, name = line.split(",", 1)[0], line.split(",", 9)[9]
        assert (table.get(product_id)["productDisplayName"] or "NA") == name
    assert sum(row["season"] is None for row in table.rows.values()) == 21


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), ("", "is empty"), ("name,colour\nx,red\n", "no 'id' column")],
)
def test_unusable_files_get_clear_errors(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "styles.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(MetadataError, match=message):
        read_metadata(path)


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"])
def test_a_line_separator_inside_a_field_does_not_split_the_row(tmp_path: Path, separator: str) -> None:
    path = tmp_path / "styles.csv"
    path.write_text("id,gender,productDisplayName\n"
                    f"1,Men,Shirt{separator}with a separator\n"
                    "2,Women,Plain Tee\n", encoding="utf-8", newline="")
    table = read_metadata(path)
    assert list(table.rows) == ["1", "2"] and table.repaired_rows == 0
    assert table.get("1") == {"gender": "Men", "productDisplayName": f"Shirt{separator}with a separator"}


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_every_csv_line_ending_ends_a_row(tmp_path: Path, newline: str) -> None:
    path = tmp_path / "styles.csv"
    path.write_text(newline.join(["id,gender", "1,Men", "2,Women", ""]), encoding="utf-8", newline="")
    table = read_metadata(path)
    assert {pid: row["gender"] for pid, row in table.rows.items()} == {"1": "Men", "2": "Women"}
