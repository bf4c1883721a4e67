"""The runner behind ``kitpose run``: train, validate, test, checkpoint, resume.

The engine knows flows, not methods: it builds the components a plan names, runs
the train flow through one module (so DDP and AMP see a single forward), minimises
the tensor named by ``train.objective``, and scores every val/test branch.
"""
from __future__ import annotations

import copy
import errno
import json
import logging
import math
import os
import platform
import random
import re
import shutil
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

from omegaconf import OmegaConf

from kitpose import __version__, checkpoint, files
from kitpose import distributed as dist_utils
from kitpose import resume as resuming
from kitpose import results as results_io
from kitpose import samples
from kitpose.components import ComponentSpec, Group
from kitpose.data import PipelineDataset, build_split, collate
from kitpose.errors import KitposeError, RunError, RunFault, RunInterrupted, first_line
from kitpose.flow import FlowRunner
from kitpose.metric import Metric
from kitpose.monitor import Monitor, RunInfo, Snapshot
from kitpose.plan import Plan, check_loaded, check_recipe
from kitpose.plugins import get_plugin_manager
from kitpose.provenance import code_version
from kitpose.recipe import load_recipe
from kitpose.stopping import GracefulStop, ignore_interrupts_in_worker

__all__ = ["Run", "check_recipe", "run_recipe"]

log = logging.getLogger("kitpose")
MIN_FREE_BYTES = 50 * 2**20
#: errors of a disk that is full or has turned read-only: the run stops with one line, exit 1
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG, errno.EIO})


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
    ignore_interrupts_in_worker()
    info = torch.utils.data.get_worker_info()
    seed = int(info.seed % 2**32) if info is not None else worker_id
    np.random.seed(seed)
    random.seed(seed)


#: the recipe's ``amp`` choices (as its schema allows them) and the dtype autocast runs each in
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    """torch's CUDA autocast in ``dtype``; nothing off CUDA or without a dtype (float32)."""
    return torch.autocast("cuda", dtype=dtype) if dtype is not None and device.type == "cuda" else nullcontext()


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def build_components(plan: Plan) -> dict[str, Any]:
    """Every component of the plan but the metrics (the flows build those per branch): the
    object, or ``{member: object}`` for a group."""
    objects: dict[str, Any] = {}
    for key, item in plan.components.items():
        if isinstance(item, Group):
            if item.kind != "metric":
                objects[key] = {m: spec.build(plan.registry) for m, spec in item.members.items()}
        elif item.kind != "metric":
            objects[key] = item.build(plan.registry)
    return objects


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

    epoch: int = 0           # epochs completed
    step: int = 0            # optimizer steps done
    batch_in_epoch: int = 0  # batches done in the current (unfinished) epoch
    best: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    validated: bool = True   # whether epoch ``epoch``'s validation (if due) is done
    first_loss: float | None = None  # the objective at step 1: the scale divergence is judged by


