"""The generic training loop under ``accelerate`` (single process, DDP on GPUs or CPU/gloo).

The loop knows nothing about diffusion: a task supplies ``train_dataset``, ``build_model()``,
``loss(model, batch, generator)``, ``validate(model)`` and ``export(model, dir)``. Features:
AdamW, linear warm-up + cosine decay, gradient clipping and accumulation, EMA weights
(validation and export), periodic validation, crash-safe checkpoints, exact resume,
accelerate trackers (CSV, TensorBoard), a tqdm bar, and a clean stop on Ctrl-C/SIGTERM.

Determinism across process counts: the training noise of a micro-batch comes from a
generator seeded by (seed, global micro-batch index), and the data order is a seeded
permutation sharded batch-wise by accelerate, so W processes with batch b and one process
with batch b and ``grad_accum = W`` see the same data and noise at every optimizer step.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from genphys.config import to_dict, to_yaml
from genphys.train.checkpoint import check_compatible, find_checkpoint, load_checkpoint
from genphys.train.checkpoint import save_checkpoint as _save_checkpoint
from genphys.train.config import ExperimentConfig, ScheduleConfig
from genphys.train.data import train_loader
from genphys.train.ema import EMA
from genphys.train.trackers import CSVTracker


@dataclass
class TrainState:
    """Where the run is: optimizer steps done and the position in the data order."""

    step: int = 0
    epoch: int = 0
    samples_in_epoch: int = 0  # indices of this epoch's permutation already consumed (global)
    elapsed: float = 0.0  # seconds spent in the loop (train.max_minutes), over resumes


def lr_factor(cfg: ScheduleConfig, total: int,
              clock: Callable[[], float] | None = None) -> Callable[[int], float]:
    """Linear warm-up then cosine decay to ``min_lr_ratio`` (Loshchilov & Hutter 2017, SGDR).

    ``clock()``: the used fraction of a wall-clock budget; the decay then follows the step or
    the time fraction, whichever is further along, so a timed run still ends at the floor.
    """
    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.kind == "constant":
            return 1.0
        span = max(total - cfg.warmup_steps, 1)
        progress = min((step - cfg.warmup_steps) / span, 1.0)
        if clock is not None:
            progress = min(max(progress, clock()), 1.0)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def make_accelerator(cfg: ExperimentConfig, out_dir: Path) -> Accelerator:
    """An ``Accelerator`` with the run's trackers; CPU-only machines train fp32 (gloo DDP)."""
    cpu = not torch.cuda.is_available()
    PartialState(cpu=cpu)  # initialise the process group before the trackers ask for rank
    trackers: list[Any] = []
    if "csv" in cfg.logging.trackers:
        trackers.append(CSVTracker("train_log", out_dir / "logs"))
    if "tensorboard" in cfg.logging.trackers:
        trackers.append("tensorboard")
    return Accelerator(cpu=cpu, mixed_precision="no" if cpu else cfg.train.mixed_precision,
                       log_with=trackers or None,
                       project_config=ProjectConfiguration(project_dir=str(out_dir),
                                                           logging_dir=str(out_dir / "logs")))


