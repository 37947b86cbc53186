"""Benchmark: a 100-example dataset from ``/finetune start`` to the tuned model's first answer.

    python -m bench.bench_finetune_to_answer [--examples 100] [--epochs auto] [--poll 1]

A measurement to record (no baseline): the bundled trainer on this machine, started the
way ``python -m bot`` starts it (:class:`bot.backend.trainer_child.TrainerChild`: ``python
-m trainer`` on loopback, a fresh data folder), the real bot in process
(:func:`tests.bot.inprocess.running_tunecord`, ``backend="trainer"`` pointed at the child,
a real SQLite file) on the Discord stand-in. The dataset is the first ``--examples`` lines
of ``data/marv/train.jsonl``, stored as approved examples (policy ``as_written``: every
line carries Marv's system prompt, so chat sends it too).

Before the clock starts, the trainer answers one base-model chat request: its first load
converts the bundled GGUF into a checkpoint once (timed and printed separately: a new
install pays it once). Then, through Discord as an admin and a member would:

1. ``/finetune start`` -> the plan with **Confirm** (checks and estimate);
2. **Confirm** -> "started" (export, upload of the training and validation files, job
   created at the trainer);
3. the job's states at the trainer, polled every 0.2 s by the benchmark through the API:
   validating the files, queued, training, succeeded;
4. the bot's success post in the training channel (it follows jobs every ``--poll``
   seconds; the default in production is 30);
5. **Activate** -> the confirmation;
6. a member's message in a chat channel -> the bot's first answer message (the tuned
   model's first text, streamed) and the complete answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

from bench.bench_stats_million import cpu_model
from bot.backend.trainer_child import TrainerChild
from bot.dataset.examples import ChatExample
from storage.records import ExampleStatus
from tests.bot.inprocess import running_tunecord
from tests.standins.discord import DiscordStandIn, P

ROOT = Path(__file__).resolve().parents[1]
MARV = ROOT / "data" / "marv" / "train.jsonl"
MODEL = "smollm2-135m-instruct"
QUESTION = "What's the capital of Italy?"


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


async def followup(handle: Any, timeout: float = 120.0) -> Any:
    return await handle.next_followup(timeout=timeout) if handle.deferred else handle.message


class Clock:
    def __init__(self) -> None:
        self.marks: list[tuple[str, float]] = []

    def mark(self, name: str) -> None:
        self.marks.append((name, time.monotonic()))
        print(f"{time.strftime('%H:%M:%S')} {name}", flush=True)


async def follow_job(client: AsyncOpenAI, job_id: str, clock: Clock) -> dict[str, Any]:
    """Mark each new status of the job at the trainer; its final object."""
    seen: set[str] = set()
    while True:
        job = await client.fine_tuning.jobs.retrieve(job_id)
        if job.status not in seen:
            seen.add(job.status)
            clock.mark(f"trainer: {job.status}")
        if job.status in ("succeeded", "failed", "cancelled"):
            return job.model_dump()
        await asyncio.sleep(0.2)


async def run(examples: int, epochs: str, poll: float) -> None:
    lines = MARV.read_text(encoding="utf-8").splitlines()[:examples]
    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        folder = Path(tmp)
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        child = TrainerChild(data_dir=folder / "trainer", environ=env, start_timeout=300)
        started = time.monotonic()
        await child.start()
        trainer_start = time.monotonic() - started
        client = AsyncOpenAI(base_url=child.url, api_key=child.api_key, timeout=600)
        try:
            started = time.monotonic()
            await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=8
            )
            first_load = time.monotonic() - started
            print(
                f"trainer up in {trainer_start:.1f} s; first base-model answer {first_load:.1f} s"
            )
            async with DiscordStandIn() as server:
                guild = server.create_guild("HQ", channels=("general", "training", "chat"))
                admin = guild.add_member(
                    "admin", roles=[guild.create_role("admins", permissions=P.MANAGE_GUILD)]
                )
                member = guild.add_member("member")
                async with running_tunecord(
                    server, folder, backend="trainer", trainer_url=child.url,
                    trainer_api_key=child.api_key, job_poll_seconds=poll,
                    provider_timeout=600.0,
                ) as bot:  # fmt: skip
                    dataset = await bot.services.datasets.create(
                        guild.id, "marv", policy="as_written", base_model=MODEL
                    )
                    for line in lines:
                        await bot.storage.examples.add(
                            guild.id, dataset.id, ChatExample.from_json(line),
                            contributor_id=member.user.id, status=ExampleStatus.APPROVED,
                        )  # fmt: skip
                    await bot.services.guild_config.set_training_channel(
                        guild.id, guild.channel("training").id
                    )
                    await followup(
                        await guild.owner.slash("chat enable", channel=guild.channel("chat"))
                    )
                    options: dict[str, Any] = {"dataset": "marv", "suffix": "marv"}
                    if epochs != "auto":
                        options["epochs"] = int(epochs)

                    clock.mark("/finetune start")
                    started_plan = await admin.slash("finetune start", **options)
                    plan = await started_plan.next_followup(timeout=120)
                    clock.mark("plan shown (Confirm)")
                    assert plan.embeds, plan.content
                    confirmed = await (await admin.click(plan, "Confirm")).next_followup(
                        timeout=300
                    )
                    clock.mark("started (uploaded, job created)")
                    assert "started" in confirmed.content, confirmed.content
                    [job] = await bot.storage.jobs.recent(guild.id)
                    final = await follow_job(client, job.provider_job_id, clock)
                    assert final["status"] == "succeeded", json.dumps(final)[:2000]
                    success = await server.wait_for_message(
                        guild.channel("training"),
                        check=lambda m: bool(m.embeds) and "succeeded" in m.content,
                        timeout=max(60.0, poll * 4),
                    )
                    clock.mark("success posted in Discord")
                    # the bot records the tuned model just after the post (Activate before
                    # that answers "no model to activate"): wait for it, as a person would
                    async with asyncio.timeout(60):
                        while not (await bot.storage.jobs.get(guild.id, job.id)).fine_tuned_model:
                            await asyncio.sleep(0.01)
                    clock.mark("tuned model recorded by the bot")
                    activated = await followup(await admin.click(success, "Activate"))
                    clock.mark("activated")
                    assert "now answers" in activated.content, activated.content
                    asked = await member.send(guild.channel("chat"), QUESTION)
                    clock.mark("member asks")
                    first = await server.wait_for_message(
                        guild.channel("chat"),
                        check=lambda m: (
                            m.author.id == server.bot_user.id and m.reference_id == asked.id
                        ),
                        timeout=300,
                    )
                    clock.mark("first answer message")
                    async with asyncio.timeout(300):
                        while bot.in_flight.count:
                            await asyncio.sleep(0.05)
                    clock.mark("answer complete")
                    answer = next(m for m in server.messages_in(guild.channel("chat"))
                                  if m.id == first.id).content  # fmt: skip
            report(clock, final, examples, epochs, poll, trainer_start, first_load, answer)
        finally:
            await client.close()
            await child.stop()


def report(clock: Clock, job: dict[str, Any], examples: int, epochs: str, poll: float,
           trainer_start: float, first_load: float, answer: str) -> None:  # fmt: skip
    marks = dict(clock.marks)
    t0 = marks["/finetune start"]
    print(f"\nCPU: {cpu_model()}, {os.cpu_count()} CPUs, load average {load()}")
    hp = job.get("hyperparameters") or {}
    print(f"{examples} examples, epochs {epochs} (job: {hp.get('n_epochs')}), "
          f"trained tokens {job.get('trained_tokens')}, bot polls every {poll:g} s")  # fmt: skip
    print(f"before the clock: trainer up {trainer_start:.1f} s, first base-model answer "
          f"{first_load:.1f} s")  # fmt: skip
    print("| phase | from | to | seconds | since /finetune start |")
    print("|---|---|---|---|---|")
    for (a, ta), (b, tb) in zip(clock.marks, clock.marks[1:], strict=False):
        print(f"| | {a} | {b} | {tb - ta:.2f} | {tb - t0:.2f} |")
    print(f"\nfirst answer of the tuned model: {answer!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--epochs", default="auto", help="'auto' (the trainer's) or a number")
    parser.add_argument("--poll", type=float, default=1.0, help="TUNECORD_JOB_POLL_SECONDS")
    args = parser.parse_args()
    print(f"load average before: {load()}")
    asyncio.run(run(args.examples, args.epochs, args.poll))


if __name__ == "__main__":
    main()
