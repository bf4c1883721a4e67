"""Run files are written whole or not at all (kitpose.files)."""
from pathlib import Path

import pytest

from kitpose.files import remove_leftovers, replacing, write_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "results.csv"
    write_atomic(target, "old\n")
    with pytest.raises(RuntimeError):
        with replacing(target) as temporary:
            temporary.write_text("half a")
            raise RuntimeError("the disk filled up")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def test_the_temporary_keeps_the_extension_and_leftovers_are_found(tmp_path: Path) -> None:
    with replacing(tmp_path / "curves.png") as temporary:
        assert temporary.suffix == ".png" and temporary.name.startswith(".curves.")
        temporary.write_bytes(b"png")
        (tmp_path / temporary.name.replace(".curves.", ".other.")).write_bytes(b"left by a kill")
    assert (tmp_path / "curves.png").read_bytes() == b"png"
    removed = remove_leftovers(tmp_path)
    assert [p.name.startswith(".other.") for p in removed] == [True]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]


def test_files_written_whole_get_the_mode_a_plain_write_would(tmp_path: Path) -> None:
    import os

    from kitpose.files import write_atomic

    write_atomic(tmp_path / "results.csv", "a,b\n")
    (tmp_path / "plain.csv").write_text("a,b\n")
    assert os.stat(tmp_path / "results.csv").st_mode == os.stat(tmp_path / "plain.csv").st_mode
