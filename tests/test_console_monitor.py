"""The console monitor's plain lines: which steps print, and an ETA that survives a resume."""
import io
import re
from pathlib import Path

import pytest

from kitpose.monitor import RunInfo
from kitpose_plugins.monitors.console import ConsoleMonitor


def lines_for(steps, every, start_epoch=0, running_for=0.0):
    monitor = ConsoleMonitor(every=every, bar=False)
    monitor.stream = io.StringIO()
    monitor.on_start(RunInfo(name="r", dir=Path("."), recipe={}, epochs=10, steps_per_epoch=10,
                             start_epoch=start_epoch))
    monitor.start -= running_for  # as if this process had started that many seconds ago
    for step in steps:
        monitor.on_step(step, 0, {"loss": 1.0})
    return [l for l in monitor.stream.getvalue().splitlines() if l.startswith("epoch")]


def test_every_keeps_at_most_one_line_per_interval_of_the_steps_it_is_given():
    # the engine logs every 4 steps and at each epoch's end; every=3 must not drop most of them
    printed = lines_for([4, 8, 10, 12, 16, 20], every=3)
    assert [int(re.search(r"step (\d+)/", l)[1]) for l in printed] == [4, 8, 12, 16, 20]


def test_eta_counts_only_the_steps_this_process_ran():
    # resumed at step 90 of 100; this process took 50 s for its 5 steps, so 5 more take 50 s
    printed = lines_for([95], every=1, start_epoch=9, running_for=50.0)
    eta = float(re.search(r"eta (\d+)s", printed[0])[1])
    assert 45 <= eta <= 55, printed[0]  # not 50 s / 95 steps x 5 = 3 s


def test_the_test_pass_shows_progress_and_counts_read_well():
    monitor = ConsoleMonitor(bar=False)
    monitor.stream = io.StringIO()
    monitor.on_start(RunInfo(name="r", dir=Path("."), recipe={}, epochs=1, steps_per_epoch=1))
    for done in range(4):
        monitor.on_evaluate("test", done, 3)
    monitor.on_evaluate("val", 0, 2)  # validation has its own lines after it ends
    text = monitor.stream.getvalue()
    assert "(1 epoch x 1 step" in text
    assert "test: 3 batches" in text and "test batch 3/3" in text and "val" not in text


def test_on_a_terminal_the_test_bar_replaces_the_training_bar():
    monitor = ConsoleMonitor(bar=True)
    monitor.stream = io.StringIO()
    monitor.on_start(RunInfo(name="r", dir=Path("."), recipe={}, epochs=1, steps_per_epoch=4))
    monitor.on_step(4, 0, {"loss": 0.5})
    monitor.on_evaluate("val", 1, 2)
    assert monitor.bar.desc.startswith("val 1/2")
    monitor.on_evaluate("val", 2, 2)
    assert monitor.bar.desc.startswith("train")
    monitor.on_evaluate("test", 0, 5)
    assert monitor.bar is None and monitor.test_bar is not None  # the training bar is closed
    monitor.on_evaluate("test", 5, 5)
    assert monitor.test_bar is None
    before = monitor.stream.getvalue()
    monitor.close()
    assert monitor.stream.getvalue() == before  # nothing drawn after the results table


def test_a_busy_machine_is_said_on_the_start_line(monkeypatch):
    import kitpose.cli as cli
    import kitpose.threads as threads

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv(cli.PASSIVE_REASON, raising=False)
    monkeypatch.setattr(threads, "busy_cores", lambda **kw: 1)
    cli._calm_threads_on_a_busy_machine(torch_loaded=False)  # as `kitpose run` does before torch loads
    import os

    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monitor = ConsoleMonitor(bar=False)
    monitor.stream = io.StringIO()
    monitor.on_start(RunInfo(name="r", dir=Path("."), recipe={}, epochs=1, steps_per_epoch=1))
    assert f"1 of {os.cpu_count()} cores busy with other work: OMP_WAIT_POLICY=PASSIVE" in monitor.stream.getvalue()
    # a wait policy the user set is theirs
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.delenv(cli.PASSIVE_REASON)
    cli._calm_threads_on_a_busy_machine(torch_loaded=False)
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE" and cli.PASSIVE_REASON not in os.environ


@pytest.mark.parametrize("threads, reason, said", [
    (1, "threads setting", "; 1 CPU thread (threads setting)"),
    (3, "auto: 1 of 4 cores busy with other work", "; 3 CPU threads (auto: 1 of 4 cores busy with other work)"),
    (1, "torch's default", None),  # torch's own count (one core, or OMP_NUM_THREADS) is not a choice of the run
])
def test_the_start_line_says_the_threads_the_recipe_chose(monkeypatch, threads, reason, said):
    import kitpose.threads

    monkeypatch.delenv(kitpose.threads.PASSIVE_REASON, raising=False)
    monitor = ConsoleMonitor(bar=False)
    monitor.stream = io.StringIO()
    monitor.on_start(RunInfo(name="r", dir=Path("."), recipe={}, epochs=1, steps_per_epoch=1, cpu_threads=threads,
                             threads_reason=reason))
    line = monitor.stream.getvalue().splitlines()[0]
    if said:
        assert line.endswith(said + ")"), line
    else:
        assert "CPU thread" not in line, line
