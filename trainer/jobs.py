"""The job pipeline: validation, a one-at-a-time training queue, cancel and restart.

Two daemon threads:

* the **validator** checks new jobs' files (``validating_files`` → ``queued`` or
  ``failed``) so validation never waits behind a running training. It streams each file
  (one line in memory, no example kept) and takes turns between the jobs being validated,
  a slice of about :data:`VALIDATION_SLICE_SECONDS` each (up to
  :data:`MAX_ACTIVE_VALIDATIONS` at a time), so a huge file never holds back a small one;
  a cancelled job's validation stops at its next line;
* the **trainer** runs :meth:`Engine.train` for one job at a time, oldest first
  (``queued`` → ``running`` → ``succeeded``/``failed``/``cancelled``).

Every state change is written to SQLite first, so a restart loses nothing:
:meth:`JobManager.start` re-validates ``validating_files`` jobs, re-queues ``queued`` ones
and resumes ``running`` ones (interrupted by a crash or a shutdown) from their latest
checkpoint on disk; a job interrupted before its first checkpoint starts training again
from step 0; one whose checkpoints are all gone from disk fails with ``resume_failed``.

Only one process may run the jobs of a data folder: :meth:`JobManager.start` takes the
folder's lock (:class:`trainer.datadir.DataDirLock`) and refuses with
:class:`trainer.datadir.DataDirBusy` if another process holds it. Starting also makes the
folder private to its user and removes what a crash left behind: temporary files, job
folders and uploads that no record knows, inputs of finished jobs.

Creating a job (:meth:`JobManager.create`) checks the model and files, links the files
into the job's own directory (a hard link: no second copy on disk, and deleting the
uploaded file later does not touch the job) and records the job.

Disk, per job: while the job is active, its training and validation files (shared with the
uploads: extra bytes only once an upload is deleted); one checkpoint per epoch, each a
LoRA adapter (``A`` bytes; about 19.5 MB for SmolLM2-135M at rank 16), the latest also
holding the resume state (about ``2 A``), plus one more checkpoint while it is written.
Once the job has finished (succeeded, failed or cancelled) the file links and every resume
state are deleted: ``n_epochs × A`` remain, the final adapter sharing the last
checkpoint's files. Deleting the fine-tuned model deletes the adapter and every checkpoint.

Cancelling marks the job ``cancelled`` at once. A job being trained stops at the engine's
next ``should_stop()`` check; the worker then logs "Training stopped at step N" followed by
the terminal "Fine-tuning job cancelled", so the status event is always a job's last one (a
crash in between is mended on the next start). Events the threads would log after a job
reached a final status are written only together with a status check, so nothing follows it.
"""

from __future__ import annotations