class StopFlag:
    """SIGINT/SIGTERM set a flag that the loop checks between steps (second Ctrl-C aborts)."""

    def __init__(self) -> None:
        self.requested, self._old = False, {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


class Trainer:
    """Runs one experiment: ``Trainer(cfg).fit()``; ``resume`` continues a checkpoint exactly."""

    def __init__(self, cfg: ExperimentConfig, *, resume: str | Path | None = None,
                 task: Any = None, accelerator: Accelerator | None = None,
                 callback: Callable[[Trainer], None] | None = None):
        self.cfg, self.callback = cfg, callback
        self.out = Path(cfg.checkpoint.output_dir)
        self.acc = accelerator or make_accelerator(cfg, self.out)
        set_seed(cfg.train.seed)  # same initial weights on every rank
        self.task = task if task is not None else make_task(cfg, self.acc.device)
        model = self.task.build_model()
        self.ema = EMA(model, cfg.ema.decay, cfg.ema.start)
        oc = cfg.optimizer
        opt = torch.optim.AdamW(model.parameters(), lr=oc.lr, betas=tuple(oc.betas),
                                weight_decay=oc.weight_decay, eps=oc.eps)
        # not prepared: a prepared scheduler steps once per process per optimizer step
        self._t0, self._elapsed0, self._clock = time.monotonic(), 0.0, 0.0
        budget = cfg.train.max_minutes
        # the budget's clock is synchronised once per step, so every rank sets the same LR
        clock = None if budget is None else (lambda: self._clock / (60 * budget))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            opt, lr_factor(cfg.schedule, cfg.train.steps, clock))
        loader = train_loader(self.task.train_dataset, cfg.data, cfg.train.seed)
        self.sampler = loader.sampler
        self.model, self.optimizer, self.loader = self.acc.prepare(model, opt, loader)
        self.ema.model.to(self.acc.device)
        self.acc.register_for_checkpointing(self.scheduler, self.ema)
        self.state, self.last_saved, self.metrics = TrainState(), -1, {}
        if resume is not None:
            self._resume(resume)

    def elapsed(self) -> float:
        """Seconds of training so far (this process since ``fit`` began, plus resumed runs)."""
        return self._elapsed0 + time.monotonic() - self._t0

    def _out_of_time(self) -> bool:
        """``train.max_minutes`` used up; the largest elapsed time over the ranks decides."""
        budget = self.cfg.train.max_minutes
        if budget is None:
            return False
        self._clock = self.elapsed()
        if self.acc.num_processes > 1:
            t = torch.tensor([self._clock], device=self.acc.device)
            self._clock = float(self.acc.gather(t).max())
        return self._clock >= 60 * budget

    # ------------------------------------------------------------- data
    @property
    def global_batch(self) -> int:
        """Trajectories per process per micro-step times the number of processes."""
        return self.cfg.data.batch_size * self.acc.num_processes

    def _batches(self) -> Iterator[dict[str, Any]]:
        while True:
            self.loader.set_epoch(self.state.epoch)
            self.sampler.skip = self.state.samples_in_epoch
            for batch in self.loader:
                self.state.samples_in_epoch += self.global_batch
                yield batch
            self.state.epoch, self.state.samples_in_epoch = self.state.epoch + 1, 0

    def _generator(self, micro: int) -> torch.Generator:
        """Noise of global micro-batch (step, micro, rank): independent of the process count."""
        accum, world = self.cfg.optimizer.grad_accum, self.acc.num_processes
        index = (self.state.step * accum + micro) * world + self.acc.process_index
        seed = (self.cfg.train.seed * 2**32 + index) % 2**63
        return torch.Generator(self.acc.device).manual_seed(seed)

    # ------------------------------------------------------------- one step
    def _step(self, batches: Iterator[dict[str, Any]]) -> dict[str, float]:
        self.model.train()
        accum, total = self.cfg.optimizer.grad_accum, 0.0
        for micro in range(accum):
            batch = next(batches)
            sync = contextlib.nullcontext() if micro == accum - 1 else self.acc.no_sync(self.model)
            with sync, self.acc.autocast():
                loss, _ = self.task.loss(self.model, batch, self._generator(micro))
                self.acc.backward(loss / accum)
            total += float(loss.detach()) / accum
        logs = {"train/loss": total, "train/lr": self.scheduler.get_last_lr()[0]}
        if self.cfg.optimizer.grad_clip is not None:
            norm = self.acc.clip_grad_norm_(self.model.parameters(), self.cfg.optimizer.grad_clip)
            logs["train/grad_norm"] = float(norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update(self.acc.unwrap_model(self.model), self.state.step)
        return logs

    # ------------------------------------------------------------- run
    def fit(self) -> dict[str, Any]:
        """Train to ``train.steps``; validate, checkpoint and export. Returns the last metrics."""
        self.acc.init_trackers("genphys", config=_flat(to_dict(self.cfg)))
        total, lc = self.cfg.train.steps, self.cfg.logging
        bar = tqdm(total=total, initial=self.state.step, desc="train", dynamic_ncols=True,
                   disable=not (lc.progress and self.acc.is_main_process))
        window: list[float] = []
        batches, interrupted = self._batches(), False
        self._t0, self._elapsed0 = time.monotonic(), self.state.elapsed
        with StopFlag() as stop:
            while self.state.step < total and not self._out_of_time():
                logs = self._step(batches)
                self.state.step += 1
                window.append(logs["train/loss"])
                bar.update(1)
                bar.set_postfix(loss=f"{logs['train/loss']:.4g}")
                if self.state.step % lc.every == 0 or self.state.step == total:
                    logs["train/loss"] = self._mean_over_processes(window)
                    self.acc.log(logs, step=self.state.step)
                    window = []
                self._periodic()
                if self.callback is not None:
                    self.callback(self)
                if self._stop_requested(stop) and self.state.step < total:
                    interrupted = True
                    break
        bar.close()
        return self._finish(interrupted)

    def _mean_over_processes(self, values: list[float]) -> float:
        t = torch.tensor(sum(values) / max(len(values), 1), device=self.acc.device)
        return float(self.acc.reduce(t, "mean"))

    def _stop_requested(self, stop: StopFlag) -> bool:
        if self.acc.num_processes == 1:
            return stop.requested
        flag = torch.tensor(float(stop.requested), device=self.acc.device)
        return bool(self.acc.reduce(flag, "sum") > 0)  # every rank stops at the same step

    def _periodic(self) -> None:
        step, vc = self.state.step, self.cfg.validation
        if vc.every > 0 and step % vc.every == 0 and step < self.cfg.train.steps:
            self.validate()
        if step % self.cfg.checkpoint.every == 0 and step < self.cfg.train.steps:
            self.save_checkpoint()

    def validate(self) -> dict[str, float]:
        """Task validation with the EMA weights on the main process; logged."""
        if self.acc.is_main_process:
            self.metrics = self.task.validate(self.ema.model)
            self.acc.log(self.metrics, step=self.state.step)
        self.acc.wait_for_everyone()
        return self.metrics

    def save_checkpoint(self) -> Path:
        """Collective crash-safe checkpoint of everything needed to resume exactly."""
        self.state.elapsed = self.elapsed()
        state = {**asdict(self.state), "processes": self.acc.num_processes,
                 "global_batch": self.global_batch}
        path = _save_checkpoint(self.acc, self.out / "checkpoints", self.state.step,
                                to_yaml(self.cfg), state, self.cfg.checkpoint.keep_last)
        self.last_saved = self.state.step
        return path

    def _finish(self, interrupted: bool) -> dict[str, Any]:
        if self.last_saved != self.state.step:
            ckpt = self.save_checkpoint()
        else:
            ckpt = self.out / "checkpoints" / f"step_{self.state.step:08d}"
        self.state.elapsed = self.elapsed()
        result = {"step": self.state.step, "interrupted": interrupted, "checkpoint": str(ckpt),
                  "minutes": self.state.elapsed / 60}
        if not interrupted:
            result.update(self.validate())
            if self.acc.is_main_process:
                self.task.export(self.ema.model, self.out / "export")
                result["export"] = str(self.out / "export")
            self.acc.wait_for_everyone()
        self.acc.end_training()
        return result

    def _resume(self, path: str | Path) -> None:
        ckpt = find_checkpoint(path)
        saved = check_compatible(ckpt, to_dict(self.cfg))
        load_checkpoint(self.acc, ckpt)
        self.ema.model.to(self.acc.device)
        self.state = TrainState(int(saved["step"]), int(saved["epoch"]),
                                int(saved["samples_in_epoch"]), float(saved.get("elapsed", 0.0)))
        self.last_saved = self.state.step


def make_task(cfg: ExperimentConfig, device: torch.device) -> Any:
    """The task of ``train.mode``: plain training, reflow, distillation or the autoencoder."""
    if cfg.train.mode == "autoencoder":
        from genphys.autoencoder.task import AutoencoderTask

        return AutoencoderTask(cfg, device)
    if cfg.train.mode == "standard":
        from genphys.train.tasks import DiffusionTask

        return DiffusionTask(cfg, device)
    from genphys.train.reflow import ReflowTask

    return ReflowTask(cfg, device)
