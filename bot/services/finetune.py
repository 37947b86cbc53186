"""Fine-tunes from Discord: estimate, check and start, follow up, cancel, list, activate.

The use cases behind ``/finetune`` (no Discord here). A start is two steps: :meth:`plan`
checks everything and returns the numbers to confirm (or refuses with every reason), then
:meth:`start` writes our job record first, exports, screens, splits, records which examples
went to the validation file (before any upload, for ``/model compare``), uploads and starts
the job at the backend through :meth:`~bot.providers.Provider.start_job_once`, so a retried,
doubled or interrupted start makes one job.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from bot.dataset.checker import check_file
from bot.dataset.cost import resolve_epochs
from bot.dataset.errors import InvalidInput, UserError
from bot.dataset.examples import ChatExample
from bot.dataset.pricing import ModelPrice, PriceCatalogue
from bot.providers import Job, JobSpec, Provider, ProviderError
from bot.providers.errors import sentence
from bot.services.chat import training_system_prompt
from bot.services.datasets import DatasetService
from bot.services.imports import DatasetFileService
from bot.services.stats import StatsService
from storage.jobs import UnfinishedJobExists
from storage.records import ActiveModel, Dataset, ExampleStatus, FineTuneJob, JobStatus
from storage.store import Storage

log = logging.getLogger(__name__)

MIN_APPROVED = 10
"""Fewer approved examples than this cannot be fine-tuned (OpenAI's minimum)."""
MIN_TRAINING_EXAMPLES = 10
MAX_VALIDATION_SPLIT = 0.5
DEFAULT_VALIDATION_SPLIT = 0.1
MAX_SUFFIX = 40
PROBLEMS_SHOWN = 3
METADATA_JOB = "tunecord_job"

SPEND_ESTIMATE = "estimate"
SPEND_RELEASE = "estimate_release"
SPEND_ACTUAL = "actual"



class StartRefused(InvalidInput):
    """A start that cannot go ahead; ``reasons`` lists every one."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        text = "I cannot start this fine-tune:\n" + "\n".join(f"- {r}" for r in self.reasons)
        super().__init__(text)


T = TypeVar("T")

RECONCILE_GRACE = timedelta(minutes=3)
"""See :attr:`FineTuneService.reconcile_grace` (longer than any sensible provider timeout)."""


def month_start(now: datetime | None = None) -> datetime:
    """The first moment of the current calendar month, UTC (budgets are monthly)."""
    now = now or datetime.now(UTC)
    return datetime(now.year, now.month, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ModelOption:
    """One model the backend can fine-tune, with the dataset's cost on it."""

    price: ModelPrice
    billed_tokens: int
    epochs: int
    cost_usd: Decimal
    approximate: bool = False


@dataclass(frozen=True)
class EstimateReport:
    dataset: Dataset
    approved: int
    backend: str
    options: list[ModelOption]
    budget_left_usd: Decimal | None


@dataclass(frozen=True)
class StartPlan:
    """A checked start, to confirm: the file's numbers and the cost."""

    dataset: Dataset
    price: ModelPrice
    model: str
    """The name to send the backend (as the member or the dataset named it)."""
    epochs: int | None
    """Asked for explicitly; ``None`` lets the backend choose (shown: ``epochs_resolved``)."""
    epochs_resolved: int
    suffix: str | None
    validation_split: float
    examples: int
    validation_examples: int
    billed_tokens: int
    cost_usd: Decimal
    budget_left_usd: Decimal | None
    backend: str
    warnings: list[str] = field(default_factory=list)

    @property
    def training_examples(self) -> int:
        return self.examples - self.validation_examples


@dataclass(frozen=True)
class StartResult:
    job: FineTuneJob
    flagged: list[str]
    """Examples left out by moderation (``#id`` or ``line n``)."""
    confirmed: bool
    """False when the backend did not confirm the start (the follower reconciles it)."""


@dataclass(frozen=True)
class _Prepared:
    """A start's files, ready to upload."""

    flagged: list[str]
    training: Path
    validation: Path | None
    validation_ids: list[int]
    """The examples the validation file holds, in its order (empty: none, or unknown)."""


@dataclass(frozen=True)
class JobList:
    jobs: list[FineTuneJob]
    spent_usd: Decimal
    reserved_usd: Decimal
    budget_usd: Decimal | None


def _reason_problems(report_errors: Sequence[object], counts: dict[str, int]) -> str:
    total = sum(counts.values())
    shown = "; ".join(str(e) for e in report_errors[:PROBLEMS_SHOWN])
    more = f" (and {total - PROBLEMS_SHOWN} more)" if total > PROBLEMS_SHOWN else ""
    return (
        f"The training file has {total} format error{'s' if total != 1 else ''}: {shown}{more}. "
        "Fix or reject those examples (`/dataset check` lists them)."
    )


def held_out_indices(lines: Sequence[bytes], fraction: float) -> set[int]:
    """The positions of the ``fraction`` of lines with the smallest content hashes: the
    validation lines, so the same file always splits the same way."""
    count = math.floor(len(lines) * fraction)
    if count <= 0:
        return set()
    order = sorted(range(len(lines)), key=lambda i: (hashlib.sha256(lines[i]).digest(), i))
    return set(order[:count])


def partition(items: Sequence[T], picked: set[int]) -> tuple[list[T], list[T]]:
    """(the items not at the ``picked`` positions, the items there), both in order."""
    rest = [item for i, item in enumerate(items) if i not in picked]
    return rest, [item for i, item in enumerate(items) if i in picked]


def split_lines(lines: Sequence[bytes], fraction: float) -> tuple[list[bytes], list[bytes]]:
    """(training, validation), in file order (see :func:`held_out_indices`)."""
    return partition(lines, held_out_indices(lines, fraction))


def _moderation_text(line: bytes) -> str:
    example = ChatExample.from_json(line.decode("utf-8"))
    parts = [m.get("content") for m in example.messages]
    return "\n".join(p for p in parts if isinstance(p, str))


class FineTuneService:
    """``/finetune``'s use cases over the storage, the backend and the price catalogue."""

    def __init__(
        self,
        storage: Storage,
        provider: Provider,
        catalogue: PriceCatalogue,
        *,
        datasets: DatasetService,
        files: DatasetFileService,
        stats: StatsService,
        backend: str,
        default_model: str,
    ) -> None:
        self._storage = storage
        self._provider = provider
        self._catalogue = catalogue
        self._datasets = datasets
        self._files = files
        self._stats = stats
        self._backend = backend
        self._default_model = default_model
        self.starting: set[int] = set()
        """Our job ids being started right now (the follower leaves them alone)."""
        self.reconcile_grace = RECONCILE_GRACE
        """How long after its record an unconfirmed start may still appear at the backend
        (a creation that timed out can be applied late) before it is called failed."""

    @property
    def backend_label(self) -> str:
        return self._provider.label

    # -- reading ------------------------------------------------------------------------
    async def fine_tunable(self, today: date | None = None) -> list[ModelPrice]:
        """Catalogue models the backend serves and can fine-tune (not retired), by name."""
        today = today or datetime.now(UTC).date()
        found: dict[str, ModelPrice] = {}
        for info in await self._provider.list_models():
            if info.id.startswith("ft:"):
                continue
            price = self._catalogue.find(info.id)
            if price is not None and not price.retired(today):
                found[price.model] = price
        return sorted(found.values(), key=lambda p: p.model)

    async def budget_left(self, guild_id: int) -> Decimal | None:
        budget = (await self._storage.guilds.get(guild_id)).monthly_budget_usd
        if budget is None:
            return None
        spent = await self._storage.spend.total(guild_id, since=month_start())
        return budget - spent

    async def estimate(
        self, guild_id: int, dataset_name: str | None, epochs: int | None = None
    ) -> EstimateReport:
        dataset = await self._datasets.resolve(guild_id, dataset_name)
        tunable = {p.model for p in await self.fine_tunable()}
        report = await self._stats.stats(dataset, epochs=epochs)
        options = [
            ModelOption(e.model, e.billed_tokens, e.estimate.epochs, e.estimate.cost_usd,
                        e.approximate)
            for e in report.comparison
            if e.model.model in tunable
        ]
        return EstimateReport(
            dataset=dataset,
            approved=report.counts.approved.examples,
            backend=self._provider.label,
            options=options,
            budget_left_usd=await self.budget_left(guild_id),
        )

    # -- starting -----------------------------------------------------------------------
    async def plan(
        self,
        guild_id: int,
        dataset_name: str | None,
        *,
        model: str | None = None,
        epochs: int | None = None,
        suffix: str | None = None,
        validation_split: float | None = None,
    ) -> StartPlan:
        """Check a start; raises :class:`StartRefused` with every reason it cannot go."""
        dataset = await self._datasets.resolve(guild_id, dataset_name)
        reasons: list[str] = []
        model_name = (model or dataset.base_model or self._default_model).strip()
        price = self._catalogue.find(model_name)
        tunable = await self.fine_tunable()
        today = datetime.now(UTC).date()
        if price is None:
            reasons.append(
                f"`{model_name[:60]}` is not a model I know the price of; "
                "`/finetune estimate` lists those this backend can fine-tune."
            )
        elif price.retired(today):
            reasons.append(
                f"`{price.model}` was retired on {price.shutdown_date}: pick another model "
                "(`/finetune estimate` lists them)."
            )
        elif price.model not in {p.model for p in tunable}:
            if tunable:
                names = ", ".join(f"`{p.model}`" for p in tunable)
                reasons.append(
                    f"{sentence(self._provider.label)} cannot fine-tune `{price.model}`; it can fine-tune "
                    f"{names}."
                )
            else:
                reasons.append(f"{sentence(self._provider.label)} lists no model it can fine-tune.")
        if suffix is not None and not 1 <= len(suffix.strip()) <= MAX_SUFFIX:
            reasons.append(f"The suffix must be 1 to {MAX_SUFFIX} characters.")
        if validation_split is not None and not 0 <= validation_split <= MAX_VALIDATION_SPLIT:
            reasons.append(
                f"The validation split must be between 0 and {MAX_VALIDATION_SPLIT}, "
                f"not {validation_split:g}."
            )
        approved = (await self._datasets.counts(dataset)).approved.examples
        if approved < MIN_APPROVED:
            reasons.append(
                f"`{dataset.name}` has {approved} approved example{'s' if approved != 1 else ''}; "
                f"a fine-tune needs at least {MIN_APPROVED}."
            )
        billed, cost, resolved = 0, Decimal(0), resolve_epochs(epochs, approved)
        examples = approved
        if price is not None:
            workdir = Path(tempfile.mkdtemp(prefix="tunecord-plan-"))
            try:
                path = workdir / "train.jsonl"
                exported = await self._files.export(dataset, path)
                examples = exported.examples
                report = await asyncio.to_thread(check_file, path, price, epochs=epochs, workers=1)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            if report.error_counts:
                reasons.append(_reason_problems(report.errors, dict(report.error_counts)))
            billed, resolved = report.billed_tokens, report.epochs
            cost = report.cost.cost_usd if report.cost else Decimal(0)
        split = validation_split
        if split is None:
            held = math.floor(examples * DEFAULT_VALIDATION_SPLIT)
            split = DEFAULT_VALIDATION_SPLIT if examples - held >= MIN_TRAINING_EXAMPLES else 0.0
        held = math.floor(examples * split) if 0 <= split <= MAX_VALIDATION_SPLIT else 0
        if examples >= MIN_APPROVED and examples - held < MIN_TRAINING_EXAMPLES:
            reasons.append(
                f"A validation split of {split:g} leaves {examples - held} training examples; "
                f"at least {MIN_TRAINING_EXAMPLES} are needed (use a smaller split)."
            )
        left = await self.budget_left(guild_id)
        if left is not None and cost > left:
            reasons.append(
                f"The estimate (${cost:,.2f}) is over this month's remaining budget "
                f"(${max(left, Decimal(0)):,.2f}); an admin can raise it with `/config budget`."
            )
        if reasons:
            raise StartRefused(reasons)
        assert price is not None
        return StartPlan(
            dataset=dataset,
            price=price,
            model=model_name,
            epochs=epochs,
            epochs_resolved=resolved,
            suffix=suffix.strip() if suffix else None,
            validation_split=split,
            examples=examples,
            validation_examples=held,
            billed_tokens=billed,
            cost_usd=cost,
            budget_left_usd=left,
            backend=self._provider.label,
        )

    async def start(
        self, guild_id: int, plan: StartPlan, *, requested_by: int, channel_id: int | None
    ) -> StartResult:
        """Start the planned fine-tune (our record first; see the module docstring)."""
        try:
            job = await self._storage.jobs.create(
                guild_id,
                dataset_id=plan.dataset.id,
                provider=self._backend,
                model=plan.price.model,
                hyperparameters={"n_epochs": plan.epochs or "auto",
                                 "validation_split": plan.validation_split},
                estimated_cost_usd=plan.cost_usd,
                estimated_tokens=plan.billed_tokens * plan.epochs_resolved,
                requested_by=requested_by,
                channel_id=channel_id,
            )
        except UnfinishedJobExists as exc:
            raise UserError(
                f"`{plan.dataset.name}` already has a fine-tune under way (job #{exc.job_id}): "
                "`/finetune status` follows it."
            ) from None
        if job is None:
            raise UserError("That dataset no longer exists in this server.")
        self.starting.add(job.id)
        workdir = Path(tempfile.mkdtemp(prefix="tunecord-start-"))
        uploaded: list[str] = []
        try:
            prepared = await self._prepare(plan, workdir)
            flagged = prepared.flagged
            if prepared.validation_ids:  # recorded before any upload: no job lacks its split
                await self._storage.job_splits.record(guild_id, job.id, prepared.validation_ids)
            training = await self._provider.upload_file(prepared.training)
            uploaded.append(training.id)
            validation = None
            if prepared.validation is not None:
                validation = await self._provider.upload_file(prepared.validation)
                uploaded.append(validation.id)
            await self._storage.jobs.update(
                guild_id, job.id, provider_file_id=training.id,
                validation_file_id=validation.id if validation else None,
            )
            identity = {METADATA_JOB: str(job.id), "guild": str(guild_id)}
            spec = JobSpec(
                model=plan.model,
                training_file=training.id,
                validation_file=validation.id if validation else None,
                epochs=plan.epochs,
                suffix=plan.suffix,
                metadata={**identity, "dataset": str(plan.dataset.id)},
            )
            try:
                remote = await self._provider.start_job_once(spec, identity)
            except ProviderError as exc:
                if exc.outcome_unknown:
                    log.warning("start of job %s unconfirmed: %s", job.id, exc)
                    return StartResult(job=job, flagged=flagged, confirmed=False)
                raise
            uploaded.clear()  # the job uses them now
            saved = await self._adopt(guild_id, job, remote)
            return StartResult(job=saved, flagged=flagged, confirmed=True)
        except ProviderError as exc:
            await self._fail_start(guild_id, job.id, str(exc), uploaded)
            raise
        except UserError as exc:
            await self._fail_start(guild_id, job.id, str(exc), uploaded)
            raise
        except BaseException:
            await self._fail_start(
                guild_id, job.id, "The start stopped on an internal error.", uploaded
            )
            raise
        finally:
            self.starting.discard(job.id)
            shutil.rmtree(workdir, ignore_errors=True)

    async def _prepare(self, plan: StartPlan, workdir: Path) -> _Prepared:
        """Export, screen and split into the training and validation files."""
        dataset = plan.dataset
        export = workdir / "export.jsonl"
        async with self._storage.db.snapshot():  # the file and its examples' ids, one moment
            await self._files.export(dataset, export)
            ids = [
                record.id
                async for record in self._storage.examples.iterate(
                    dataset.guild_id, dataset.id, status=ExampleStatus.APPROVED
                )
            ]
        lines = [line for line in export.read_bytes().splitlines(keepends=True) if line.strip()]
        known: list[int] | None = ids
        if len(ids) != len(lines):  # the export is one line per approved example, in id order
            log.warning(
                "the export of dataset %s has %d lines for %d examples: its validation "
                "examples are not recorded", dataset.id, len(lines), len(ids),
            )
            known = None
        flagged: list[str] = []
        verdicts = await self._provider.moderate([_moderation_text(line) for line in lines])
        if verdicts is not None:
            bad = [i for i, v in enumerate(verdicts) if v.flagged]
            if bad:
                flagged = [
                    f"#{known[i]}" if known is not None else f"line {i + 1}" for i in bad
                ]
                lines = partition(lines, set(bad))[0]
                if known is not None:
                    known = partition(known, set(bad))[0]
        held = held_out_indices(lines, plan.validation_split)
        training, validation = partition(lines, held)
        if len(training) < MIN_TRAINING_EXAMPLES:
            raise UserError(
                f"Only {len(training)} examples are left to train on"
                + (f" after moderation left out {', '.join(flagged)}" if flagged else "")
                + f"; a fine-tune needs at least {MIN_TRAINING_EXAMPLES}."
            )
        train_path = workdir / "train.jsonl"
        train_path.write_bytes(b"".join(training))
        valid_path = None
        if validation:
            valid_path = workdir / "validation.jsonl"
            valid_path.write_bytes(b"".join(validation))
        validation_ids = [] if known is None else partition(known, held)[1]
        return _Prepared(flagged, train_path, valid_path, validation_ids)

    async def _fail_start(
        self, guild_id: int, job_id: int, reason: str, uploaded: list[str]
    ) -> None:
        await self._storage.jobs.update(guild_id, job_id, status=JobStatus.FAILED, error=reason)
        for file_id in uploaded:
            try:
                await self._provider.delete_file(file_id)
            except ProviderError:
                log.info("could not delete file %s after a failed start", file_id)

    async def _adopt(self, guild_id: int, job: FineTuneJob, remote: Job) -> FineTuneJob:
        """Store the backend's job on ours and reserve the estimate in the spend ledger."""
        saved = await self._storage.jobs.update(
            guild_id, job.id, provider_job_id=remote.id, provider_file_id=remote.training_file,
            validation_file_id=remote.validation_file,
        )
        if job.estimated_cost_usd:
            await self._storage.spend.record(
                guild_id, job.estimated_cost_usd, kind=SPEND_ESTIMATE, job_id=job.id
            )
        assert saved is not None
        return saved

    async def reconcile(self, job: FineTuneJob) -> FineTuneJob | None:
        """A pending job with no backend id (an interrupted start): adopt the backend's job
        named by our id, or mark ours failed once :attr:`reconcile_grace` has passed.
        ``None`` while it is being started or may still appear."""
        if job.id in self.starting:
            return None
        found = await self._provider.find_jobs({METADATA_JOB: str(job.id), "guild": str(job.guild_id)})
        if found:
            return await self._adopt(job.guild_id, job, found[0])
        if datetime.now(UTC) - job.created_at < self.reconcile_grace:
            return None  # not there yet; a late creation may still appear
        for file_id in (job.provider_file_id, job.validation_file_id):
            if file_id:  # uploaded for a job that never came: nothing will use them
                with contextlib.suppress(ProviderError):
                    await self._provider.delete_file(file_id)
        return await self._storage.jobs.update(
            job.guild_id, job.id, status=JobStatus.FAILED,
            error="The start was interrupted before the backend created the job.",
        )

    # -- the rest -----------------------------------------------------------------------
    async def find(self, guild_id: int, reference: str | None) -> FineTuneJob:
        """A job by our id (``12``, ``#12``) or the backend's; the latest without one."""
        if reference is None or not reference.strip():
            recent = await self._storage.jobs.recent(guild_id, 1)
            if not recent:
                raise UserError("This server has no fine-tune yet: `/finetune start` starts one.")
            return recent[0]
        text = reference.strip().lstrip("#")
        job = None
        if text.isdigit() and len(text) < 19:
            job = await self._storage.jobs.get(guild_id, int(text))
        if job is None:
            job = await self._storage.jobs.get_by_provider_id(guild_id, self._backend, text)
        if job is None:
            raise UserError(
                f"There is no fine-tune `{text[:60]}` in this server: `/finetune list` shows them."
            )
        return job

    async def jobs(self, guild_id: int, limit: int = 10) -> JobList:
        since = month_start()
        spent = await self._storage.spend.total(guild_id, since=since)
        estimates = await self._storage.spend.total(guild_id, since=since, kind=SPEND_ESTIMATE)
        released = await self._storage.spend.total(guild_id, since=since, kind=SPEND_RELEASE)
        return JobList(
            jobs=await self._storage.jobs.recent(guild_id, limit),
            spent_usd=spent,
            reserved_usd=estimates + released,
            budget_usd=(await self._storage.guilds.get(guild_id)).monthly_budget_usd,
        )

    async def cancel(self, guild_id: int, reference: str) -> FineTuneJob:
        """Ask the backend to stop the job (the follower posts when it has)."""
        job = await self.find(guild_id, reference)
        if job.status.is_finished:
            raise UserError(f"Job #{job.id} has already {job.status.value}.")
        if job.provider_job_id is None:
            if job.id in self.starting:
                raise UserError(f"Job #{job.id} is being started; cancel it in a moment.")
            reconciled = await self.reconcile(job)
            if reconciled is None:
                raise UserError(
                    f"Job #{job.id} was sent to {self._provider.label}, which has not confirmed "
                    "it yet; I keep looking for it for a few minutes. Cancel it once "
                    "`/finetune status` shows the backend's job id."
                )
            if reconciled.provider_job_id is None:
                raise UserError(f"Job #{job.id} never started at the backend: nothing to cancel.")
            job = reconciled
        assert job.provider_job_id is not None
        await self._provider.cancel_job(job.provider_job_id)
        return job

    async def activate(self, guild_id: int, job_id: int) -> ActiveModel:
        """Make the job's fine-tuned model the guild's chat model, with the system prompt its
        dataset trained with."""
        job = await self._storage.jobs.get(guild_id, job_id)
        model = None if job is None else job.fine_tuned_model
        if job is not None and model is None and job.provider_job_id:
            # Clicked between the success post and its record: the backend knows already.
            model = (await self._provider.get_job(job.provider_job_id)).fine_tuned_model
        if job is None or model is None:
            raise UserError("That fine-tune has no model to activate.")
        prompt = None
        if job.dataset_id is not None:
            dataset = await self._storage.datasets.get(guild_id, job.dataset_id)
            if dataset is not None:
                prompt = await training_system_prompt(self._storage, dataset)
        active = await self._storage.active_models.set(
            guild_id, model, system_prompt=prompt, job_id=job.id
        )
        if active is None:
            raise UserError("That fine-tune no longer exists in this server.")
        return active

    async def tunable_choices(self, typed: str) -> list[str]:
        """Model names for autocomplete (what the backend can fine-tune)."""
        needle = typed.lower()
        return [p.model for p in await self.fine_tunable() if needle in p.model.lower()][:25]
