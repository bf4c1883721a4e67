"""kitpose.memory: freed memory kept in the process, so large temporaries are not faulted in
again on every call; the user's own allocator settings are left alone."""
from __future__ import annotations

import subprocess
import sys

import pytest

from kitpose import memory

# Blocks below glibc's mmap threshold, written and freed each step: with glibc's default
# trim threshold (128 KiB) the freed top of the heap goes back to the kernel every step,
# and the next step faults every page in again.
STEPS = """
import ctypes, resource, sys
from kitpose import memory
ctypes.CDLL(None).prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE: 4 KiB pages, as counted below, on any THP setting
if sys.argv[1] == "kept":
    print(memory.keep_freed_memory())
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
size, count = int(sys.argv[2]), int(sys.argv[3])
def step():
    blocks = [libc.malloc(size) for _ in range(count)]
    for block in blocks:
        ctypes.memset(block, 1, size)
    for block in reversed(blocks):
        libc.free(block)
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def faults_per_step(mode: str, size: int = 100 << 10, count: int = 40) -> tuple[str, float]:
    out = subprocess.run([sys.executable, "-c", STEPS, mode, str(size), str(count)], capture_output=True,
                         text=True, timeout=60, check=True).stdout.split("\n")
    return (out[0] if mode == "kept" else ""), float(out[-2])


@pytest.mark.skipif(memory._glibc() is None, reason="glibc's malloc only")
def test_kept_memory_is_not_faulted_in_again_every_step():
    _, default = faults_per_step("default")
    said, kept = faults_per_step("kept")
    assert default > 500  # 4 MB of 4 KiB pages, given back and faulted in again each step
    assert said == "freed memory kept in the process"
    assert kept < 5


@pytest.mark.skipif(memory._glibc() is None, reason="glibc's malloc only")
def test_blocks_above_the_mmap_threshold_are_reused_too():
    # one 48 MiB block a step (a batch of large maps): glibc maps it from the kernel and
    # unmaps it on free, so each step faults in 12,288 pages; kept, it comes from the heap
    _, default = faults_per_step("default", 48 << 20, 1)
    _, kept = faults_per_step("kept", 48 << 20, 1)
    assert default > 6000
    assert kept < 5


@pytest.mark.parametrize("name, value, said", [
    ("MALLOC_TRIM_THRESHOLD_", "1048576", "kept as set (MALLOC_TRIM_THRESHOLD_)"),
    ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1048576", "kept as set (GLIBC_TUNABLES)"),
    ("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "kept: another allocator is preloaded"),
])
def test_the_users_allocator_settings_are_kept(monkeypatch, name, value, said):
    monkeypatch.setattr(memory, "outcome", None)
    monkeypatch.setattr(memory, "_glibc", lambda: pytest.fail("mallopt must not be called"))
    monkeypatch.setenv(name, value)
    assert memory.keep_freed_memory() == said
    assert memory.outcome == said


def test_a_run_from_the_command_line_keeps_freed_memory_and_logs_it(toy_recipe, tmp_path):
    from conftest import run_cli

    result = run_cli("run", str(toy_recipe), "--run-dir", str(tmp_path / "r"), "train.epochs=1")
    assert result.returncode == 0, result.stderr
    expected = "freed memory kept in the process" if memory._glibc() else "kept: not glibc"
    assert f"INFO allocator: {expected}" in (tmp_path / "r" / "run.log").read_text()
