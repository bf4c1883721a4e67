"""Engine overhead: `kitpose run`'s training loop against a plain hand-written PyTorch loop.

Both train the same model (the default recipe's HRNet and heatmap head), on the same
synthetic data and targets, for the same number of steps, in this process; the
ratio of their throughputs is printed (target: kitpose >= 0.95 x the plain loop).
Monitors are not built: this measures the loop itself (flows, sampler, checkpoints);
``benchmarks/monitor.py`` measures what a monitor costs.

    python benchmarks/engine.py [--steps 30] [--rounds 3]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import kitpose
from kitpose.data import build_split, collate
from kitpose.engine import Run
from kitpose.plan import check_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "hrnet_dark.yaml"


def overrides(steps: int, batch: int) -> list[str]:
    return [f"train.steps={steps}", f"data.train.batch_size={batch}", "~data.val", "~data.test",
            "~flows.test", "train.log_every=1000000", "device=cpu"]


def kitpose_loop(steps: int, batch: int, tmp: Path) -> float:
    plan = check_recipe(str(RECIPE), overrides(steps, batch))
    run = Run(plan, run_dir=tmp)
    run.build()
    start = time.perf_counter()
    run.train(run.epochs())
    return steps * batch / (time.perf_counter() - start)


def plain_loop(steps: int, batch: int) -> float:
    plan = check_recipe(str(RECIPE), overrides(steps, batch))
    registry, components = plan.registry, plan.components
    torch.manual_seed(0)
    encoder = components["encoder"].build(registry)
    backbone = components["backbone"].build(registry)
    head = components["head"].build(registry)
    loss_fn = components["loss"].build(registry)
    params = list(backbone.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=2e-3)
    dataset = build_split(plan.splits["train"], registry, seed=0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, collate_fn=collate,
                                         drop_last=True)
    done = 0
    start = time.perf_counter()
    while done < steps:
        for sample in loader:
            targets = encoder(keypoints=sample["keypoints"], visible=sample["visible"])
            heatmaps = head(features=backbone(image=sample["image"])["features"])["heatmaps"]
            loss = loss_fn(pred=heatmaps, target=targets["heatmaps"], weights=targets["weights"])["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    import tempfile

    kitpose.available("backbone")  # load the plugins before timing
    best_kit, best_plain = 0.0, 0.0
    for round_ in range(args.rounds):  # alternate, keep the best of each: less noise from the machine
        with tempfile.TemporaryDirectory() as tmp:
            best_kit = max(best_kit, kitpose_loop(args.steps, args.batch, Path(tmp) / "run"))
        best_plain = max(best_plain, plain_loop(args.steps, args.batch))
        print(f"round {round_ + 1}: kitpose {best_kit:.1f} img/s, plain loop {best_plain:.1f} img/s")
    print(f"kitpose / plain throughput ratio: {best_kit / best_plain:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
