"""Contrastive pretraining: builds its parts from the spec's sections, then runs one loop that reads top to bottom."""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass

import torch

from vlp.platform.layout import RunLayout
from vlp.platform.spec import ExperimentSpec
from vlp.platform.storage import open_storage
from vlp.platform.tracking.protocol import NullTracker, Tracker
from vlp.workloads.data.device_decode import EncodedBatch
from vlp.workloads.data.loader import make_train_loader
from vlp.workloads.data.sample_decoders import sample_decoder
from vlp.workloads.models.factory import build_model, count_parameters, count_shared_parameters
from vlp.workloads.models.open_clip_export import open_clip_files_if_buildable
from vlp.workloads.objectives.factory import build_objective
from vlp.workloads.train.accumulation import GradientAccumulation, check_accumulable
from vlp.workloads.train.activation_checkpointing import enable_activation_checkpointing
from vlp.workloads.train.checkpoint import Checkpointer, restore_rng_state, rng_state
from vlp.workloads.train.device_metrics import DeviceMetrics
from vlp.workloads.train.device_path import choose_device_path
from vlp.workloads.train.distributed import gather_objects, init_distributed, sum_across_ranks
from vlp.workloads.train.optim import build_optimizer, build_schedule
from vlp.workloads.train.parallelism import parallelize
from vlp.workloads.train.preemption import Preempted, PreemptionWatch
from vlp.workloads.train.sharded_state import full_model_state, load_sharded, load_unsharded, save_sharded
from vlp.workloads.train.stop_agreement import StopAgreement


@dataclass(frozen=True)
class TrainInputs:
    """What the pipeline hands the trainer besides the spec."""

    layout: RunLayout
    train_shards: list[str]
    tracker_factory: object  # callable () -> Tracker, called on rank 0 only
    tracking_uri: str | None = None
    """The run's MLflow server, where `model.init_from: models:/…` is looked up (default: vlp's local store)."""
    train_uri: str | None = None
    """The training dataset the shards belong to (its manifest names classes that some decoders label with)."""


