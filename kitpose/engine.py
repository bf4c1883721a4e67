"""The runner behind ``kitpose run``: train, validate, test, checkpoint, resume.

The engine knows flows, not methods: it builds the components a plan names, runs
the train flow through one module (so DDP and AMP see a single forward), minimises
the tensor named by ``train.objective``, and scores every val/test branch.
"""
from __future__ import annotations

import json
import logging
import math
import os
import platform
import random
import shutil
import signal
import sys
import time
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kitpose import __version__, checkpoint
from kitpose import distributed as dist_utils
from kitpose.components import ComponentSpec, Group
from kitpose.data import PipelineDataset, build_split, collate
from kitpose.errors import RunError
from kitpose.flow import Flow, FlowRunner
from kitpose.monitor import Monitor, RunInfo, Snapshot
from kitpose.plan import Plan, check_recipe, plan_recipe
from kitpose.plugins import get_plugin_manager
from kitpose.recipe import load_recipe
from kitpose import results as results_io

__all__ = ["Run", "check_recipe", "run_recipe"]

log = logging.getLogger("kitpose")
MIN_FREE_BYTES = 50 * 2**20


def pick_device(setting: str | None) -> torch.device:
    """``auto`` picks CUDA when present (this rank's GPU under torchrun), else the CPU."""
    setting = (setting or "auto").lower()
    if setting == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    try:
        device = torch.device(setting)
    except RuntimeError:
        raise RunError(f"unknown device '{setting}'", path="device", hint="use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RunError(f"device '{setting}' asked for but CUDA is not available", path="device",
                       hint="use device=auto or device=cpu")
    return device


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def _worker_init(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    seed = int(info.seed % 2**32) if info is not None else worker_id
    np.random.seed(seed)
    random.seed(seed)


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


class FlowModule(nn.Module):
    """Every module-type component in one ``nn.Module``; its forward runs the train flow."""

    def __init__(self, objects: Mapping[str, Any]) -> None:
        super().__init__()
        self.parts = nn.ModuleDict()
        for key, obj in objects.items():
            if isinstance(obj, nn.Module):
                self.parts[key] = obj
            elif isinstance(obj, dict) and any(isinstance(v, nn.Module) for v in obj.values()):
                self.parts[key] = nn.ModuleDict({k: v for k, v in obj.items() if isinstance(v, nn.Module)})
        self.runner: FlowRunner | None = None

    def forward(self, **batch: Any) -> dict[str, Any]:
        assert self.runner is not None
        return self.runner(batch)[""]


@dataclass
class State:
    """Where training is: saved in ``last.pt`` with the weights."""

    epoch: int = 0          # epochs completed
    step: int = 0           # optimizer steps done
    batch_in_epoch: int = 0  # batches done in the current (unfinished) epoch
    best: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


class Run:
    """One ``kitpose run``: builds the plan's components and drives the stages."""

    def __init__(self, plan: Plan, *, run_dir: Path | None = None, resume: Path | None = None) -> None:
        self.plan = plan
        self.recipe = plan.recipe
        self.registry = plan.registry
        cfg = self.recipe
        self.seed = int(cfg.select("seed", 0) or 0)
        self.deterministic = bool(cfg.select("deterministic", False))
        self.device = pick_device(cfg.select("device", "auto"))
        self.distributed = dist_utils.init_from_env(self.device)
        self.rank, self.world = dist_utils.rank(), dist_utils.world_size()
        self.main = self.rank == 0
        seed_everything(self.seed + self.rank, self.deterministic)
        self.amp = self._amp(cfg.select("amp", None))
        self.train_cfg = plan.settings["train"]
        self.val_cfg = plan.settings["val"]
        self.test_cfg = plan.settings["test"]
        self.resume_from = resume
        self.dir = self._make_dir(run_dir, resume)
        self.state = State()
        self.monitors: dict[str, Monitor] = {}
        self._failed_monitors: set[str] = set()
        self._stop = False

    # -- setup ----------------------------------------------------------------------------------
    def _amp(self, setting: str | None) -> torch.dtype | None:
        if not setting:
            return None
        kinds = {"bf16": torch.bfloat16, "fp16": torch.float16}
        if setting not in kinds:
            raise RunError(f"amp must be bf16 or fp16, not '{setting}'", file=self.recipe.file, path="amp")
        if self.device.type != "cuda":
            if self.main:
                print(f"kitpose: amp={setting} is ignored on {self.device.type}; training in float32",
                      file=sys.stderr)
            return None
        return kinds[setting]

    def _make_dir(self, run_dir: Path | None, resume: Path | None) -> Path:
        if resume is not None:
            folder = resume
        elif run_dir is not None:
            folder = Path(run_dir)
        else:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            root = Path(self.recipe.select("runs_dir", "runs") or "runs")
            folder = root / self.recipe.name / stamp
            n = 1
            while folder.exists() and self.main:
                n += 1
                folder = root / self.recipe.name / f"{stamp}-{n}"
        folder = Path(dist_utils.broadcast(str(folder)))
        if self.main:
            try:
                (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
                probe = folder / ".write-test"
                probe.write_text("ok")
                probe.unlink()
            except OSError as exc:
                raise RunError(f"cannot write the run directory: {exc.strerror or exc}", file=str(folder),
                               hint="choose another runs_dir or --run-dir") from None
            free = shutil.disk_usage(folder).free
            if free < MIN_FREE_BYTES:
                raise RunError(f"only {free / 2**20:.0f} MiB free for the run directory", file=str(folder),
                               hint="free some disk space or choose another runs_dir")
        dist_utils.barrier()
        return folder

    def _write_run_files(self) -> None:
        if not self.main:
            return
        (self.dir / "recipe.yaml").write_text(self.recipe.given(), encoding="utf-8")
        (self.dir / "recipe.resolved.yaml").write_text(self.recipe.resolved_yaml(), encoding="utf-8")
        plugins = [{"name": i.name, "module": i.module, "dist": i.dist, "version": i.version,
                    "status": i.status, "error": i.error}
                   for i in get_plugin_manager().plugin_infos()]
        info = {"kitpose": __version__, "torch": torch.__version__, "python": platform.python_version(),
                "recipe": self.recipe.file, "sources": self.recipe.sources, "overrides": self.recipe.overrides,
                "command": sys.argv, "device": str(self.device), "world_size": self.world,
                "seed": self.seed, "plugins": plugins, "started": datetime.now().isoformat(timespec="seconds")}
        (self.dir / "run.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
        handler = logging.FileHandler(self.dir / "run.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        self._log_handler = handler

    def build(self) -> None:
        """Build datasets, loaders, components, optimizer and scheduler."""
        plan = self.plan
        self.objects: dict[str, Any] = {}
        for key, item in plan.components.items():
            if isinstance(item, Group):
                if item.kind == "metric":
                    continue
                self.objects[key] = {m: spec.build(self.registry) for m, spec in item.members.items()}
            elif item.kind != "metric":
                self.objects[key] = item.build(self.registry)
        self.module = FlowModule(self.objects).to(self.device)
        self.datasets: dict[str, PipelineDataset] = {}
        self.samplers: dict[str, Any] = {}
        self.loaders: dict[str, Any] = {}
        for split, spec in plan.splits.items():
            if split not in plan.flows and not (split == "val" and plan.flow_for("val")):
                continue
            dataset = build_split(spec, self.registry, seed=self.seed + {"train": 0, "val": 1, "test": 2}[split])
            if len(dataset) == 0:
                raise RunError(f"the {split} dataset is empty", file=self.recipe.file, path=f"data.{split}")
            sampler = dist_utils.EpochSampler(len(dataset), shuffle=spec.shuffle, seed=self.seed,
                                              batch_size=spec.batch_size, drop_last=spec.drop_last,
                                              rank=self.rank, world=self.world, pad=split == "train")
            self.datasets[split], self.samplers[split] = dataset, sampler
            self.loaders[split] = torch.utils.data.DataLoader(
                dataset, batch_size=spec.batch_size, sampler=sampler, collate_fn=collate,
                num_workers=spec.workers, drop_last=False, worker_init_fn=_worker_init,
                pin_memory=self.device.type == "cuda")
        self.train_flow = plan.flows.get("train")
        if self.train_flow is not None:
            self.module.runner = FlowRunner(self.train_flow, self.objects)
            params = [p for p in self.module.parameters() if p.requires_grad]
            if not params:
                raise RunError("the train flow has nothing to train", file=self.recipe.file,
                               path="flows.train", hint="call a model (backbone/head) in flows.train")
            self.optimizer = plan.optimizer.build(self.registry, params)
            self.scheduler = plan.scheduler.build(self.registry, self.optimizer) if plan.scheduler else None
            self.trainer: nn.Module = self.module
            if self.distributed:
                ids = [self.device.index] if self.device.type == "cuda" else None
                self.trainer = nn.parallel.DistributedDataParallel(self.module, device_ids=ids,
                                                                   find_unused_parameters=True)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp is torch.float16)

    def _make_metric(self, component: str, member: str | None) -> Any:
        item = self.plan.components[component]
        spec = item.members[member] if isinstance(item, Group) and member else item
        assert isinstance(spec, ComponentSpec)
        return spec.build(self.registry)

    def build_monitors(self) -> None:
        if not self.main:
            return
        for key, spec in self.plan.monitors.items():
            self.monitors[key] = spec.build(self.registry)

    def notify(self, hook: str, *args: Any) -> None:
        """Call a monitor hook on every monitor; a failure is logged once and ignored."""
        for key, monitor in self.monitors.items():
            try:
                getattr(monitor, hook)(*args)
            except Exception as exc:
                if key not in self._failed_monitors:
                    self._failed_monitors.add(key)
                    message = f"monitor '{key}' failed in {hook}: {type(exc).__name__}: {exc}"
                    print(f"kitpose: warning: {message} (training goes on)", file=sys.stderr)
                    log.warning(message)

    # -- checkpoints ---------------------------------------------------------------------------
    def _checkpoint(self) -> dict[str, Any]:
        ckpt: dict[str, Any] = {
            "kitpose": __version__, "model": self.module.state_dict(),
            "state": {"epoch": self.state.epoch, "step": self.state.step,
                      "batch_in_epoch": self.state.batch_in_epoch, "best": self.state.best,
                      "best_epoch": self.state.best_epoch},
            "history": json.dumps(self.state.history), "rng": checkpoint.rng_state(),
        }
        if self.train_flow is not None:
            ckpt["optimizer"] = self.optimizer.state_dict()
            ckpt["scaler"] = self.scaler.state_dict()
            if self.scheduler is not None:
                ckpt["scheduler"] = self.scheduler.state_dict()
        return ckpt

    def save(self, name: str) -> None:
        if self.main:
            checkpoint.save_atomic(self._checkpoint(), self.dir / "checkpoints" / f"{name}.pt")
        dist_utils.barrier()

    def restore(self, path: Path, *, weights_only: bool = False) -> None:
        ckpt = checkpoint.load(path)
        checkpoint.load_model_state(self.module, ckpt["model"], file=str(path))
        if weights_only:
            return
        s = ckpt["state"]
        self.state = State(s["epoch"], s["step"], s["batch_in_epoch"], s["best"], s["best_epoch"],
                           json.loads(ckpt.get("history", "[]")))
        if self.train_flow is not None and "optimizer" in ckpt:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scaler.load_state_dict(ckpt["scaler"])
            if self.scheduler is not None and "scheduler" in ckpt:
                self.scheduler.load_state_dict(ckpt["scheduler"])
        checkpoint.set_rng_state(ckpt["rng"])

    # -- stages -------------------------------------------------------------------------------
    def execute(self) -> dict[str, dict[str, float]]:
        """Train (with validation), then test; returns the test results."""
        self._write_run_files()
        self.build()
        if self.resume_from is not None:
            self.restore(self.dir / "checkpoints" / "last.pt")
        self.build_monitors()
        epochs = self.epochs()
        info = RunInfo(name=f"{self.recipe.name}/{self.dir.name}", dir=self.dir, recipe=self.recipe.resolved(),
                       epochs=epochs, steps_per_epoch=self.steps_per_epoch(), start_epoch=self.state.epoch,
                       joint_names=tuple(self._meta("joint_names", ())), skeleton=tuple(self._meta("skeleton", ())))
        self.notify("on_start", info)
        previous = signal.getsignal(signal.SIGTERM)
        if self.main:
            signal.signal(signal.SIGTERM, self._on_sigterm)
        results: dict[str, dict[str, float]] = {}
        try:
            if self.train_flow is not None:
                self.train(epochs)
            if "test" in self.plan.flows and "test" in self.loaders:
                results = self.test()
        except KeyboardInterrupt:
            self._interrupted()
            raise
        finally:
            if self.main:
                signal.signal(signal.SIGTERM, previous)
            self.notify("close")
            handler = getattr(self, "_log_handler", None)
            if handler is not None:
                log.removeHandler(handler)
                handler.close()
        return results

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    def _interrupted(self) -> None:
        if self.train_flow is not None:
            self.save("last")
        if self.main:
            command = f"kitpose run {self.recipe.file} --resume {self.dir}"
            print(f"\nkitpose: interrupted; progress saved. Resume with:\n  {command}", file=sys.stderr)

    def _meta(self, name: str, default: Any) -> Any:
        for split in ("train", "val", "test"):
            if split in self.datasets:
                return getattr(self.datasets[split], name, default)
        return default

    def epochs(self) -> int:
        if self.train_flow is None:
            return 0
        steps = self.train_cfg.get("steps")
        if steps:
            return max(1, math.ceil(int(steps) / max(1, self.steps_per_epoch())))
        return int(self.train_cfg["epochs"])

    def steps_per_epoch(self) -> int:
        return self.samplers["train"].batches_per_epoch() if "train" in self.samplers else 0

    def train(self, epochs: int) -> None:
        max_steps = int(self.train_cfg["steps"]) if self.train_cfg.get("steps") else None
        log_every = max(1, int(self.train_cfg["log_every"]))
        objective = self.train_cfg["objective"]
        clip = self.train_cfg.get("clip_grad")
        per_step_scheduler = self.train_cfg.get("scheduler_interval") == "step"
        loader, sampler, dataset = self.loaders["train"], self.samplers["train"], self.datasets["train"]
        while self.state.epoch < epochs:
            epoch = self.state.epoch
            dataset.set_epoch(epoch)
            sampler.set_epoch(epoch, self.state.batch_in_epoch)
            self.trainer.train()
            started, seen = time.perf_counter(), 0
            for batch in loader:
                batch = to_device(batch, self.device)
                autocast = torch.autocast("cuda", dtype=self.amp) if self.amp else nullcontext()
                with autocast:
                    env = self.trainer(**batch)
                loss = env[objective] if isinstance(objective, str) else \
                    sum(float(weight) * env[name] for name, weight in objective.items())
                if not torch.isfinite(loss.detach()).all():
                    raise RunError(f"the loss is {loss.item()} at step {self.state.step + 1} "
                                   f"(epoch {epoch + 1}); the last good checkpoint is kept",
                                   file=str(self.dir / "checkpoints" / "last.pt"),
                                   hint="lower the learning rate, set train.clip_grad, or check the data")
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                if clip:
                    self.scaler.unscale_(self.optimizer)
                    nn.utils.clip_grad_norm_(self.module.parameters(), float(clip))
                self.scaler.step(self.optimizer)
                self.scaler.update()
                if self.scheduler is not None and per_step_scheduler:
                    self.scheduler.step()
                self.state.step += 1
                self.state.batch_in_epoch += 1
                n = int(batch["image"].shape[0]) if torch.is_tensor(batch.get("image")) else 1
                seen += n
                if self.state.step % log_every == 0 or self.state.batch_in_epoch == self.steps_per_epoch():
                    scalars = {k: float(v.detach()) for k, v in env.items()
                               if torch.is_tensor(v) and v.dim() == 0 and v.is_floating_point()}
                    if not isinstance(objective, str):  # a weighted sum: log the total as well
                        scalars["objective"] = float(loss.detach())
                    scalars["lr"] = float(self.optimizer.param_groups[0]["lr"])
                    scalars["images_per_s"] = seen * self.world / max(1e-9, time.perf_counter() - started)
                    self.notify("on_step", self.state.step, epoch, scalars)
                if max_steps and self.state.step >= max_steps:
                    break
            if self.scheduler is not None and not per_step_scheduler:
                self.scheduler.step()
            self.state.epoch += 1
            self.state.batch_in_epoch = 0
            record = {"epoch": self.state.epoch, "step": self.state.step,
                      "seconds": round(time.perf_counter() - started, 3)}
            if self._validate_now(epochs):
                metrics, snapshot = self.evaluate("val")
                record["val"] = metrics
                improved = self._track_best(metrics)
                self.notify("on_epoch", self.state.epoch, metrics, snapshot)
                if improved:
                    self.save("best")
            self.state.history.append(record)
            self.save("last")
            if max_steps and self.state.step >= max_steps:
                break
        if "val" not in self.loaders:  # no validation: the last epoch is the best
            self.save("best")

    def _validate_now(self, epochs: int) -> bool:
        if "val" not in self.loaders:
            return False
        every = max(1, int(self.val_cfg["every"]))
        return self.state.epoch % every == 0 or self.state.epoch >= epochs

    def _track_best(self, metrics: Mapping[str, Mapping[str, float]]) -> bool:
        value = self.selection_value(metrics)
        if value is None:
            return True
        better = self.state.best is None or (value > self.state.best if self.val_cfg["mode"] == "max"
                                             else value < self.state.best)
        if better:
            self.state.best, self.state.best_epoch = value, self.state.epoch
        return better

    def selection_value(self, metrics: Mapping[str, Mapping[str, float]]) -> float | None:
        name = self.val_cfg.get("metric")
        if not metrics:
            return None
        branch = self.val_cfg.get("branch") or next(iter(metrics))
        if branch not in metrics:
            raise RunError(f"val.branch '{branch}' is not one of {', '.join(metrics)}",
                           file=self.recipe.file, path="val.branch")
        row = metrics[branch]
        if not name:
            return None
        if name not in row:
            raise RunError(f"val.metric '{name}' is not one of {', '.join(row)}", file=self.recipe.file,
                           path="val.metric")
        return float(row[name])

    @torch.no_grad()
    def evaluate(self, stage: str) -> tuple[dict[str, dict[str, float]], Snapshot | None]:
        """Run the val or test flow over its split; returns metrics per branch and a snapshot."""
        flow = self.plan.flow_for(stage)
        assert flow is not None
        runner = FlowRunner(flow, self.objects, self._make_metric)
        flip = stage == "test" and bool(self.test_cfg["flip"])
        parts = flow.split_at(self.test_cfg["flip_heatmaps"]) if flip else None
        self.module.eval()
        loader, sampler = self.loaders[stage], self.samplers[stage]
        self.datasets[stage].set_epoch(0)
        sampler.set_epoch(0)
        snapshot = None
        for batch in loader:
            batch = to_device(batch, self.device)
            autocast = torch.autocast("cuda", dtype=self.amp) if self.amp else nullcontext()
            with autocast:
                branches = self._run_eval(runner, batch, parts)
            if snapshot is None and self.main:
                snapshot = self._snapshot(batch, branches)
        self.module.train()
        return runner.compute(), snapshot

    def _run_eval(self, runner: FlowRunner, batch: dict[str, Any],
                  parts: tuple[list[Any], list[Any]] | None) -> dict[str, Any]:
        """One batch through the flow; with ``parts`` (the flow split at the flipped heatmaps)
        the image and its mirror are run up to the split and their heatmaps averaged."""
        if parts is None:
            return runner(batch)
        name = self.test_cfg["flip_heatmaps"]
        before, after = parts
        plain = runner.run({"": dict(batch)}, before)
        flipped_batch = dict(batch, image=torch.flip(batch["image"], dims=[-1]))
        flipped = runner.run({"": flipped_batch}, before)
        encoder = self.objects[self.test_cfg["flip_encoder"]]
        pairs = self._meta("flip_pairs", ())
        back = encoder.flip_back(flipped[""][name], pairs)
        plain[""][name] = (plain[""][name] + back) / 2
        return runner.run(plain, after)

    def _snapshot(self, batch: Mapping[str, Any], branches: Mapping[str, Mapping[str, Any]]) -> Snapshot | None:
        n = int(self.val_cfg.get("snapshot") or 0)
        if n <= 0 or "image" not in batch:
            return None
        show = self.val_cfg["show"]

        def cpu(value: Any) -> Any:
            return value[:n].detach().float().cpu().numpy() if torch.is_tensor(value) else None

        first = next(iter(branches.values()))
        predictions = {b or "output": cpu(env[show["keypoints"]]) for b, env in branches.items()
                       if show["keypoints"] in env}
        return Snapshot(image=cpu(batch["image"]), keypoints=cpu(batch.get("keypoints")),
                        visible=cpu(batch.get("visible")), predictions=predictions,
                        heatmaps=cpu(first.get(show["heatmaps"])), target_heatmaps=cpu(first.get(show["target"])),
                        skeleton=tuple(self._meta("skeleton", ())))

    def test(self) -> dict[str, dict[str, float]]:
        which = self.test_cfg["checkpoint"]
        if self.train_flow is not None and which in ("best", "last"):
            path = self.dir / "checkpoints" / f"{which}.pt"
            if path.is_file():
                self.restore(path, weights_only=True)
        elif which not in ("best", "last", None):
            self.restore(Path(which), weights_only=True)
        metrics, _ = self.evaluate("test")
        table = ""
        if self.main:
            table = results_io.write(metrics, self.dir)
            best = f" (best epoch {self.state.best_epoch})" if self.state.best_epoch else ""
            print(f"\nTest results{best}, {self.dir}:\n{table}")
            log.info("test results\n%s", table)
        self.notify("on_end", metrics, table)
        return metrics


def find_latest_run(recipe_name: str, runs_dir: str) -> Path:
    root = Path(runs_dir) / recipe_name
    candidates = sorted((p for p in root.glob("*") if (p / "checkpoints" / "last.pt").is_file()),
                        key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise RunError(f"no run of '{recipe_name}' to resume", file=str(root),
                       hint="give the run directory: --resume runs/NAME/TIME")
    return candidates[-1]


def run_recipe(path: str, overrides: Iterable[str] = (), *, resume: str | None = None,
               run_dir: str | None = None) -> dict[str, dict[str, float]]:
    """``kitpose run``: check the recipe, then train, validate and test."""
    resume_dir: Path | None = None
    if resume is not None:
        recipe = load_recipe(path, overrides)
        if resume == "latest":
            resume_dir = find_latest_run(recipe.name, recipe.select("runs_dir", "runs") or "runs")
        else:
            resume_dir = Path(resume)
            if not (resume_dir / "checkpoints" / "last.pt").is_file():
                raise RunError("nothing to resume: no checkpoints/last.pt", file=str(resume_dir),
                               hint="give a run directory made by 'kitpose run'")
        plan = plan_recipe(recipe)
    else:
        plan = check_recipe(path, overrides)
    run = Run(plan, run_dir=Path(run_dir) if run_dir else None, resume=resume_dir)
    try:
        return run.execute()
    finally:
        dist_utils.shutdown()
