"""``/v1/fine_tuning/jobs``: the job state machine on the controlled clock.

Emulated OpenAI behaviour:

* ``POST /v1/fine_tuning/jobs`` checks synchronously (400) the model (must be a
  fine-tunable snapshot or alias, or an ``ft:`` model to continue training), files
  (must exist with purpose ``fine-tune``), ``suffix`` (1–64 chars), ``seed``,
  ``metadata`` (≤16 pairs, keys ≤64, values ≤512 chars), ``hyperparameters`` /
  ``method`` (``supervised``/``dpo``); the job then moves
  ``validating_files -> queued -> running -> succeeded`` (or ``failed``/``cancelled``)
  only when the test advances the clock (``server.clock.advance``) or steps the job
  (``server.jobs.step`` / ``server.jobs.run_to_completion``);
* file content is validated in ``validating_files``: fewer than 10 examples fails with
  ``invalid_n_examples``, a malformed line with ``invalid_file_format`` naming the line;
* ``n_epochs="auto"`` follows the cookbook heuristic; ``trained_tokens`` is
  ``epochs * sum(min(cap, tokens))`` (see :mod:`.tokens`);
* ``running`` emits one ``metrics`` event per step (``step``, ``total_steps``,
  ``train_loss``, ``train_mean_token_accuracy`` and, with a validation file,
  ``valid_loss``/``valid_mean_token_accuracy``), checkpoints for the last three
  epochs, a base64 CSV result file, and ``fine_tuned_model`` =
  ``ft:{base}:{org}:{suffix}:{id}`` (empty suffix segment when none);
* pause (running only) reports ``status="paused"`` as the spec's example does, resume
  continues, cancel works on any non-terminal job;
* lists are newest first with ``after``/``limit`` cursors; jobs also filter on
  ``metadata[k]=v``.
"""

from __future__ import annotations

import base64
import hashlib
import math
from typing import Any

from aiohttp import web

from .errors import bad_request, model_deprecated, not_found, training_not_available
from .files import int_param
from .ids import base62
from .job_objects import TERMINAL, Checkpoint, Job, JobEvent, metrics_for
from .job_params import check_integrations, check_metadata, check_method, check_seed, check_suffix
from .models import FineTunedModel
from .params import FINE_TUNING_JOB_PARAMS, check_known
from .tokens import billable_tokens, default_epochs
from .training_data import JobFailure, parse_training_file