class PretrainTrainer:
    def __init__(self, spec: ExperimentSpec, inputs: TrainInputs):
        self.spec = spec
        self.layout = inputs.layout
        train = spec.train
        # The process group first: batch split, seeding and logging depend on rank and world size.
        self.dist = init_distributed(train.threads_per_proc)
        self.local_batch = train.per_process_batch(self.dist.world_size)
        # Same seed on every rank so all replicas start from identical weights.
        torch.manual_seed(spec.seed)
        built = build_model(spec.model, spec.objective.contrastive, inputs.tracking_uri)
        self.model_cfg = built.model_cfg
        self.parameter_count = count_parameters(built.model)
        self.shared_parameter_count = count_shared_parameters(built.model)
        check_accumulable(built.model, train.accum_steps, built.arch)
        if train.grad_checkpointing:
            enable_activation_checkpointing(built.model)
        # GPU-only choices (pinned batches, channels_last, compile when it pays); on CPU all stay as the spec says.
        self.device_path = choose_device_path(self.dist.device, train, built.model, spec.data.augment)
        self.model = built.model.to(self.dist.device, memory_format=self.device_path.memory_format)
        # DDP wraps the model; FSDP shards it in place, so it comes before the optimizer is built on its parameters.
        self.parallel = parallelize(self.model, train.parallelism, self.dist.world_size, train.precision)
        # Compiling the DDP module lets torch split the graph at DDP's gradient buckets; `self.model` stays the
        # unwrapped module, so checkpoints keep their keys.
        self.step_model = torch.compile(self.parallel.module) if self.device_path.compile else self.parallel.module
        # The objective holds no parameters (they are in the model, under DDP), only state such as NLIP's mixture.
        self.loss = build_objective(spec.objective, spec.model).to(self.dist.device)
        self.optimizer = build_optimizer(self.model, train.lr, train.weight_decay, fused=train.fused_optimizer)
        self.schedule = build_schedule(self.optimizer, train.warmup_steps, train.total_schedule_steps)
        self.decoder = sample_decoder(spec, built, self.device_path.decode_on_device, inputs.train_uri)
        self.loader = make_train_loader(
            inputs.train_shards, self.decoder, built.tokenizer, self.local_batch, self.dist.rank, self.dist.world_size, spec.seed, spec.data.workers,
            max_bad_samples=spec.data.max_bad_samples, pin_memory=self.device_path.pin_memory,
        )
        self.checkpointer = Checkpointer(self.layout.checkpoints)
        self.tracker: Tracker = inputs.tracker_factory() if self.dist.is_main else NullTracker()
        self.autocast = torch.autocast(self.dist.device.type, dtype=torch.bfloat16, enabled=train.precision == "bf16")
        # Micro-batches synchronise gradients only in their last backward pass.
        self.accumulation = GradientAccumulation(self.step_model, self.loss, train.accum_steps, self.autocast, self.parallel.no_sync) if train.accum_steps > 1 else None
        # Neither the stop check nor logging may make the host wait for the device inside the loop.
        self.stop_agreement = StopAgreement()
        self.device_metrics = DeviceMetrics(self.dist.device)

    def train(self) -> dict:
        # SIGTERM (preemption, torchrun stopping us) ends the loop at a step all ranks agree on, with a checkpoint.
        self.preemption = PreemptionWatch()
        self.saved_step = None
        step = self._resume()
        train = self.spec.train
        counts = {"parameters": self.parameter_count, "shared_parameters": self.shared_parameter_count}
        self.tracker.set_tags({f"vlp.{name}": str(value) for name, value in counts.items()})
        self.tracker.log_params({f"model.{name}": str(value) for name, value in counts.items()})
        self.tracker.log_metrics({f"model/{name}": value for name, value in counts.items()}, step=0)
        started = time.perf_counter()
        window_started, window_steps = started, 0
        running_loss = torch.zeros((), device=self.dist.device)
        for images, texts, targets in self.loader:
            if self._should_stop(step, started):
                break
            images = self._images_on_device(images)
            targets = {key: value.to(self.dist.device, non_blocking=True) for key, value in targets.items()}
            loss = self._step(images, texts.to(self.dist.device, non_blocking=True), targets)
            running_loss += loss.detach()
            step += 1
            window_steps += 1
            if step % train.log_every == 0:
                now = time.perf_counter()
                self.device_metrics.push(
                    step,
                    {"train/loss": running_loss / window_steps, **self._temperature()},
                    {
                        "train/lr": self.schedule.get_last_lr()[0],
                        "train/samples_per_second": window_steps * train.batch_size / (now - window_started),
                        "data/skipped_samples": sum_across_ranks(self.loader.skipped, self.dist.device),
                        **self.loss.metrics(),
                    },
                )
                self._log_ready_metrics()
                running_loss.zero_()
                window_started, window_steps = now, 0
            if step % train.checkpoint_every == 0:
                self._checkpoint(step)
        seconds = time.perf_counter() - started
        # The loop fetched one batch more than it trained on before deciding to stop: that one does not count.
        self.loader.give_back_last_batch()
        self.stop_agreement.close()
        self._log_ready_metrics(wait=True)
        if self.saved_step != step:
            self._checkpoint(step)
        self.preemption.close()
        if self.preemption.requested:
            self.tracker.close(timeout=10.0)  # what is not delivered by then travels in the checkpoint
            raise Preempted(step)
        summary = {"steps": step, "seconds": seconds, "samples": step * train.batch_size, "parameters": self.parameter_count}
        if self.dist.is_main:
            open_storage(self.layout.train_summary).write_bytes(self.layout.train_summary, json.dumps(summary).encode())
        self.tracker.close()
        return summary

    def _step(self, images: torch.Tensor, texts: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        if self.accumulation is not None:
            loss = self.accumulation.forward_backward(images, texts)
        else:
            with self.autocast:
                loss = self.loss(self.step_model(images, texts), targets)
            loss.backward()
        self.parallel.average_replicated_gradients()
        self.optimizer.step()
        self.schedule.step()
        # CLIP clamps the temperature so logits stay bounded (models without a contrastive term have none).
        if hasattr(self.model, "logit_scale"):
            with torch.no_grad():
                self.model.logit_scale.clamp_(0, 4.6052)
        return loss

    def _images_on_device(self, images) -> torch.Tensor:
        if isinstance(images, EncodedBatch):  # JPEGs still encoded: the device decodes them
            return self.decoder.to_device(images, self.dist.device).contiguous(memory_format=self.device_path.memory_format)
        return images.to(self.dist.device, non_blocking=True, memory_format=self.device_path.memory_format)

    def _temperature(self) -> dict[str, torch.Tensor]:
        return {"train/logit_scale": self.model.logit_scale.exp()} if hasattr(self.model, "logit_scale") else {}

    def _log_ready_metrics(self, wait: bool = False) -> None:
        for logged_step, metrics in self.device_metrics.ready(wait):
            self.tracker.log_metrics(metrics, step=logged_step)

    def _should_stop(self, step: int, started: float) -> bool:
        train = self.spec.train
        if train.max_steps is not None and step >= train.max_steps:
            return True
        # Clocks differ between ranks: rank 0 decides on time and everyone follows; a SIGTERM on any rank stops all.
        out_of_time = train.max_seconds is not None and self.dist.is_main and time.perf_counter() - started >= train.max_seconds
        return self.stop_agreement.should_stop(out_of_time or self.preemption.requested)

    def _checkpoint(self, step: int) -> None:
        # Metrics still on their way from the device go into the tracker first, so the checkpoint carries them.
        self._log_ready_metrics(wait=True)
        # Every rank's random generators and data position, so each resumes exactly where it stopped.
        per_rank = gather_objects({"rng": rng_state(), "data": self.loader.state_dict(), "name": self.checkpointer.new_name(step)})
        self.saved_step = step
        name = per_rank[0]["name"]
        shards = None
        if self.parallel.sharded:
            # Every rank writes its shards; the weights are also gathered whole on rank 0 for evaluation and export.
            shards = save_sharded(self.model, self.optimizer, self.checkpointer.folder(name))
            model_state = full_model_state(self.model)
        else:
            model_state = self.model.state_dict() if self.dist.is_main else {}
        if not self.dist.is_main:
            return
        state = {
            "step": step,
            "model": model_state,
            # Sharded: the optimizer state lives in the shards only.
            "optimizer": {} if self.parallel.sharded else self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "model_cfg": json.dumps(self.model_cfg),
            "objective": self.loss.state_dict(),
            "rng": [entry["rng"] for entry in per_rank],
            "data": {consumer: position for entry in per_rank for consumer, position in entry["data"].items()},
            # Metric points not yet delivered to MLflow: a crash after this checkpoint must not lose them.
            "tracker": self.tracker.pending(),
        }
        # What open_clip can build also travels in its own layout, so `local-dir:` loads any checkpoint folder.
        beside = open_clip_files_if_buildable(self.model_cfg, state["model"])
        self.checkpointer.save(state, step, beside=beside, shards=shards, name=name)

    def _resume(self) -> int:
        restored = self.checkpointer.restore()
        if restored is None:
            return 0
        state = restored.state
        if restored.skipped:
            # The run says which checkpoints failed their check and which one it went back to.
            self.tracker.set_tags({"vlp.checkpoint_fallback": f"resumed from step {restored.entry['step']}; skipped " + "; ".join(restored.skipped)})
        if restored.shards is not None:
            # Written sharded by any number of processes: DCP reshards to this run's layout.
            try:
                load_sharded(self.model, self.optimizer, restored.shards)
            finally:
                shutil.rmtree(restored.shards, ignore_errors=True)
        elif self.parallel.sharded:
            load_unsharded(self.model, self.optimizer, state["model"], state["optimizer"])
        else:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if "objective" in state:
            self.loss.load_state_dict(state["objective"])
        step = int(state["step"])
        if len(state.get("rng", [])) == self.dist.world_size:
            restore_rng_state(state["rng"][self.dist.rank])
        self.loader.load_state_dict(state.get("data", {}), batches_done=step)
        self.tracker.requeue(state.get("tracker", []))
        self.saved_step = step
        logging.getLogger(__name__).info("resumed from checkpoint at step %d", step)
        return step