import collections
import csv
import io
import logging
import math
import queue
import shutil
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.dataset.cost import auto_epochs
from bot.dataset.validation import MIN_EXAMPLES
from trainer import ids
from trainer.datadir import (
    DataDirLock,
    make_private,
    private_dirs,
    remove_partials,
    share_file,
    write_private,
)
from trainer.datafile import MAX_KEPT_WARNINGS, Tally, checked_lines, load_examples
from trainer.engine import (
    RESUME_STATE_FILE,
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
    FINAL_STATUSES,
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
MAX_WARNING_EVENTS = MAX_KEPT_WARNINGS
MAX_ACTIVE_VALIDATIONS = 16
"""Jobs validated in turn at once; later ones wait (each holds one open file and counters)."""
VALIDATION_SLICE_SECONDS = 0.05
"""How long one job's validation runs before the next job being validated gets a turn."""
METRICS_CSV_COLUMNS = ("step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")
CANCELLED_MESSAGE = "Fine-tuning job cancelled"


@dataclass(frozen=True)
class _Work:
    job_id: str
    resume: bool = False


class JobManager:
    """Owns jobs and the job threads; the HTTP layer calls :meth:`create` and :meth:`cancel`."""

    def __init__(self, store: Store, engine: Engine, *, files_dir: Path, jobs_dir: Path, org: str,
                 data_dir: Path | None = None) -> None:  # fmt: skip
        """``data_dir`` (locked, made private and cleaned on :meth:`start`) defaults to the
        folder holding ``jobs_dir``."""
        self.store = store
        self.engine = engine
        self.files_dir = files_dir
        self.jobs_dir = jobs_dir
        self.data_dir = data_dir if data_dir is not None else jobs_dir.parent
        self.org = org
        self.lock = DataDirLock(self.data_dir)
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
        """Lock the data folder (:class:`trainer.datadir.DataDirBusy` if another process has
        it), make it private, clean what a crash left, recover jobs left by an earlier
        process, then start the worker threads."""
        self.lock.acquire()
        try:
            for folder in (self.files_dir, self.jobs_dir):
                private_dirs(folder)
            make_private(self.data_dir)
            self._clean_leftovers()
            self._recover()
        except BaseException:
            self.lock.release()
            raise
        for name, target in (("trainer-validator", self._validator), ("trainer-worker", self._trainer)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask a running training to stop (it stays ``running`` and resumes on restart),
        then give the data folder's lock back."""
        self._stopping.set()
        self._validate_q.put(None)
        self._train_q.put(None)
        for thread in self._threads:
            thread.join(timeout)
        self.lock.release()

    def _clean_leftovers(self) -> None:
        """Remove what no record needs: temporary files of interrupted writes, job folders and
        uploads without a record (a crash between writing and recording), the inputs and
        resume states of finished jobs, and the files of deleted models."""
        removed = remove_partials(self.data_dir)
        removed += remove_partials(self.jobs_dir, legacy=True)
        removed += remove_partials(self.data_dir / "models", legacy=True)
        if self.jobs_dir.is_dir():
            known_jobs = self.store.job_ids()
            for entry in self.jobs_dir.iterdir():
                if entry.is_dir() and not entry.is_symlink() and entry.name not in known_jobs:
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry)
        if self.files_dir.is_dir():
            known_files = self.store.file_ids()
            for entry in self.files_dir.iterdir():
                if entry.name.startswith("file-") and entry.is_file() and entry.name not in known_files:
                    entry.unlink(missing_ok=True)
                    removed.append(entry)
        for job in self.store.jobs_with_status(FINAL_STATUSES):
            self._discard_job_files(job)
        for job in self.store.jobs_of_deleted_models():
            shutil.rmtree(job.output_dir / OUTPUT_DIR, ignore_errors=True)
            self.store.delete_checkpoints(job.id)
        if removed:
            log.info("removed %d leftover file(s) of an interrupted run", len(removed))

    def _discard_job_files(self, job: JobRecord) -> None:
        """What a finished job no longer needs: its links to the input files and the resume
        state of its checkpoints (its checkpoints and final adapter stay)."""
        for name in (TRAINING_COPY, VALIDATION_COPY):
            (job.output_dir / name).unlink(missing_ok=True)
        checkpoints = job.output_dir / OUTPUT_DIR / "checkpoints"
        if checkpoints.is_dir():
            for state in checkpoints.glob(f"*/{RESUME_STATE_FILE}"):
                state.unlink(missing_ok=True)

    def _finished(self, job_id: str) -> None:
        """Clean up after a job that has just reached a final status."""
        job = self.store.get_job(job_id)
        if job is not None and job.status in FINAL_STATUSES:
            self._discard_job_files(job)

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
        private_dirs(self.jobs_dir)
        job_dir.mkdir(mode=0o700)
        try:
            share_file(training.path, job_dir / TRAINING_COPY, link=self._is_upload(training))
            if validation is not None:
                share_file(validation.path, job_dir / VALIDATION_COPY, link=self._is_upload(validation))
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
        if record.status == "error":
            raise bad_request(
                f"Invalid {param}: file {file_id} cannot be used for fine-tuning. {record.status_details or ''}".strip(),
                param=param,
                code="invalid_file_status",
            )
        return record

    def _is_upload(self, record: FileRecord) -> bool:
        """True for a file stored in the data folder's ``files`` (shared by a hard link; a
        file elsewhere is copied, so nothing outside the data folder is ever changed)."""
        return record.path.resolve().parent == self.files_dir.resolve()

    def cancel(self, job_id: str) -> bool:
        """Cancel an active job; False if it had already finished.

        A job the trainer thread owns gets its terminal event from that thread once training
        has stopped (:meth:`_release`); any other job gets it here, with the status.
        """
        with self._lock:
            self._cancelled.add(job_id)
            training = self._training == job_id
            event = None if training else new_event(job_id, CANCELLED_MESSAGE)
            cancelled = self.store.update_job(
                job_id,
                expect=ACTIVE_STATUSES,
                status="cancelled",
                finished_at=ids.now(),
                estimated_finish=None,
                events=[event] if event is not None else [],
            )
        if cancelled and not training:  # a training job is cleaned by the trainer thread
            self._finished(job_id)
        return cancelled

    # ----- validation -----

    def _validator(self) -> None:
        """Validate queued jobs in turns: each active job's validation runs for a slice, then
        the next one's; new jobs join between slices, up to :data:`MAX_ACTIVE_VALIDATIONS`."""
        active: collections.deque[tuple[str, Generator[None, None, None]]] = collections.deque()
        try:
            while True:
                while len(active) < MAX_ACTIVE_VALIDATIONS:
                    try:
                        work = self._validate_q.get(block=not active)
                    except queue.Empty:
                        break
                    if work is None:
                        return
                    active.append((work.job_id, self._validation(work.job_id)))
                if self._stopping.is_set():  # abandoned: validated again on the next start
                    return
                job_id, steps = active.popleft()
                try:
                    next(steps)
                except StopIteration:
                    continue
                except Exception as exc:  # a bug, not bad data: fail the job, keep the thread
                    if job_id not in self._cancelled:
                        log.exception("validating %s failed", job_id)
                        self._fail(job_id, "server_error", f"Validation failed unexpectedly: {exc}", None)
                    continue
                active.append((job_id, steps))
        finally:
            for _, steps in active:
                steps.close()

    def _validation(self, job_id: str) -> Generator[None, None, None]:
        """Validate one job's files, yielding about every :data:`VALIDATION_SLICE_SECONDS`;
        ends early (writing nothing) once the job is cancelled."""
        job = self.store.get_job(job_id)
        if job is None or job.status != "validating_files" or job_id in self._cancelled:
            return
        files = [(job.output_dir / TRAINING_COPY, "training_file", MIN_EXAMPLES)]
        if job.validation_file:
            files.append((job.output_dir / VALIDATION_COPY, "validation_file", 1))
        tallies: list[Tally] = []
        tokens = 0
        slice_end = time.monotonic() + VALIDATION_SLICE_SECONDS
        for path, param, minimum in files:
            tally = Tally(param, MAX_WARNING_EVENTS)
            tallies.append(tally)
            for checked in checked_lines(path):
                if job_id in self._cancelled:
                    return
                if tally.add(checked) and not tally.error_lines and param == "training_file":
                    try:
                        tokens += self.engine.count_tokens(job.model, checked.example)
                    except Exception as exc:  # the model's template or tokenizer refuses it
                        code = getattr(exc, "code", "invalid_training_file")
                        self._fail(job_id, code, f"line {checked.number}: {_reason(exc)}", "training_file")
                        return
                if time.monotonic() >= slice_end:
                    yield
                    slice_end = time.monotonic() + VALIDATION_SLICE_SECONDS
            failure = tally.failure(minimum)
            if failure is not None:
                self._fail(job_id, failure.code, failure.message, failure.param)
                return
        self._validated(job, tallies, tokens)

    def _validated(self, job: JobRecord, tallies: list[Tally], tokens: int) -> None:
        """Files are usable: resolve the hyperparameters, log the warnings, queue the job."""
        train = tallies[0]
        events = [new_event(job.id, f"Warning: {w.message}", level="warn")
                  for t in tallies for w in t.warnings][:MAX_WARNING_EVENTS]  # fmt: skip
        total = sum(t.warning_count for t in tallies)
        if total > len(events):
            events.append(new_event(job.id, f"Warning: {total - len(events)} more warning(s) not shown", level="warn"))
        requested = dict(job.hyperparameters)
        if requested.get("n_epochs", "auto") == "auto":
            requested["n_epochs"] = auto_epochs(train.examples)
        try:
            resolved = self.engine.resolve_hyperparameters(train.examples, requested)
        except ValueError as exc:
            self._fail(job.id, "invalid_hyperparameters", str(exc), "hyperparameters")
            return
        message = (
            f"Training file has {train.examples} examples ({tokens} tokens); "
            f"{resolved.n_epochs} epoch(s), batch size {resolved.batch_size}"
        )
        events += [new_event(job.id, message), new_event(job.id, "Files validated, moving job to queued state")]
        moved = self.store.update_job(
            job.id,
            expect=("validating_files",),
            status="queued",
            hyperparameters=_hyperparameters_dict(resolved),
            events=events,
        )
        if moved:
            self._train_q.put(_Work(job.id))

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
        training stopped (``step``; None if it never began) and then the terminal event; if
        the job has finished, clean up after it."""
        with self._lock:
            self._training = None
            job = self.store.get_job(job_id)
            if job is not None and job.status == "cancelled":
                stopped = [] if step is None else [new_event(job_id, f"Training stopped at step {step}")]
                self.store.add_events([*stopped, new_event(job_id, CANCELLED_MESSAGE)])
        self._finished(job_id)

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
        failed = self.store.update_job(
            job_id,
            expect=ACTIVE_STATUSES,
            status="failed",
            error={"code": code, "message": message, "param": param},
            finished_at=ids.now(),
            estimated_finish=None,
            events=[new_event(job_id, f"Fine-tuning job failed: {message}", level="error")],
        )
        if failed and self._training != job_id:  # a training job is cleaned by the trainer thread
            self._finished(job_id)

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
        private_dirs(path.parent)
        write_private(path, content)
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


def _reason(exc: Exception) -> str:
    """An exception's message for a user (its type when it has none)."""
    return str(exc) or type(exc).__name__


def _hyperparameters_dict(hp: Hyperparameters) -> dict[str, Any]:
    return {"n_epochs": hp.n_epochs, "batch_size": hp.batch_size, "learning_rate_multiplier": hp.learning_rate_multiplier}
