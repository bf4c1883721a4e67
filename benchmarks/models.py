"""Forward+backward speed, peak memory and size of the built-in models on this machine.

    python benchmarks/models.py                      # every model, CPU settings (~1-2 min)
    python benchmarks/models.py --models hrnet_small,hourglass_small --batch 8
    python benchmarks/models.py --device cuda --batch 64 --channels 3

There is no target yet: this prints the baseline, every figure measured in this
run. One step is forward, a mean-squared loss over every returned map (every stage
of a multi-stage model) and backward. Images/s uses the median step time, which
the other jobs sharing the CPU disturb least.

Each model runs in a fresh subprocess, so that memory one model freed into the
allocator's cache cannot hide the next one's peak. On CPU, peak memory is how much
the peak resident set grows during the steps (after the model and batch exist);
on CUDA it is ``torch.cuda.max_memory_allocated`` during the steps.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

#: name -> (backbone name, backbone params, head name or None, head params, what it is)
MODELS: dict[str, tuple[str, dict[str, Any], str | None, dict[str, Any], str]] = {
    "hrnet_small": ("hrnet", {"variant": "small"}, "heatmap", {"in_channels": 16},
                    "HRNet CPU variant, width 16 + 1x1 head (recipes/hrnet_dark.yaml)"),
    "hrnet_w32": ("hrnet", {"width": 32, "stages": 4}, "heatmap", {"in_channels": 32},
                  "HRNet-W32, 4 stages (the reproduction's) + 1x1 head"),
    "hourglass_small": ("hourglass", {"stacks": 2, "width": 32, "depth": 3, "stem_channels": 32}, None, {},
                        "Stacked Hourglass, 2 stacks, width 32, depth 3, stem 32 (CPU setting)"),
    "hourglass_4x128": ("hourglass", {"stacks": 4, "width": 128}, None, {},
                        "Stacked Hourglass, 4 stacks, width 128 (the reproduction's)"),
    "resnet18_deconv": ("resnet", {"depth": 18}, "heatmap", {"in_channels": 512, "deconv_layers": 3},
                        "ResNet-18 + 3 deconvolutions (SimpleBaseline head)"),
    "resnet50_deconv": ("resnet", {"depth": 50}, "heatmap", {"in_channels": 2048, "deconv_layers": 3},
                        "ResNet-50 + 3 deconvolutions (SimpleBaseline)"),
    "resnet18_multistage": ("resnet_multistage", {"depth": 18, "stages": 2}, None, {},
                            "multi-stage ResNet-18, 2 stages"),
    "resnet18_volumetric": ("resnet", {"depth": 18}, "volumetric",
                            {"in_channels": 512, "deconv_layers": 3, "depth": 16},
                            "ResNet-18 + deconvolutions + 3D head, 16 depth bins"),
    "resnet18_regression": ("resnet", {"depth": 18}, "regression", {"in_channels": 512, "feature_stride": 32},
                            "ResNet-18 + direct regression (R1)"),
}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def measure(name: str, batch: int, size: int, channels: int, steps: int, joints: int, threads: int,
            device: str) -> dict[str, Any]:
    """Build one model, run ``1 + steps`` training steps, return its figures."""
    import torch

    import kitpose

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    backbone_name, backbone_params, head_name, head_params, _ = MODELS[name]
    backbone_params = {**backbone_params, "in_channels": channels}
    if head_name is None:
        backbone_params = {**backbone_params, "joints": joints}
    parts = [kitpose.build("backbone", backbone_name, **backbone_params)]
    if head_name is not None:
        parts.append(kitpose.build("head", head_name, joints=joints, **head_params))
    model = torch.nn.Sequential(*parts).to(device).train()
    params = sum(p.numel() for p in model.parameters())
    image = torch.randn(batch, channels, size, size, device=device)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        out = parts[0](image=image)
        if len(parts) > 1:
            out = parts[1](features=out["features"])
        maps = out.get("stages") or [out.get("heatmaps", out.get("keypoints"))]
        loss = sum(m.float().square().mean() for m in maps)
        loss.backward()

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.max_memory_allocated()
    else:
        base = _peak_rss_mb()
    times = []
    for i in range(steps + 1):  # the first step warms up and is not timed
        start = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if cuda else _peak_rss_mb() - base
    median = statistics.median(times)
    return {"model": name, "params": params, "images_per_s": batch / median,
            "best_images_per_s": batch / min(times), "step_s": median, "peak_mb": peak}


def _run_isolated(name: str, args: argparse.Namespace) -> dict[str, Any]:
    options = {"--batch": args.batch, "--size": args.size, "--channels": args.channels, "--steps": args.steps,
               "--joints": args.joints, "--threads": args.threads, "--device": args.device}
    command = [sys.executable, __file__, "--one", name]
    for flag, value in options.items():
        command += [flag, str(value)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
        return {"model": name, "error": lines[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated names from: " + ", ".join(MODELS))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=128, help="square input size in px")
    parser.add_argument("--channels", type=int, default=1,
                        help="image channels (1: depth maps, as in the synthetic recipes; 3: colour)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--joints", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device == "auto":
        import torch
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.one:
        result = measure(args.one, args.batch, args.size, args.channels, args.steps, args.joints,
                         args.threads, args.device)
        print(json.dumps(result))
        return 0
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    memory = "peak CUDA MB" if args.device.startswith("cuda") else "peak RSS +MB"
    print(f"forward+backward, batch {args.batch}, {args.channels}x{args.size}x{args.size} input, "
          f"{args.joints} joints, device {args.device}, {args.threads} threads, "
          f"median of {args.steps} steps")
    header = f"{'model':<21} {'params (M)':>10} {'img/s':>8} {'best':>8} {'step s':>8} {memory:>13}  setting"
    print(header)
    print("-" * len(header))
    failed = 0
    started = time.perf_counter()
    for name in names:
        row = _run_isolated(name, args)
        if "error" in row:
            failed += 1
            print(f"{name:<21} failed: {row['error']}")
            continue
        print(f"{name:<21} {row['params'] / 1e6:>10.2f} {row['images_per_s']:>8.1f} "
              f"{row['best_images_per_s']:>8.1f} {row['step_s']:>8.3f} {row['peak_mb']:>13.0f}  "
              f"{MODELS[name][4]}", flush=True)
    print(f"({len(names)} models in {time.perf_counter() - started:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
