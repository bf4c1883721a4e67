"""The codec benchmarks run from the repository and agree with their references.

Speed is not asserted (timings belong to the benchmark output, not to tests); what is
checked is that each script runs, prints a speed-up for every case, and that kitpose's
results equal the per-joint references: within 1e-4 px for the decoders, 1e-6 for targets.
"""
import re
import subprocess
import sys

import pytest

from conftest import ROOT, kitpose_env

ROW = re.compile(r"^(?P<name>\S.*?)\s+[\d.]+ /\s+[\d.]+\s+[\d.]+ /\s+[\d.]+\s+(?P<ratio>[\d.]+)x\s+"
                 r"(?P<diff>[\d.]+e[-+]\d+)")


def rows(script: str) -> dict[str, tuple[float, float]]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--batch", "3", "--joints", "5",
         "--rounds", "1", "--calls", "1", "--threads", "1"],
        env=kitpose_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    found = {}
    for line in result.stdout.splitlines():
        match = ROW.match(line.strip())
        if match:
            found[match["name"].strip()] = (float(match["ratio"]), float(match["diff"]))
    return found


@pytest.mark.parametrize("script, names, tolerance", [
    ("decode.py", {"argmax", "standard", "dark", "dark_udp", "megvii_peak", "udp_offsets", "com", "gaussfit",
                   "soft_argmax"}, 1e-4),
    ("encode.py", {"gaussian (quantised)", "reference hoisted", "gaussian (unbiased)", "one_hot (own loop)", "disk", "megvii",
                   "udp_combined"}, 1e-6),
    ("integral.py", {"soft_argmax", "soft_argmax debias", "dsnt_reg (js)"}, 1e-3),
])
def test_benchmark_runs_and_matches_its_reference(script, names, tolerance):
    found = rows(script)
    assert set(found) == names
    for name, (ratio, diff) in found.items():
        assert ratio > 0, name
        assert diff <= tolerance, (name, diff)


def test_dark_step_measurement_runs_and_the_uncapped_step_is_the_reference():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "dark_step.py"), "--batch", "2",
                             "--joints", "4"], env=kitpose_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    table = [line.split("|")[1].split() for line in result.stdout.splitlines() if "|" in line][1:]
    assert len(table) == 20
    assert all(free == reference for _, free, reference in table)  # no cap: DarkPose's numbers
    assert "mean over every row" in result.stdout


def test_simcc_benchmark_runs_and_matches_its_reference():
    found = rows("simcc.py")
    assert set(found) == {"encoder", "decoder", "decoder dark"}
    for name, (ratio, diff) in found.items():
        assert ratio > 0, name
        assert diff <= (1e-6 if name.startswith("encoder") else 1e-3), (name, diff)  # dark: float32 vs float64
