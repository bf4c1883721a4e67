"""Training throughput with the visdom monitor on, against the same loop with it off.

A Visdom server runs the whole time (started here, on a free loopback port, and
always stopped). A small heatmap model trains on random 64x64 images; with the
monitor on, every step is logged (the worst case: ``log_every: 1``) and every
``--epoch-every`` steps a validation snapshot with images and heatmaps is sent.
Rounds alternate off/on so that load from other processes hits both alike; the
printed ratio is the median of the per-round ratios (on / off). Target: >= 0.97.

On a machine shared with other work the wall-clock ratio is noisy, so the script
also counts CPU time (Linux): the monitor's sender thread and the server process
against the training process. ``cpu share`` = training CPU / all CPU while the
monitor is on; on a busy machine throughput follows that share, whatever the load.

    .venv/bin/python benchmarks/monitor.py [--rounds 9] [--steps 100] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import threading
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kitpose.monitor import Monitor, RunInfo, Snapshot

JOINTS, SIZE, BATCH = 16, 64, 16
SKELETON = tuple((k, k + 1) for k in range(JOINTS - 1))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int, env_path: Path) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "kitpose", "visdom", "--port", str(port),
                               "--env-path", str(env_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the visdom server did not start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the visdom server did not answer within 60 s")


def cpu_seconds(stat: Path) -> float:
    """User + system CPU seconds from a /proc stat file (0 where there is none)."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sender_cpu() -> float:
    """CPU seconds of the visdom monitor's sender threads in this process."""
    return sum(cpu_seconds(Path(f"/proc/self/task/{t.native_id}/stat")) for t in threading.enumerate()
               if t.name.startswith("kitpose-visdom") and t.native_id is not None)


def model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                         nn.Conv2d(64, 64, 3, 1, 1), nn.ReLU(), nn.Conv2d(64, JOINTS, 1))


def snapshot(images: torch.Tensor, heatmaps: torch.Tensor, target: torch.Tensor) -> Snapshot:
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(4, SIZE - 4, (4, JOINTS, 2)).astype(np.float32)
    batch = {"image": images[:4].numpy(), "keypoints": keypoints, "visible": np.ones((4, JOINTS), np.float32),
             "heatmaps": heatmaps[:4].detach().numpy(), "target": target[:4].numpy()}
    return Snapshot({"argmax": {**batch, "pred_keypoints": keypoints + 1},
                     "dark": {**batch, "pred_keypoints": keypoints + 0.5}})


def train(net: nn.Module, steps: int, monitor: Monitor | None, first_step: int, epoch_every: int) -> float:
    """Images per second over ``steps`` training steps, calling ``monitor`` as the engine does."""
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(BATCH, 3, SIZE, SIZE, generator=generator)
    target = torch.rand(BATCH, JOINTS, SIZE // 4, SIZE // 4, generator=generator)
    started = time.perf_counter()
    for i in range(steps):
        heatmaps = net(images)
        loss = ((heatmaps - target) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if monitor is not None:
            step = first_step + i
            value = float(loss.detach())
            monitor.on_step(step, step // epoch_every, {"loss": value, "loss_heatmap": value, "lr": 1e-3,
                                                        "images_per_s": BATCH * (i + 1) / (time.perf_counter() - started)})
            if (i + 1) % epoch_every == 0:
                monitor.on_epoch(step // epoch_every, {"argmax": {"pck": 0.5}, "dark": {"pck": 0.6}},
                                 snapshot(images, heatmaps, target))
    return BATCH * steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=100, help="training steps per measurement")
    parser.add_argument("--epoch-every", type=int, default=100, help="steps between validation snapshots")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import kitpose

    torch.manual_seed(0)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="kitpose-bench-") as tmp:
        server = start_server(port, Path(tmp) / "envs")
        try:
            net = model()
            monitor = kitpose.build("monitor", "visdom", port=port, interval=1.0)
            monitor.on_start(RunInfo(name="bench/monitor", dir=Path(tmp) / "run", recipe={}, epochs=1,
                                     steps_per_epoch=args.steps, skeleton=SKELETON))
            train(net, 10, None, 0, args.epoch_every)  # warm-up
            train(net, 10, monitor, 1, args.epoch_every)  # and the monitor's first connection
            monitor.flush(30)
            off, on, step = [], [], 11
            server_stat = Path(f"/proc/{server.pid}/stat")
            process_cpu = sender = served = 0.0
            for _ in range(args.rounds):
                off.append(train(net, args.steps, None, 0, args.epoch_every))
                before = (time.process_time(), sender_cpu(), cpu_seconds(server_stat))
                on.append(train(net, args.steps, monitor, step, args.epoch_every))
                after = (time.process_time(), sender_cpu(), cpu_seconds(server_stat))
                process_cpu += after[0] - before[0]
                sender += after[1] - before[1]
                served += after[2] - before[2]
                step += args.steps
            sent = monitor.flush(30)
            monitor.close()
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
    ratios = [b / a for a, b in zip(off, on)]
    print(f"torch threads: {torch.get_num_threads()}, batch {BATCH} at {SIZE}x{SIZE}")
    print(f"monitor off: {statistics.median(off):7.1f} images/s (median of {args.rounds} rounds of {args.steps} steps)")
    print(f"monitor on:  {statistics.median(on):7.1f} images/s (every step logged, snapshot every "
          f"{args.epoch_every} steps; all sent: {sent})")
    print(f"throughput ratio on/off: {statistics.median(ratios):.3f} (target >= 0.97; "
          f"rounds: {', '.join(f'{r:.3f}' for r in ratios)})")
    if process_cpu > 0:
        training = process_cpu - sender  # the sender thread runs inside this process
        share = training / max(1e-9, training + sender + served)
        print(f"cpu while on: training {training:.2f} s, sender thread {sender:.2f} s, server {served:.2f} s; "
              f"cpu share of training {share:.3f}")


if __name__ == "__main__":
    main()