class JobStore:
    """All jobs, their scheduler and the test-facing driver methods."""

    def __init__(self, state: Any) -> None:
        self._state = state
        self.jobs: dict[str, Job] = {}
        state.clock.on_advance(self._tick)

    # -- test driver API ---------------------------------------------------------
    def get(self, job_id: str) -> Job:
        """The job (``KeyError`` if unknown)."""
        return self.jobs[job_id]

    def step(self, job_id: str) -> str:
        """Run ``job_id``'s next transition now; returns the new status.

        ``validating_files`` → ``queued`` (or ``failed``), ``queued`` → ``running``,
        ``running`` → ``succeeded`` (all remaining steps happen at the current time).
        """
        with self._state.lock:
            job = self.jobs[job_id]
            now = self._state.clock.now
            if job.status in ("validating_files", "queued"):
                job.next_at = now
            elif job.status == "running":
                job.rush_at = now
            else:
                raise ValueError(f"job {job_id} is {job.status}; nothing to step")
            self._tick(now)
            return job.status

    def run_to_completion(self, job_id: str) -> Job:
        """Step ``job_id`` until it is terminal (or paused); returns the job."""
        with self._state.lock:
            job = self.jobs[job_id]
            while job.status not in TERMINAL and job.status != "paused":
                self.step(job_id)
            return job

    def fail(self, job_id: str, code: str, message: str, param: str | None = None) -> None:
        """Force a non-terminal job into ``failed`` with the given error."""
        with self._state.lock:
            self._fail(self.jobs[job_id], JobFailure(code, message, param), self._state.clock.now)

    def statuses(self, job_id: str) -> list[str]:
        """Every status the job has been in, in order."""
        return list(self.jobs[job_id].history)

    # -- creation ----------------------------------------------------------------
    def create(self, body: Any) -> Job:
        """Validate a create request and enqueue the job (``validating_files``)."""
        state = self._state
        if not isinstance(body, dict):
            raise bad_request("Invalid request body: expected a JSON object.")
        check_known(body, FINE_TUNING_JOB_PARAMS)
        for required in ("model", "training_file"):
            if not body.get(required):
                raise bad_request(
                    f"Missing required parameter: '{required}'.",
                    param=required,
                    code="missing_required_parameter",
                )
        requested_model = body["model"]
        if state.models.retired(requested_model):
            raise model_deprecated(requested_model)
        base = state.models.fine_tunable_base(requested_model)
        if base is None:
            raise bad_request(
                f"Model {requested_model} is not available for fine-tuning or does not exist.",
                param="model",
                code="model_not_available",
            )
        suffix = check_suffix(body.get("suffix"))
        seed = check_seed(body.get("seed"))
        metadata = check_metadata(body.get("metadata"))
        training = self._require_file(body["training_file"], "training_file")
        validation_id = body.get("validation_file")
        if validation_id is not None:
            self._require_file(validation_id, "validation_file")
        method_type, requested = check_method(body.get("method"), body.get("hyperparameters"))
        job_id = state.ids.new("ftjob-", 24)
        model_suffix = hashlib.sha256(job_id.encode()).digest()
        org_slug = state.config.organization_slug
        ft_name = f"ft:{base.id}:{org_slug}:{suffix or ''}:{base62(model_suffix, 8)}"
        now = state.clock.now
        job = Job(
            id=job_id,
            created_at=int(now),
            model=base.id,
            training_file=training.id,
            validation_file=validation_id,
            suffix=suffix,
            seed=seed
            if seed is not None
            else int.from_bytes(model_suffix[8:12], "big") % 2147483647,
            metadata=metadata,
            method_type=method_type,
            requested=requested,
            integrations=check_integrations(body.get("integrations")),
            organization_id=state.config.organization_id,
            ft_name=ft_name,
            next_at=now + state.config.validation_seconds,
        )
        job.seconds_per_step = state.config.seconds_per_step
        job.history.append(job.status)
        self.jobs[job.id] = job
        self._event(job, now, f"Created fine-tuning job: {job.id}")
        files_msg = f"Validating training file: {training.id}"
        if validation_id:
            files_msg += f" and validation file: {validation_id}"
        self._event(job, now, files_msg)
        return job

    def _require_file(self, file_id: Any, param: str) -> Any:
        stored = self._state.files.files.get(file_id) if isinstance(file_id, str) else None
        if stored is None:
            raise bad_request(f"invalid {param}: {file_id}", param=param, code="invalid_file_id")
        if stored.purpose != "fine-tune":
            raise bad_request(
                f"File {file_id} has purpose '{stored.purpose}', but fine-tuning requires purpose 'fine-tune'.",
                param=param,
                code="invalid_file_purpose",
            )
        return stored

    # -- lifecycle ---------------------------------------------------------------
    def _event(
        self,
        job: Job,
        when: float,
        message: str,
        *,
        level: str = "info",
        kind: str = "message",
        data: dict[str, Any] | None = None,
    ) -> None:
        job.events.append(
            JobEvent(
                self._state.ids.new("ftevent-", 24), int(when), level, message, kind, data or {}
            )
        )

    def _set_status(self, job: Job, status: str) -> None:
        job.status = status
        job.history.append(status)

    def _due(self, job: Job) -> float | None:
        if job.status in ("validating_files", "queued"):
            return job.next_at
        if job.status == "running":
            when = job.run_anchor + (job.steps_done + 1) * self._state.config.seconds_per_step
            return min(when, job.rush_at) if job.rush_at is not None else when
        return None

    def _tick(self, now: float) -> None:
        """Run every transition due at or before ``now``, oldest first."""
        while True:
            due = [
                (t, j) for j in self.jobs.values() if (t := self._due(j)) is not None and t <= now
            ]
            if not due:
                return
            when, job = min(due, key=lambda pair: pair[0])
            self._advance(job, when)

    def _advance(self, job: Job, when: float) -> None:
        config = self._state.config
        if job.status == "validating_files":
            try:
                self._validate_files(job)
            except JobFailure as failure:
                self._fail(job, failure, when)
                return
            self._event(job, when, "Files validated, moving job to queued state")
            self._set_status(job, "queued")
            job.next_at = when + config.queue_seconds
        elif job.status == "queued":
            self._set_status(job, "running")
            job.run_anchor = when
            self._event(job, when, "Fine-tuning job started")
        elif job.status == "running":
            self._run_step(job, when)

    def _validate_files(self, job: Job) -> None:
        files = self._state.files.files
        training = files.get(job.training_file)
        if training is None:
            raise JobFailure(
                "invalid_file_id", f"File {job.training_file} was deleted.", "training_file"
            )
        job.examples = parse_training_file(
            training.content, method=job.method_type, model=job.model
        )
        if job.validation_file:
            validation = files.get(job.validation_file)
            if validation is None:
                raise JobFailure(
                    "invalid_file_id", f"File {job.validation_file} was deleted.", "validation_file"
                )
            job.validation_examples = parse_training_file(
                validation.content, method=job.method_type, model=job.model, param="validation_file"
            )
        n = len(job.examples)
        n_epochs = job.requested.get("n_epochs", "auto")
        batch_size = job.requested.get("batch_size", "auto")
        lr = job.requested.get("learning_rate_multiplier", "auto")
        job.resolved = {
            "n_epochs": default_epochs(n) if n_epochs == "auto" else n_epochs,
            "batch_size": max(1, min(256, n // 500)) if batch_size == "auto" else batch_size,
            "learning_rate_multiplier": 1.8 if lr == "auto" else lr,
        }
        if job.method_type == "dpo":
            beta = job.requested.get("beta", "auto")
            job.resolved["beta"] = 0.1 if beta == "auto" else beta
        job.steps_per_epoch = math.ceil(n / job.resolved["batch_size"])
        job.total_steps = job.steps_per_epoch * job.resolved["n_epochs"]

    def _run_step(self, job: Job, when: float) -> None:
        job.steps_done += 1
        step = job.steps_done
        metrics = metrics_for(job, step)
        job.metric_rows.append(metrics)
        message = f"Step {step}/{job.total_steps}: training loss={metrics['train_loss']:.2f}"
        if "valid_loss" in metrics:
            message += f", validation loss={metrics['valid_loss']:.2f}"
        self._event(
            job, when, message, kind="metrics", data={**metrics, "total_steps": job.total_steps}
        )
        epoch, end_of_epoch = divmod(step, job.steps_per_epoch)
        if end_of_epoch == 0 and epoch > job.resolved["n_epochs"] - 3:
            self._checkpoint(job, when, step, metrics, final=step == job.total_steps)
        if step == job.total_steps:
            self._succeed(job, when)

    def _checkpoint(
        self, job: Job, when: float, step: int, metrics: dict[str, float], *, final: bool
    ) -> None:
        name = job.ft_name if final else f"{job.ft_name}:ckpt-step-{step}"
        ckpt_metrics = dict(metrics)
        if job.validation_file:
            ckpt_metrics["full_valid_loss"] = metrics["valid_loss"]
            ckpt_metrics["full_valid_mean_token_accuracy"] = metrics["valid_mean_token_accuracy"]
        job.checkpoints.append(
            Checkpoint(
                self._state.ids.new("ftckpt_", 24), int(when), name, job.id, step, ckpt_metrics
            )
        )
        self._event(job, when, f"Checkpoint created at step {step}")
        if not final:
            self._register_model(job, name, when, checkpoint_of=job.ft_name)

    def _register_model(
        self, job: Job, name: str, when: float, checkpoint_of: str | None = None
    ) -> None:
        models = self._state.models
        self._state.models.add_fine_tuned(
            FineTunedModel(
                id=name,
                base=job.model,
                created=int(when),
                owned_by=job.organization_id,
                job_id=job.id,
                shutdown_date=models.base[job.model].shutdown_date,
                examples=[{"pairs": ex.reply_pairs()} for ex in job.examples],
                checkpoint_of=checkpoint_of,
            )
        )

    def _succeed(self, job: Job, when: float) -> None:
        config = self._state.config
        cap = self._state.models.training_context(job.model)
        job.trained_tokens = billable_tokens(
            (ex.tokens for ex in job.examples), cap, job.resolved["n_epochs"]
        )
        job.fine_tuned_model = job.ft_name
        job.finished_at = int(when)
        header = "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n"
        rows = "".join(
            f"{r['step']},{r['train_loss']},{r['train_mean_token_accuracy']},"
            f"{r.get('valid_loss', '')},{r.get('valid_mean_token_accuracy', '')}\n"
            for r in job.metric_rows
        )
        result = self._state.files.add(
            "step_metrics.csv", "fine-tune-results", base64.b64encode((header + rows).encode())
        )
        job.result_files = [result.id]
        self._register_model(job, job.ft_name, when)
        self._event(job, when, f"New fine-tuned model created: {job.ft_name}")
        if config.emit_moderation_events:
            self._event(job, when, "Evaluating model against our usage policies")
            self._event(
                job, when, "Usage policy evaluations completed, model is now enabled for sampling"
            )
        self._event(job, when, "The job has successfully completed")
        job.rush_at = None
        self._set_status(job, "succeeded")

    def _fail(self, job: Job, failure: JobFailure, when: float) -> None:
        if job.status in TERMINAL:
            raise ValueError(f"job {job.id} is already {job.status}")
        job.error = {"code": failure.code, "message": failure.message, "param": failure.param}
        job.finished_at = int(when)
        self._event(job, when, failure.message, level="error")
        self._event(job, when, "The job failed", level="error")
        self._set_status(job, "failed")

    # -- API operations ----------------------------------------------------------
    def require(self, job_id: str) -> Job:
        """The job, or a 404 naming ``fine_tuning_job_id``."""
        job = self.jobs.get(job_id)
        if job is None:
            raise not_found(
                f"Could not find fine-tuning job: {job_id}",
                param="fine_tuning_job_id",
                code="fine_tuning_job_not_found",
            )
        return job

    def cancel(self, job_id: str) -> Job:
        """``POST …/cancel``: any non-terminal job becomes ``cancelled``."""
        job = self.require(job_id)
        if job.status in TERMINAL:
            raise bad_request(
                f"Job has already completed: {job_id}",
                param="fine_tuning_job_id",
                code="job_already_completed",
            )
        self._event(job, self._state.clock.now, "Fine-tuning job cancelled")
        job.rush_at = None
        self._set_status(job, "cancelled")
        return job

    def pause(self, job_id: str) -> Job:
        """``POST …/pause``: only a running job can be paused."""
        job = self.require(job_id)
        if job.status != "running":
            raise bad_request(
                f"Cannot pause job {job_id} with status {job.status}; only running jobs can be paused.",
                param="fine_tuning_job_id",
                code="invalid_job_status",
            )
        job.paused_at = self._state.clock.now
        self._event(job, job.paused_at, "Fine-tuning job paused")
        self._set_status(job, "paused")
        return job

    def resume(self, job_id: str) -> Job:
        """``POST …/resume``: a paused job continues where it stopped."""
        job = self.require(job_id)
        if job.status != "paused":
            raise bad_request(
                f"Cannot resume job {job_id} with status {job.status}; only paused jobs can be resumed.",
                param="fine_tuning_job_id",
                code="invalid_job_status",
            )
        now = self._state.clock.now
        job.run_anchor += now - (job.paused_at or now)
        job.paused_at = None
        job.rush_at = None
        self._event(job, now, "Fine-tuning job resumed")
        self._set_status(job, "running")
        return job

    def page_jobs(self, query: Any) -> dict[str, Any]:
        """``GET /v1/fine_tuning/jobs``: newest first, ``after``/``limit``/metadata filter."""
        jobs = list(reversed(self.jobs.values()))
        wanted = {
            k[len("metadata[") : -1]: v
            for k, v in query.items()
            if k.startswith("metadata[") and k.endswith("]")
        }
        if query.get("metadata") == "null":
            jobs = [j for j in jobs if not j.metadata]
        if wanted:
            jobs = [
                j
                for j in jobs
                if j.metadata and all(j.metadata.get(k) == v for k, v in wanted.items())
            ]
        page, has_more = _cursor_page(jobs, query, default_limit=20)
        return {"object": "list", "data": [j.to_json() for j in page], "has_more": has_more}

    def page_events(self, job_id: str, query: Any) -> dict[str, Any]:
        """``GET …/events``: newest first, ``after``/``limit``."""
        events = list(reversed(self.require(job_id).events))
        page, has_more = _cursor_page(events, query, default_limit=20)
        return {"object": "list", "data": [e.to_json() for e in page], "has_more": has_more}

    def page_checkpoints(self, job_id: str, query: Any) -> dict[str, Any]:
        """``GET …/checkpoints``: newest first, ``after``/``limit``, first/last ids."""
        checkpoints = sorted(self.require(job_id).checkpoints, key=lambda c: c.step, reverse=True)
        page, has_more = _cursor_page(checkpoints, query, default_limit=10)
        return {
            "object": "list",
            "data": [c.to_json() for c in page],
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": has_more,
        }


def _cursor_page(items: list[Any], query: Any, *, default_limit: int) -> tuple[list[Any], bool]:
    after = query.get("after")
    if after:
        ids = [item.id for item in items]
        if after in ids:
            items = items[ids.index(after) + 1 :]
        else:
            items = []
    limit = int_param(query, "limit", default_limit, 1, 100)
    return items[:limit], len(items) > limit


def routes(state: Any) -> list[web.RouteDef]:
    """aiohttp routes for ``/v1/fine_tuning/jobs``; ``state`` is the :class:`OpenAIStandin`."""
    prefix = "/v1/fine_tuning/jobs"

    async def create(request: web.Request) -> web.Response:
        if not state.config.training_available:
            raise training_not_available()
        body = await state.read_json(request)
        with state.lock:
            return state.json(state.jobs.create(body).to_json())

    async def list_jobs(request: web.Request) -> web.Response:
        with state.lock:
            return state.json(state.jobs.page_jobs(request.query))

    async def retrieve(request: web.Request) -> web.Response:
        with state.lock:
            return state.json(state.jobs.require(request.match_info["job_id"]).to_json())

    def action(name: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            with state.lock:
                return state.json(getattr(state.jobs, name)(request.match_info["job_id"]).to_json())

        return handler

    async def events(request: web.Request) -> web.Response:
        with state.lock:
            return state.json(state.jobs.page_events(request.match_info["job_id"], request.query))

    async def checkpoints(request: web.Request) -> web.Response:
        with state.lock:
            return state.json(
                state.jobs.page_checkpoints(request.match_info["job_id"], request.query)
            )

    return [
        web.post(prefix, create),
        web.get(prefix, list_jobs),
        web.get(prefix + "/{job_id}", retrieve),
        web.post(prefix + "/{job_id}/cancel", action("cancel")),
        web.post(prefix + "/{job_id}/pause", action("pause")),
        web.post(prefix + "/{job_id}/resume", action("resume")),
        web.get(prefix + "/{job_id}/events", events),
        web.get(prefix + "/{job_id}/checkpoints", checkpoints),
    ]