class Run:
    """One ``kitpose run``: builds the plan's components and drives the stages.

    Progress is saved only at step boundaries, so that a resumed run repeats no batch:
    Ctrl-C sets a flag (see :mod:`kitpose.stopping`) that the loop reads after each step.
    """

    def __init__(self, plan: Plan, *, run_dir: Path | None = None, resume: Path | None = None,
                 changes: list[resuming.Change] | None = None) -> None:
        self.plan = plan
        self.recipe = plan.recipe
        self.registry = plan.registry
        cfg = self.recipe
        self.seed = int(cfg.select("seed", 0) or 0)
        self.deterministic = bool(cfg.select("deterministic", False))
        self.device = pick_device(cfg.select("device", "auto"))
        self.train_cfg = plan.settings["train"]
        self.val_cfg = plan.settings["val"]
        self.test_cfg = plan.settings["test"]
        self.distributed = dist_utils.init_from_env(self.device, self.train_cfg.get("dist_timeout"))
        self.rank, self.world = dist_utils.rank(), dist_utils.world_size()
        self.main = self.rank == 0
        seed_everything(self.seed + self.rank, self.deterministic)
        self.amp = self._amp(cfg.select("amp", None))
        self.resume_from = resume
        self.changes = list(changes or [])
        self.dir = self._make_dir(run_dir, resume)
        self.state = State()
        self.monitors: dict[str, Monitor] = {}
        self._failed_monitors: set[str] = set()
        self.stop: GracefulStop | None = None
        self.threads_choice: tuple[int, str] = (0, "")  # set by apply_threads: count, why

    # -- setup ----------------------------------------------------------------------------------
    def _amp(self, setting: str | None) -> torch.dtype | None:
        if not setting:
            return None
        if self.device.type != "cuda":
            if self.main:
                print(f"kitpose: amp={setting} is ignored on {self.device.type}; training in float32",
                      file=sys.stderr)
            return None
        return AMP_DTYPES[setting]

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
        """The recipe as run (with its name, so ``--resume RUN_DIR`` needs nothing else),
        ``run.json`` and the log. A resume keeps them and records itself in ``run.json``."""
        if not self.main:
            return
        if self.resume_from is None or self.changes:
            given = copy.deepcopy(self.recipe.config)
            given.name = self.recipe.name
            files.write_atomic(self.dir / "recipe.yaml", OmegaConf.to_yaml(given))
            files.write_atomic(self.dir / "recipe.resolved.yaml", self.recipe.resolved_yaml())
        info_file = self.dir / "run.json"
        now = datetime.now().isoformat(timespec="seconds")
        if self.resume_from is not None and info_file.is_file():
            try:
                info = json.loads(info_file.read_text(encoding="utf-8"))
            except ValueError:
                info = {}
            info.setdefault("resumes", []).append({
                "time": now, "command": sys.argv, "code": code_version(), "device": str(self.device),
                "world_size": self.world, "changed": {c.key: [c.old, c.new] for c in self.changes}})
        else:
            plugins = [{"name": i.name, "module": i.module, "dist": i.dist, "version": i.version,
                        "status": i.status, "error": i.error}
                       for i in get_plugin_manager().plugin_infos()]
            info = {"kitpose": __version__, "code": code_version(), "torch": torch.__version__,
                    "python": platform.python_version(),
                    "name": self.recipe.name, "recipe": self.recipe.file, "sources": self.recipe.sources,
                    "overrides": self.recipe.overrides, "command": sys.argv, "device": str(self.device),
                    "world_size": self.world, "seed": self.seed, "plugins": plugins, "started": now}
        files.write_atomic(self.dir / "run.json", json.dumps(info, indent=1))
        handler = _RunLogHandler(self.dir / "run.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        console = logging.StreamHandler(sys.stderr)  # warnings (a monitor's too) belong on the console
        console.setLevel(logging.WARNING)
        console.setFormatter(logging.Formatter("kitpose: warning: %(message)s"))
        for each in (handler, console):
            log.addHandler(each)
        log.setLevel(logging.INFO)
        self._log_handlers = (handler, console)
        for folder in (self.dir, self.dir / "checkpoints"):
            for leftover in files.remove_leftovers(folder):
                log.info("removed %s, left by a write that was cut short", leftover.name)
        if self.changes:
            log.info("resumed with changes: %s", ", ".join(f"{c.key}: {c.old!r} -> {c.new!r}" for c in self.changes))

    def build(self) -> None:
        """Build datasets, loaders, components, optimizer and scheduler."""
        plan = self.plan
        self.objects = build_components(plan)
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
            # a generator of its own: making an iterator draws worker seeds from it, which
            # must not move the global random state that a resumed run restores
            generator = torch.Generator().manual_seed(self.seed)
            self.loaders[split] = torch.utils.data.DataLoader(
                dataset, batch_size=spec.batch_size, sampler=sampler, collate_fn=collate,
                num_workers=spec.workers, drop_last=False, worker_init_fn=_worker_init,
                pin_memory=self.device.type == "cuda", generator=generator)
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

    def notify(self, hook: str, *args: Any, ending: bool = False) -> None:
        """Call a monitor hook on every monitor; a failure is reported once and ignored,
        except a full or read-only disk, which stops the run (``ending``: the run is stopping
        already, so that is ignored too)."""
        for key, monitor in self.monitors.items():
            method = getattr(monitor, hook, None)
            if method is None:  # a monitor written before the hook existed, not subclassing Monitor
                continue
            try:
                method(*args)
            except OSError as exc:
                if exc.errno in DISK_ERRNOS and not ending:
                    raise
                if not ending:
                    self._monitor_failed(key, hook, exc)
            except Exception as exc:
                self._monitor_failed(key, hook, exc)

    def _monitor_failed(self, key: str, hook: str, exc: BaseException) -> None:
        if key not in self._failed_monitors:
            self._failed_monitors.add(key)
            log.warning(f"monitor '{key}' failed in {hook}: {type(exc).__name__}: {exc} (training goes on)")

    # -- checkpoints ---------------------------------------------------------------------------
    def _checkpoint(self) -> dict[str, Any]:
        state = {k: v for k, v in vars(self.state).items() if k != "history"}
        ckpt: dict[str, Any] = {
            "kitpose": __version__, "model": self.module.state_dict(), "state": state,
            "history": json.dumps(self.state.history), "rng": checkpoint.rng_state(),
        }
        if self.train_flow is not None:
            ckpt["optimizer"] = self.optimizer.state_dict()
            ckpt["scaler"] = self.scaler.state_dict()
            if self.scheduler is not None:
                ckpt["scheduler"] = self.scheduler.state_dict()
        return ckpt

    def save(self, name: str, *, together: bool = True) -> None:
        """Write ``checkpoints/NAME.pt`` (rank 0). ``together``: every rank calls this at the
        same point; without it only this rank does (a failure on one rank)."""
        if self.main:
            checkpoint.save_atomic(self._checkpoint(), self.dir / "checkpoints" / f"{name}.pt")
        if together:
            dist_utils.barrier()

    def restore(self, path: Path, *, weights_only: bool = False) -> None:
        ckpt = checkpoint.load(path)
        checkpoint.load_model_state(self.module, ckpt["model"], file=str(path))
        if weights_only:
            return
        known = {k: v for k, v in ckpt["state"].items() if k in State.__dataclass_fields__}
        self.state = State(**known, history=json.loads(ckpt.get("history", "[]")))
        if self.train_flow is not None and "optimizer" in ckpt:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scaler.load_state_dict(ckpt["scaler"])
            if self.scheduler is not None and "scheduler" in ckpt:
                self.scheduler.load_state_dict(ckpt["scheduler"])
        checkpoint.set_rng_state(ckpt["rng"])

    def apply_threads(self) -> None:
        """Set torch's CPU threads from the ``threads`` setting (see :mod:`kitpose.threads`)."""
        from kitpose import threads

        count, why = threads.choose(self.recipe.select("threads"), torch.get_num_threads())
        if count != torch.get_num_threads():
            self._threads_before = torch.get_num_threads()
            torch.set_num_threads(count)
        log.info("%d CPU threads (%s)", count, why)  # the console monitor's start line says it too
        self.threads_choice = (count, why)
        reason = threads.passive_wait_reason()
        if reason:
            log.info("OMP_WAIT_POLICY=PASSIVE: %s", reason)
        from kitpose import memory

        if memory.outcome:
            log.info("allocator: %s", memory.outcome)

    def _has_checkpoint(self) -> bool:
        return (self.dir / "checkpoints" / "last.pt").is_file()

    def resume_command(self) -> str:
        return f"kitpose run --resume {self.dir}"

    # -- stages -------------------------------------------------------------------------------
    def execute(self) -> dict[str, dict[str, float]]:
        """Train (with validation), then test; returns the test results."""
        results: dict[str, dict[str, float]] = {}
        with GracefulStop(announce=self.main) as stop:
            self.stop = stop
            try:
                self._write_run_files()
                self.build()
                self.apply_threads()
                if self.resume_from is not None:
                    self.restore(self.dir / "checkpoints" / "last.pt")
                self.build_monitors()
                epochs = self.epochs()
                info = RunInfo(name=f"{self.recipe.name}/{self.dir.name}", dir=self.dir,
                               recipe=self.recipe.resolved(), epochs=epochs,
                               steps_per_epoch=self.steps_per_epoch(), start_epoch=self.state.epoch,
                               start_step=self.state.step, resumed=self.resume_from is not None,
                               validated_epochs=self.state.epoch - (0 if self.state.validated else 1),
                               joint_names=tuple(self._meta("joint_names", ())),
                               skeleton=tuple(self._meta("skeleton", ())),
                               cpu_threads=self.threads_choice[0], threads_reason=self.threads_choice[1])
                log.info("run %s -> %s: %d epoch%s x %d step%s on %s (%d process%s)%s", info.name, self.dir,
                         epochs, "" if epochs == 1 else "s", info.steps_per_epoch,
                         "" if info.steps_per_epoch == 1 else "s", self.device, self.world,
                         "" if self.world == 1 else "es", f", resumed at epoch {info.start_epoch}" if info.resumed else "")
                self.notify("on_start", info)
                if self.train_flow is not None:
                    self.train(epochs)
                if "test" in self.plan.flows and "test" in self.loaders:
                    results = self.test()
            except OSError as exc:
                if exc.errno not in DISK_ERRNOS:
                    raise
                raise self._disk_fault(exc) from None
            except (KitposeError, RunInterrupted):
                raise
            except KeyboardInterrupt:  # a second Ctrl-C: stopped at once, wherever it was
                if not self._has_checkpoint():
                    raise RunInterrupted("interrupted before anything was saved") from None
                raise RunInterrupted("stopped at once; the progress since the last checkpoint is lost. "
                                     f"Resume from that checkpoint with: {self.resume_command()}") from None
            except RuntimeError as exc:
                if self.distributed and _lost_rank(exc):
                    raise RunFault(f"rank {self.rank}: lost contact with another rank: "
                                   f"{first_line(exc)}", file=str(self.dir),
                                   hint="see that rank's own line; progress up to the last checkpoint is kept") from None
                raise
            finally:
                self.stop = None
                if getattr(self, "_threads_before", None):  # a process that runs again keeps its own count
                    torch.set_num_threads(self._threads_before)
                self.notify("close", ending=True)
                for handler in getattr(self, "_log_handlers", ()):
                    log.removeHandler(handler)
                    handler.close()
        return results

    def _disk_fault(self, exc: OSError) -> RunFault:
        where = exc.filename or self.dir
        kept = (f"progress up to {self.dir / 'checkpoints' / 'last.pt'} is kept; free space, then resume "
                f"with: {self.resume_command()}") if self._has_checkpoint() else "no checkpoint was written"
        return RunFault(f"cannot write: {exc.strerror or exc} (errno {exc.errno})", file=str(where), hint=kept)

    def _stop_requested(self, *, agreed: bool = True) -> bool:
        """Whether Ctrl-C/SIGTERM asked to stop; ``agreed``: asked on any rank (a collective)."""
        local = self.stop is not None and self.stop.requested is not None
        return dist_utils.any_rank(local) if agreed else local

    def _interrupt(self, where: str) -> RunInterrupted:
        if not self._has_checkpoint():
            return RunInterrupted(f"interrupted {where}, before anything was saved")
        return RunInterrupted(f"interrupted {where}; progress saved. Resume with: {self.resume_command()}")

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

    def _batches(self, split: str, epoch: int) -> Iterable[dict[str, Any]]:
        """The batches of ``split`` for ``epoch``, on the device; a data error names the
        dataset's own message (not a worker's traceback) and, in training, saves progress."""
        loader = self.loaders[split]
        loader.generator.manual_seed(self.seed * 100_003 + epoch)
        iterator = iter(loader)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except KitposeError as exc:
                raise self._data_error(exc, split) from None
            yield to_device(batch, self.device)

    def _data_error(self, exc: KitposeError, split: str) -> KitposeError:
        error = _worker_error(exc)
        if split == "train" and self.state.step > 0:
            self.save("last", together=False)  # a step boundary: the progress resumes exactly
            saved = f"progress saved at step {self.state.step}: fix the data, then resume with: {self.resume_command()}"
            error.hint = f"{error.hint}; {saved}" if error.hint else saved
        return error

    def train(self, epochs: int) -> None:
        if self._stop_requested():
            raise self._interrupt("before training")
        if not self.state.validated:  # the epoch ended, its validation was cut short: do it now
            self._validate_epoch()
        max_steps = int(self.train_cfg["steps"]) if self.train_cfg.get("steps") else None
        log_every = max(1, int(self.train_cfg["log_every"]))
        objective = self.train_cfg["objective"]
        clip = self.train_cfg.get("clip_grad")
        per_step_scheduler = self.train_cfg.get("scheduler_interval") == "step"
        sampler, dataset = self.samplers["train"], self.datasets["train"]
        while self.state.epoch < epochs and not (max_steps and self.state.step >= max_steps):
            epoch = self.state.epoch
            dataset.set_epoch(epoch)
            sampler.set_epoch(epoch, self.state.batch_in_epoch)
            self.trainer.train()
            started, seen = time.perf_counter(), 0
            logged_at, seen_logged = started, 0  # the throughput is the rate of each logging interval
            for batch in self._batches("train", epoch):
                if not batch:  # every sample unreadable and skipped: the batch counts, no step is taken
                    self.state.batch_in_epoch += 1
                    continue
                with autocast(self.device, self.amp):
                    env = self.trainer(**batch)
                loss = env[objective] if isinstance(objective, str) else \
                    sum(float(weight) * env[name] for name, weight in objective.items())
                self._check_loss(float(loss.detach()), epoch)
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
                    now = time.perf_counter()
                    scalars["images_per_s"] = (seen - seen_logged) * self.world / max(1e-9, now - logged_at)
                    logged_at, seen_logged = now, seen
                    log.info("epoch %d step %d %s", epoch + 1, self.state.step,
                             " ".join(f"{k}={v:.4g}" for k, v in scalars.items()))
                    self.notify("on_step", self.state.step, epoch, scalars)
                if max_steps and self.state.step >= max_steps:
                    break
                if self._stop_requested():  # a step boundary that every rank has reached
                    self.save("last")
                    raise self._interrupt(f"at step {self.state.step} (epoch {epoch + 1})")
            if self.scheduler is not None and not per_step_scheduler:
                self.scheduler.step()
            self.state.epoch += 1
            self.state.batch_in_epoch = 0
            self.state.history.append({"epoch": self.state.epoch, "step": self.state.step,
                                       "seconds": round(time.perf_counter() - started, 3)})
            self.state.validated = not self._validate_now(epochs)
            self.save("last")  # before validation, which a Ctrl-C may cut short
            if not self.state.validated:
                self._validate_epoch()
            if self._stop_requested():
                raise self._interrupt(f"after epoch {self.state.epoch}")
        if "val" not in self.loaders:  # no validation: the last epoch is the best
            self.save("best")

    def _validate_epoch(self) -> None:
        """Validate the epoch just ended, keep the best checkpoint, save the progress."""
        metrics, snapshot = self.evaluate("val")
        self.state.history[-1]["val"] = metrics
        improved = self._track_best(metrics)
        self.state.validated = True
        log.info("epoch %d validation%s\n%s", self.state.epoch, " (best so far)" if improved else "",
                 "\n".join(f"  {branch}: " + " ".join(f"{k}={v:.4g}" for k, v in row.items())
                           for branch, row in metrics.items()))
        self.notify("on_epoch", self.state.epoch, metrics, snapshot)
        if improved:
            self.save("best")
        self.save("last")

    def _check_loss(self, value: float, epoch: int) -> None:
        """Stop on a loss that is not finite or has grown ``train.divergence`` times its first value."""
        if self.state.first_loss is None and math.isfinite(value):
            self.state.first_loss = abs(value)
        factor = self.train_cfg.get("divergence")
        first = self.state.first_loss
        exploded = bool(factor) and first is not None and first > 0 and abs(value) > float(factor) * first
        if math.isfinite(value) and not exploded:
            return
        what = f"the loss is {value}" if not math.isfinite(value) else \
            f"the loss diverged to {value:.3g}, {abs(value) / first:.3g} times its first value {first:.3g},"
        kept = "the last good checkpoint is kept" if self._has_checkpoint() else "no checkpoint was written"
        raise RunError(f"{what} at step {self.state.step + 1} (epoch {epoch + 1}); {kept}",
                       file=str(self.dir / "checkpoints" / "last.pt") if self._has_checkpoint() else str(self.dir),
                       hint="lower train.optimizer.lr, set train.clip_grad, or check the data")

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
        """Run the val or test flow over its split; returns metrics per branch and a snapshot.

        Every rank scores its shard with rank 0's weights and buffers: the model that is saved.
        A Ctrl-C stops between batches (one process) or at the end (several: they must agree).
        """
        flow = self.plan.flow_for(stage)
        assert flow is not None
        runner = FlowRunner(flow, self.objects, self._make_metric)
        dist_utils.share_buffers(self.module)
        self.module.eval()
        sampler = self.samplers[stage]
        self.datasets[stage].set_epoch(0)
        sampler.set_epoch(0)
        snapshot = None
        order = Metric()  # the test samples' dataset indices, gathered as the metrics gather theirs
        maps = samples.heatmap_names(flow) if stage == "test" and self.test_cfg.get("keep_heatmaps") else None
        where = "during validation" if stage == "val" else "during the test (training is complete)"
        total = len(self.loaders[stage])
        if stage == "test":
            log.info("test: %d batches", total)
        self.notify("on_evaluate", stage, 0, total)
        try:
            for done, batch in enumerate(self._batches(stage, 0), 1):
                if self.world == 1 and self._stop_requested(agreed=False):
                    raise self._interrupt(where)
                if not batch:  # every sample unreadable and skipped
                    self.notify("on_evaluate", stage, done, total)
                    continue
                with autocast(self.device, self.amp):
                    branches = runner(batch)
                if snapshot is None and self.main and stage == "val":  # monitors see validation only
                    snapshot = self._snapshot(branches)
                if stage == "test" and torch.is_tensor(batch.get("index")):
                    order.accumulate(index=batch["index"])
                if maps is not None:
                    env = next(iter(branches.values()))
                    order.accumulate(**{key: env[name].float() for key, name in maps.tensors.items()})
                self.notify("on_evaluate", stage, done, total)
            metrics = runner.compute()
            if stage == "test":  # collectives: every rank takes part
                self.test_details = (runner.per_joint(), runner.per_sample(), order.gathered("index"),
                                     runner.per_group())
                if maps is not None:
                    kept = {key: order.gathered(key) for key in maps.tensors}
                    if self.main:
                        samples.write_heatmaps(self.dir, self.test_details[2], kept, maps.encoder)
        finally:
            self.module.train()
        if self._stop_requested():
            raise self._interrupt(where)
        return metrics, snapshot

    def _snapshot(self, branches: Mapping[str, Mapping[str, Any]]) -> Snapshot | None:
        """The first ``val.snapshot`` samples of every tensor of every branch, on the CPU
        (a tensor that several branches share is copied once)."""
        n = int(self.val_cfg.get("snapshot") or 0)
        if n <= 0:
            return None
        copies: dict[int, Any] = {}

        def cpu(value: torch.Tensor) -> Any:
            if id(value) not in copies:
                part = value[:n].detach()
                copies[id(value)] = (part.float() if part.is_floating_point() else part).cpu().numpy()
            return copies[id(value)]

        return Snapshot({branch or "output": {name: cpu(value) for name, value in env.items()
                                              if torch.is_tensor(value) and value.dim() > 0}
                         for branch, env in branches.items()})

    def test(self) -> dict[str, dict[str, float]]:
        """Score the test flow with ``test.checkpoint``'s weights. Nothing is saved from here
        on: the module may hold ``best.pt``'s weights, which must never become ``last.pt``."""
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
            per_joint, per_sample, index, per_group = self.test_details
            names = tuple(self._meta("joint_names", ()))
            table = results_io.write(metrics, self.dir, per_joint=per_joint, joint_names=names,
                                     per_group=per_group)
            if any(per_sample.values()):
                samples.write(self.dir, index, per_sample, names)
                if not len(index):
                    log.info("errors.npz: the test batches carry no 'index', so no per-sample numbers were kept")
            if self.test_cfg["checkpoint"] == "last" and self.state.epoch:
                best = f" (last epoch, {self.state.epoch})"
            else:
                best = f" (best epoch {self.state.best_epoch})" if self.state.best_epoch else ""
            print(f"\nTest results{best}, {self.dir}:\n{table}")
            log.info("test results\n%s", table)
        self.notify("on_end", metrics, table)
        return metrics


class _RunLogHandler(logging.FileHandler):
    """``run.log``: a write that fails (full disk) is said once on the console, not as a
    traceback per record."""

    failed = False

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        if not self.failed:
            self.failed = True
            error = sys.exc_info()[1]
            print(f"kitpose: warning: cannot write {self.baseFilename}: {error}; the log stops here",
                  file=sys.stderr)

    def flush(self) -> None:
        """Flush, except after a failed write: the disk that refused it refuses the rest too,
        and the run has said so once already. The first failure goes on to :meth:`handleError`,
        which says so."""
        try:
            super().flush()
        except OSError:
            if not self.failed:
                raise

    def close(self) -> None:
        try:
            super().close()
        except OSError:  # what was buffered is lost with the disk; the run says why itself
            self.failed = True


def _worker_error(exc: KitposeError) -> KitposeError:
    """A data error raised in a loader worker arrives holding the worker's traceback in its
    message; give back the worker's own one-line message."""
    text = exc.message
    if "Original Traceback" not in text:
        return exc
    last = [line for line in text.strip().splitlines() if line.strip()][-1]
    match = re.match(r"^[\w.]+: (.*)$", last)
    return type(exc)(match.group(1) if match else last)


def _lost_rank(exc: RuntimeError) -> bool:
    """Whether a collective failed because another rank died, hung or closed its connection."""
    dist_error = getattr(torch.distributed, "DistError", ())
    text = str(exc).lower()
    return isinstance(exc, dist_error) or any(
        words in text for words in ("timeout", "timed out", "connection closed", "connection reset",
                                    "closed by peer", "pair closure", "broken pipe", "nccl communicator"))


def find_latest_run(recipe_name: str, runs_dir: str) -> Path:
    root = Path(runs_dir) / recipe_name
    candidates = sorted((p for p in root.glob("*") if (p / "checkpoints" / "last.pt").is_file()),
                        key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise RunError(f"no run of '{recipe_name}' to resume", file=str(root),
                       hint="give the run directory: --resume runs/NAME/TIME")
    return candidates[-1]


def run_recipe(path: str | None, overrides: Iterable[str] = (), *, resume: str | None = None,
               run_dir: str | None = None) -> dict[str, dict[str, float]]:
    """``kitpose run``: check the recipe, then train, validate and test.

    ``resume``: a run directory (or ``"latest"``, the latest run of ``path``'s recipe) to
    continue as it was recorded; ``path`` and ``overrides`` may then change only the keys in
    :data:`kitpose.resume.SAFE_ON_RESUME`.
    """
    if resume is None:
        if path is None:
            raise RunError("no recipe given", hint="kitpose run RECIPE, or kitpose run --resume RUN_DIR")
        plan = check_recipe(path, overrides)
        run = Run(plan, run_dir=Path(run_dir) if run_dir else None)
    else:
        given = load_recipe(path, overrides) if path is not None else None
        if resume == "latest":
            if given is None:
                raise RunError("--resume needs the run directory", hint="kitpose run --resume runs/NAME/TIME")
            resume_dir = find_latest_run(given.name, given.select("runs_dir", "runs") or "runs")
        else:
            resume_dir = Path(resume)
        own = resuming.load_run_recipe(resume_dir)
        if given is None:
            given = resuming.load_run_recipe(resume_dir, overrides) if overrides else own
        found = resuming.changes(own, given)
        resuming.check_changes(found, resume_dir, given.file if path is not None else "the overrides")
        plan = check_loaded(given)
        run = Run(plan, resume=resume_dir, changes=found)
    try:
        results = run.execute()
        # every rank is past its last collective before any tears down: freeing DDP while
        # another rank's gloo thread still releases a tensor can deadlock on the GIL
        dist_utils.barrier()
        return results
    finally:
        dist_utils.shutdown()
