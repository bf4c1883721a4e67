"""The csv monitor: kitpose's monitor contract, then the files it writes."""
import csv
import logging

from kitpose.monitor import RunInfo
from kitpose.testing import check_monitor
from kitpose_example.monitor import CsvMonitor


def rows(path):
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def test_it_keeps_the_monitor_contract():
    check_monitor("csv")
    check_monitor("csv", every=2)


def test_it_writes_long_format_csv_files(tmp_path):
    monitor = CsvMonitor(every=2)
    monitor.on_start(RunInfo(name="demo", dir=tmp_path, recipe={}, epochs=1, steps_per_epoch=4))
    for step in range(1, 5):
        monitor.on_step(step, 0, {"loss": 1.0 / step})
    monitor.on_epoch(1, {"median": {"EPE@p50": 1.5}, "com": {"EPE@p50": 2.0}})
    monitor.on_end({"median": {"EPE@p50": 1.25}}, "| table |")
    monitor.close()
    assert rows(tmp_path / "steps.csv") == [["step", "epoch", "name", "value"],
                                            ["2", "1", "loss", "0.5"], ["4", "1", "loss", "0.25"]]
    assert rows(tmp_path / "validation.csv")[1:] == [["1", "median", "EPE@p50", "1.5"],
                                                     ["1", "com", "EPE@p50", "2.0"]]
    assert rows(tmp_path / "test.csv")[1:] == [["median", "EPE@p50", "1.25"]]


def test_a_resumed_run_appends_without_a_second_header(tmp_path):
    for epoch in (1, 2):
        monitor = CsvMonitor()
        monitor.on_start(RunInfo(name="demo", dir=tmp_path, recipe={}, epochs=2, steps_per_epoch=1,
                                 start_epoch=epoch - 1))
        monitor.on_epoch(epoch, {"median": {"EPE@p50": float(epoch)}})
        monitor.close()
    assert [r[0] for r in rows(tmp_path / "validation.csv")] == ["epoch", "1", "2"]


def test_an_unwritable_folder_is_reported_once_and_never_raises(tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monitor = CsvMonitor()
    monitor.on_start(RunInfo(name="demo", dir=blocker, recipe={}, epochs=1, steps_per_epoch=1))
    with caplog.at_level(logging.WARNING):
        for step in (1, 2, 3):
            monitor.on_step(step, 0, {"loss": 1.0})
    monitor.close()
    assert len([r for r in caplog.records if "cannot write steps.csv" in r.getMessage()]) == 1
