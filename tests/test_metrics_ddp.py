"""Metrics reduced across two DDP processes (gloo, CPU) equal the single-process result."""
from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import kitpose

METRICS = {
    "pckh": {"thresholds": [0.1, 0.5]}, "pck": {}, "auc": {}, "rmse": {}, "epe": {}, "mpjpe": {"root": 0},
    "pa_mpjpe": {}, "oks_ap": {},
}
SPLIT = 13  # rank 0 gets rows [0, 13), rank 1 the other 19: uneven shards


def _data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(21)
    n, k = 32, 17
    target = torch.rand(n, k, 2, generator=g) * 120
    return {
        "pred": target + torch.randn(n, k, 2, generator=g) * 5,
        "target": target,
        "visible": torch.rand(n, k, generator=g) > 0.25,
        "head_size": torch.rand(n, generator=g) * 20 + 10,
        "bbox": torch.cat([torch.zeros(n, 2), torch.rand(n, 2, generator=g) * 80 + 40], 1),
        "area": torch.rand(n, generator=g) * 9000 + 600,
        "scores": torch.rand(n, generator=g),
        "image_id": torch.randint(0, 12, (n,), generator=g),
    }


def _run(rows: slice, batch: int = 5) -> dict[str, dict]:
    """Every metric (plus one that only rank 0 feeds) updated in small batches over ``rows``."""
    data = {k: v[rows] for k, v in _data().items()}
    results = {}
    for name, params in METRICS.items():
        m = kitpose.build("metric", name, **params)
        n = len(data["pred"])
        for start in range(0, n, batch):
            m.update(**{k: v[start:start + batch] for k, v in data.items()})
        results[name] = {"compute": m.compute(), "per_joint": m.per_joint()}
    return results


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        results = _run(slice(0, SPLIT) if rank == 0 else slice(SPLIT, None))
        lonely = kitpose.build("metric", "rmse")  # rank 1 holds nothing for this one
        if rank == 0:
            lonely.update(**{k: v[:4] for k, v in _data().items()})
        results["lonely"] = {"compute": lonely.compute(), "per_joint": lonely.per_joint()}
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-9)


def test_metrics_gathered_over_two_processes_equal_one_process(tmp_path):
    context = mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=False)
    deadline = time.monotonic() + 120
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for p in context.processes:
                p.terminate()
            pytest.fail("the DDP workers did not finish in 120 s (a collective out of step?)")
    single = _run(slice(None))
    lonely = kitpose.build("metric", "rmse")
    lonely.update(**{k: v[:4] for k, v in _data().items()})
    single["lonely"] = {"compute": lonely.compute(), "per_joint": lonely.per_joint()}
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        assert got.keys() == single.keys()
        for name, expected in single.items():
            assert got[name]["compute"].keys() == expected["compute"].keys(), name
            for key, value in expected["compute"].items():
                assert _same(got[name]["compute"][key], value), (rank, name, key)
            for key, values in expected["per_joint"].items():
                assert all(map(_same, got[name]["per_joint"][key], values)), (rank, name, key)
    # the shards alone give other numbers: the equality above is the reduction's doing
    alone = _run(slice(0, SPLIT))
    assert alone["rmse"]["compute"]["RMSE"] != pytest.approx(single["rmse"]["compute"]["RMSE"])
