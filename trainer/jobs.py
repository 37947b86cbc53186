"""The job pipeline: validation, a one-at-a-time training queue, cancel and restart.

Two daemon threads:

* the **validator** checks a new job's files (``validating_files`` → ``queued`` or
  ``failed``) so validation never waits behind a running training;
* the **trainer** runs :meth:`Engine.train` for one job at a time, oldest first
  (``queued`` → ``running`` → ``succeeded``/``failed``/``cancelled``).

Every state change is written to SQLite first, so a restart loses nothing:
:meth:`JobManager.start` re-validates ``validating_files`` jobs, re-queues ``queued`` ones
and resumes ``running`` ones (interrupted by a crash or a shutdown) from their latest
checkpoint on disk; a job interrupted before its first checkpoint starts training again
from step 0; one whose checkpoints are all gone from disk fails with ``resume_failed``.

Creating a job (:meth:`JobManager.create`) checks the model and files, snapshots the files
into the job's own directory and records the job, so deleting an uploaded file later does
not touch it.

Cancelling marks the job ``cancelled`` at once. A job being trained stops at the engine's
next ``should_stop()`` check; the worker then logs "Training stopped at step N" followed by
the terminal "Fine-tuning job cancelled", so the status event is always a job's last one (a
crash in between is mended on the next start). Events the threads would log after a job
reached a final status are written only together with a status check, so nothing follows it.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import queue
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.dataset.cost import auto_epochs
from trainer import ids
from trainer.datafile import DataFileError, load_examples
from trainer.engine import (
    Checkpoint,
    Engine,
    Hyperparameters,
    StepMetrics,
    TrainingCancelled,
    TrainingError,
    TrainRequest,
    TrainResult,
)
from trainer.errors import bad_request
from trainer.job_params import JobParams
from trainer.store import (
    ACTIVE_STATUSES,
    CheckpointRecord,
    FileRecord,
    JobRecord,
    ModelRecord,
    Store,
    new_event,
)

log = logging.getLogger(__name__)

TRAINING_COPY = "training.jsonl"
VALIDATION_COPY = "validation.jsonl"
OUTPUT_DIR = "output"
MAX_WARNING_EVENTS = 20
METRICS_CSV_COLUMNS = ("step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")
CANCELLED_MESSAGE = "Fine-tuning job cancelled"


@dataclass(frozen=True)
class _Work:
    job_id: str
    resume: bool = False


class JobManager:
    """Owns jobs and the job threads; the HTTP layer calls :meth:`create` and :meth:`cancel`."""

    def __init__(self, store: Store, engine: Engine, *, files_dir: Path, jobs_dir: Path, org: str) -> None:
        self.store = store
        self.engine = engine
        self.files_dir = files_dir
        self.jobs_dir = jobs_dir
        self.org = org
        self._validate_q: queue.Queue[_Work | None] = queue.Queue()
        self._train_q: queue.Queue[_Work | None] = queue.Queue()
        self._cancelled: set[str] = set()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._training: str | None = None
        """The job the trainer thread owns: its terminal cancel event is the worker's to write."""

    # ----- lifecycle -----

    def start(self) -> None:
        """Recover jobs left by an earlier process, then start the worker threads."""
        self._recover()
        for name, target in (("trainer-validator", self._validator), ("trainer-worker", self._trainer)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask a running training to stop (it stays ``running`` and resumes on restart)."""
        self._stopping.set()
        self._validate_q.put(None)
        self._train_q.put(None)
        for thread in self._threads:
            thread.join(timeout)

    def _recover(self) -> None:
        for job_id in self.store.jobs_missing_final_event("cancelled", CANCELLED_MESSAGE):
            self.store.add_event(new_event(job_id, CANCELLED_MESSAGE))  # the process died while it stopped
        for job in self.store.jobs_with_status(ACTIVE_STATUSES):
            if job.status == "validating_files":
                self._validate_q.put(_Work(job.id))
            elif job.status == "running":
                self._train_q.put(_Work(job.id, resume=True))
        for job in self.store.jobs_with_status(("queued",)):
            self._train_q.put(_Work(job.id))

    # ----- requests from the API -----

    def create(self, params: JobParams) -> JobRecord:
        """Check the model and files, snapshot the files into the job directory, record the
        job and queue it for validation; a 400 :class:`APIError` if the request cannot be met."""
        base_models = self.engine.base_models()
        if params.model not in base_models:
            raise bad_request(
                f"Model {params.model} is not available for fine-tuning or does not exist. "
                f"Available base models: {', '.join(base_models)}.",
                param="model",
                code="model_not_available",
            )
        training = self._training_input(params.training_file, "training_file")
        validation = self._training_input(params.validation_file, "validation_file") if params.validation_file else None
        job_id = ids.job_id()
        model_name = ids.fine_tuned_model_name(params.model, self.org, params.suffix, job_id)
        while self.store.job_with_model_name(model_name) is not None:  # same first 8 characters: ~never
            job_id = ids.job_id()
            model_name = ids.fine_tuned_model_name(params.model, self.org, params.suffix, job_id)
        job_dir = self.jobs_dir / job_id
        job = JobRecord(
            id=job_id,
            created_at=ids.now(),
            model=params.model,
            training_file=params.training_file,
            validation_file=params.validation_file,
            suffix=params.suffix,
            seed=params.seed,
            metadata=params.metadata,
            hyperparameters=params.hyperparameters,
            status="validating_files",
            error=None,
            model_name=model_name,
            fine_tuned_model=None,
            finished_at=None,
            trained_tokens=None,
            result_files=[],
            estimated_finish=None,
            output_dir=job_dir,
        )
        job_dir.mkdir(parents=True)
        try:
            shutil.copyfile(training.path, job_dir / TRAINING_COPY)
            if validation is not None:
                shutil.copyfile(validation.path, job_dir / VALIDATION_COPY)
            self.store.add_job(job, [
                new_event(job_id, f"Created fine-tuning job: {job_id}"),
                new_event(job_id, f"Validating training file: {params.training_file}"),
            ])  # fmt: skip
        except BaseException:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        self._validate_q.put(_Work(job_id))
        return job

    def _training_input(self, file_id: str, param: str) -> FileRecord:
        record = self.store.get_file(file_id)
        if record is None:
            raise bad_request(f"Invalid {param}: no such file {file_id!r}.", param=param, code="file_not_found")
        if record.purpose != "fine-tune":
            raise bad_request(
                f"File {file_id} has purpose {record.purpose!r}, but fine-tuning files must have purpose 'fine-tune'.",
                param=param,
                code="invalid_file_purpose",
            )
        return record

    def cancel(self, job_id: str) -> bool:
        """Cancel an active job; False if it had already finished.

        A job the trainer thread owns gets its terminal event from that thread once training
        has stopped (:meth:`_release`); any other job gets it here, with the status.
        """
        with self._lock:
            self._cancelled.add(job_id)
            event = None if self._training == job_id else new_event(job_id, CANCELLED_MESSAGE)
            return self.store.update_job(
                job_id,
                expect=ACTIVE_STATUSES,
                status="cancelled",
                finished_at=ids.now(),
                estimated_finish=None,
                events=[event] if event is not None else [],
            )

    # ----- validation -----

    def _validator(self) -> None:
        while (work := self._validate_q.get()) is not None:
            try:
                self._validate(work.job_id)
            except Exception as exc:  # a bug, not bad data: fail the job, keep the thread
                log.exception("validating %s failed", work.job_id)
                self._fail(work.job_id, "server_error", f"Validation failed unexpectedly: {exc}", None)

    def _validate(self, job_id: str) -> None:
        job = self.store.get_job(job_id)
        if job is None or job.status != "validating_files":
            return
        try:
            train = load_examples(job.output_dir / TRAINING_COPY, param="training_file")
            valid_path = job.output_dir / VALIDATION_COPY
            valid = load_examples(valid_path, param="validation_file", min_examples=1) if job.validation_file else None
        except DataFileError as exc:
            self._fail(job_id, exc.code, exc.message, exc.param)
            return
        warnings = [*train.warnings, *(valid.warnings if valid else [])]
        events = [new_event(job_id, f"Warning: {w.message}", level="warn") for w in warnings[:MAX_WARNING_EVENTS]]
        if len(warnings) > MAX_WARNING_EVENTS:
            more = len(warnings) - MAX_WARNING_EVENTS
            events.append(new_event(job_id, f"Warning: {more} more warning(s) not shown", level="warn"))
        requested = dict(job.hyperparameters)
        if requested.get("n_epochs", "auto") == "auto":
            requested["n_epochs"] = auto_epochs(len(train.examples))
        try:
            resolved = self.engine.resolve_hyperparameters(len(train.examples), requested)
        except ValueError as exc:
            self._fail(job_id, "invalid_hyperparameters", str(exc), "hyperparameters")
            return
        try:
            tokens = sum(self.engine.count_tokens(job.model, ex) for ex in train.examples)
        except (TrainingError, ValueError) as exc:
            self._fail(job_id, getattr(exc, "code", "invalid_training_file"), str(exc), "training_file")
            return
        message = (
            f"Training file has {len(train.examples)} examples ({tokens} tokens); "
            f"{resolved.n_epochs} epoch(s), batch size {resolved.batch_size}"
        )
        events += [new_event(job_id, message), new_event(job_id, "Files validated, moving job to queued state")]
        moved = self.store.update_job(
            job_id,
            expect=("validating_files",),
            status="queued",
            hyperparameters=_hyperparameters_dict(resolved),
            events=events,
        )
        if moved:
            self._train_q.put(_Work(job_id))

    # ----- training -----

    def _trainer(self) -> None:
        while not self._stopping.is_set() and (work := self._train_q.get()) is not None:
            try:
                self._train(work)
            except Exception as exc:
                log.exception("training %s failed", work.job_id)
                self._fail(work.job_id, "server_error", f"Training failed unexpectedly: {exc}", None)

    def _train(self, work: _Work) -> None:
        with self._lock:  # from here on a cancel leaves the terminal event to _release
            job = self.store.get_job(work.job_id)
            expected = "running" if work.resume else "queued"
            if job is None or job.status != expected:
                return
            self._training = job.id
        callbacks = _JobCallbacks(self, job, 0)
        try:
            self._run_training(job, work.resume, callbacks)
        finally:
            self._release(job.id, callbacks.last_step if callbacks.engaged else None)

    def _run_training(self, job: JobRecord, resume: bool, callbacks: _JobCallbacks) -> None:
        resume_from, start_step = None, 0
        if resume:
            found = self._resume_point(job)
            if found is None:
                return
            resume_from, start_step = found
        else:
            started = self.store.update_job(
                job.id, expect=("queued",), status="running",
                events=[new_event(job.id, "Fine-tuning job started")],
            )  # fmt: skip
            if not started:
                return
        callbacks.start_step = callbacks.last_step = start_step
        train = load_examples(job.output_dir / TRAINING_COPY, param="training_file").examples
        valid = None
        if job.validation_file:
            valid = load_examples(job.output_dir / VALIDATION_COPY, param="validation_file", min_examples=1).examples
        request = TrainRequest(
            base_model=job.model,
            train_examples=train,
            valid_examples=valid,
            hyperparameters=Hyperparameters(**job.hyperparameters),
            seed=job.seed,
            output_dir=job.output_dir / OUTPUT_DIR,
            resume_from=resume_from,
        )
        callbacks.engaged = True
        try:
            result = self.engine.train(request, callbacks)
        except TrainingCancelled:
            if self._stopping.is_set() and job.id not in self._cancelled:
                message = "Training interrupted by a server shutdown; it resumes from the latest checkpoint on restart"
                self.store.update_job(job.id, expect=("running",), events=[new_event(job.id, message)])
        except TrainingError as exc:
            self._fail(job.id, exc.code, str(exc), None)
        except Exception as exc:
            if resume_from is None:
                raise
            log.exception("resuming %s failed", job.id)
            self._fail(job.id, "resume_failed", f"Could not resume from the checkpoint at step {start_step}: {exc}", None)
        else:
            self._succeed(job, result)

    def _release(self, job_id: str, step: int | None) -> None:
        """The trainer thread is done with ``job_id``: if it was cancelled meanwhile, log where
        training stopped (``step``; None if it never began) and then the terminal event."""
        with self._lock:
            self._training = None
            job = self.store.get_job(job_id)
            if job is not None and job.status == "cancelled":
                stopped = [] if step is None else [new_event(job_id, f"Training stopped at step {step}")]
                self.store.add_events([*stopped, new_event(job_id, CANCELLED_MESSAGE)])

    def _resume_point(self, job: JobRecord) -> tuple[Path | None, int] | None:
        """The checkpoint to resume ``job`` from after a restart, or None if it failed."""
        checkpoints = self.store.latest_checkpoints(job.id)
        usable = next((c for c in checkpoints if c.path.is_dir()), None)
        if usable is not None:
            message = f"Server restarted; resuming training from the checkpoint at step {usable.step}"
            self.store.update_job(job.id, expect=("running",), events=[new_event(job.id, message)])
            return usable.path, usable.step
        if checkpoints:
            self._fail(
                job.id, "resume_failed",
                "The server restarted during training and none of the job's checkpoints "
                f"could be found on disk (latest: step {checkpoints[0].step}); start a new job",
                None,
            )  # fmt: skip
            return None
        message = "Server restarted before the first checkpoint; training starts again"
        self.store.update_job(job.id, expect=("running",), events=[new_event(job.id, message)])
        return None, 0

    def _fail(self, job_id: str, code: str, message: str, param: str | None) -> None:
        self.store.update_job(
            job_id,
            expect=ACTIVE_STATUSES,
            status="failed",
            error={"code": code, "message": message, "param": param},
            finished_at=ids.now(),
            estimated_finish=None,
            events=[new_event(job_id, f"Fine-tuning job failed: {message}", level="error")],
        )

    def _succeed(self, job: JobRecord, result: TrainResult) -> None:
        results_file = self._write_metrics_csv(job)
        model = ModelRecord(job.model_name, ids.now(), job.model, job.id, result.adapter_dir)
        done = self.store.succeed_job(
            job.id,
            model=model,
            results_file=results_file,
            trained_tokens=result.trained_tokens,
            events=[
                new_event(job.id, f"New fine-tuned model created: {job.model_name}"),
                new_event(job.id, "The job has successfully completed"),
            ],
        )
        if not done:  # cancelled in the last moment: neither adapter nor results are published
            shutil.rmtree(result.adapter_dir, ignore_errors=True)
            results_file.path.unlink(missing_ok=True)

    def _write_metrics_csv(self, job: JobRecord) -> FileRecord:
        """A ``fine-tune-results`` file with one row per step (the latest run of each step)."""
        by_step: dict[int, dict[str, Any]] = {}
        for event in self.store.metrics_events(job.id):
            if event.data:
                by_step[int(event.data["step"])] = event.data
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(METRICS_CSV_COLUMNS)
        for step in sorted(by_step):
            data = by_step[step]
            writer.writerow([
                step, data.get("train_loss"), data.get("train_mean_token_accuracy"),
                data.get("valid_loss", ""), data.get("valid_mean_token_accuracy", ""),
            ])  # fmt: skip
        content = out.getvalue().encode()
        file_id = ids.file_id()
        path = self.files_dir / file_id
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return FileRecord(file_id, "step_metrics.csv", "fine-tune-results", len(content), ids.now(), path)

    # ----- used by the callbacks -----

    def should_stop(self, job_id: str) -> bool:
        return self._stopping.is_set() or job_id in self._cancelled


class _JobCallbacks:
    """Turns engine progress into events, checkpoints and ``estimated_finish``."""

    def __init__(self, manager: JobManager, job: JobRecord, start_step: int) -> None:
        self.manager = manager
        self.store = manager.store
        self.job = job
        self.start_step = start_step
        self.last_step = start_step
        self.engaged = False
        """Set once the engine is asked to train: from then on a stop has a step to report."""
        self.total_steps = 0
        self.started = time.monotonic()

    def on_start(self, total_steps: int, seconds_per_step: float | None) -> None:
        self.total_steps = total_steps
        self.started = time.monotonic()
        if seconds_per_step:
            self._estimate(seconds_per_step)

    def on_step(self, metrics: StepMetrics) -> None:
        self.last_step = metrics.step
        self.total_steps = metrics.total_steps or self.total_steps
        data = _metrics_data(metrics)
        text = f"Step {metrics.step}/{metrics.total_steps}: training loss={metrics.train_loss:.2f}"
        if "valid_loss" in data:
            text += f", validation loss={metrics.valid_loss:.2f}"
        if "full_valid_loss" in data:
            text += f", full validation loss={metrics.full_valid_loss:.2f}"
        self.store.add_event(new_event(self.job.id, text, type="metrics", data=data))
        done = metrics.step - self.start_step
        if done > 0:
            self._estimate((time.monotonic() - self.started) / done)

    def on_checkpoint(self, checkpoint: Checkpoint) -> None:
        model_name = ids.checkpoint_model_name(self.job.model_name, checkpoint.step)
        record = CheckpointRecord(
            id=ids.checkpoint_id(),
            job_id=self.job.id,
            created_at=ids.now(),
            step=checkpoint.step,
            epoch=checkpoint.epoch,
            model_name=model_name,
            path=checkpoint.path,
            metrics=_checkpoint_metrics(checkpoint.metrics),
        )
        message = f"Checkpoint created at step {checkpoint.step} with Snapshot ID: {model_name}"  # OpenAI's wording
        self.store.add_checkpoint(record, new_event(self.job.id, message))

    def should_stop(self) -> bool:
        return self.manager.should_stop(self.job.id)

    def _estimate(self, seconds_per_step: float) -> None:
        remaining = max(self.total_steps - self.last_step, 0)
        finish = ids.now() + round(seconds_per_step * remaining)
        self.store.update_job(self.job.id, expect=("running",), estimated_finish=finish)


_METRIC_NAMES = (
    "train_loss", "train_mean_token_accuracy", "valid_loss", "valid_mean_token_accuracy",
    "full_valid_loss", "full_valid_mean_token_accuracy",
)  # fmt: skip


def _metrics_data(m: StepMetrics) -> dict[str, Any]:
    """OpenAI's metrics fields; values that are missing or not finite (NaN) are left out.

    ``full_valid_*`` (the whole validation file) come with the last step of each epoch,
    the final step included, when the job has a validation file."""
    data: dict[str, Any] = {"step": m.step, "total_steps": m.total_steps}
    for name in _METRIC_NAMES:
        value = getattr(m, name)
        if value is not None and math.isfinite(value):
            data[name] = value
    return data


def _checkpoint_metrics(m: StepMetrics) -> dict[str, Any]:
    data = _metrics_data(m)
    data.pop("total_steps")
    return data


def _hyperparameters_dict(hp: Hyperparameters) -> dict[str, Any]:
    return {"n_epochs": hp.n_epochs, "batch_size": hp.batch_size, "learning_rate_multiplier": hp.learning_rate_multiplier}
