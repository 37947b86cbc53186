"""Hostile use of the job side: huge files and cancels during validation, disk use of jobs and
deleted models, the data folder's privacy and lock, crashes mid-write, files with nothing to
train on. The real server and the ``openai`` SDK, or the job manager itself, on real files."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import openai
import pytest

from tests.trainer.test_server import (
    API_KEY,
    BASE,
    PacedEngine,
    all_events,
    async_client,
    jsonl,
    make_config,
    running_server,
    tiny_engine,
    wait_for,
    wait_status,
)
from trainer.datadir import LOCK_FILE, DataDirBusy, DataDirLock, atomic_writer
from trainer.datafile import PROBE_LINES, check_upload
from trainer.engine import Example
from trainer.jobs import TRAINING_COPY, JobManager
from trainer.store import FileRecord, JobRecord, Store

ROOT = Path(__file__).resolve().parents[2]


class CountingEngine(PacedEngine):
    """The real engine; counts ``count_tokens`` calls by the first word of each example's last
    user message ("big", "small"...) and waits ``pause`` seconds in each, so a file of a few
    thousand lines takes a while to validate."""

    def __init__(self, pause: float) -> None:
        super().__init__(tiny_engine(), step_pause=0.0)
        self.pause = pause
        self.counted: collections.Counter[str] = collections.Counter()

    def count_tokens(self, base_model: str, example: Example) -> int:
        user = [m for m in example["messages"] if m["role"] == "user"][-1]
        self.counted[str(user["content"]).split()[0]] += 1
        time.sleep(self.pause)
        return self.engine.count_tokens(base_model, example)


def tagged(tag: str, n: int) -> bytes:
    lines = ({"messages": [{"role": "user", "content": f"{tag} {i}"}, {"role": "assistant", "content": f"pong {i}"}]}
             for i in range(n))  # fmt: skip
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


async def _status(client: openai.AsyncOpenAI, job_id: str) -> str:
    return (await client.fine_tuning.jobs.retrieve(job_id)).status


def _modes(root: Path) -> dict[str, int]:
    """Permission bits of everything under ``root`` (and ``root``), by relative path."""
    found = {".": root.stat().st_mode & 0o777}
    for path in root.rglob("*"):
        if not path.is_symlink():
            found[str(path.relative_to(root))] = path.stat().st_mode & 0o777
    return found


# ----------------------------------------------------------------------------- validation


async def test_cancel_stops_a_long_validation_at_once_and_others_are_not_held_back(tmp_path: Path) -> None:
    engine = CountingEngine(pause=0.01)
    config = make_config(tmp_path)
    with running_server(config, engine) as url:
        client = async_client(url)
        big_file = await client.files.create(file=("big.jsonl", tagged("big", 4000)), purpose="fine-tune")
        big = await client.fine_tuning.jobs.create(model=BASE, training_file=big_file.id)
        await wait_for(lambda: asyncio.sleep(0, engine.counted["big"] > 0))

        small_file = await client.files.create(file=("small.jsonl", tagged("small", 10)), purpose="fine-tune")
        small = await client.fine_tuning.jobs.create(model=BASE, training_file=small_file.id,
                                                     hyperparameters={"n_epochs": 1})  # fmt: skip
        await wait_for(lambda: asyncio.sleep(0, engine.counted["small"] == 10), timeout=30)
        assert await _status(client, big.id) == "validating_files"  # the small one went past it
        assert engine.counted["big"] < 4000

        cancelled = await client.fine_tuning.jobs.cancel(big.id)
        assert cancelled.status == "cancelled"
        at_cancel = engine.counted["big"]
        await asyncio.sleep(1.0)  # an unstopped validation would count ~100 more lines meanwhile
        assert engine.counted["big"] <= at_cancel + 1  # at most the line in hand
        assert not (config.jobs_dir / big.id / TRAINING_COPY).exists()  # nothing kept for it
        messages = [e.message for e in await all_events(client, big.id)]
        assert messages[-1] == "Fine-tuning job cancelled" and not any("validated" in m for m in messages)
        done = await wait_status(client, small.id, {"succeeded", "failed"})
        assert done.status == "succeeded", done.error


_VALIDATION_MEMORY_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from tests.trainer.test_server import tiny_engine
    from trainer.job_params import parse_job_params
    from trainer.jobs import JobManager
    from trainer.store import FileRecord, Store

    def kb(key):
        return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key))

    data = Path(sys.argv[1])
    store = Store(data / "trainer.sqlite3")
    engine = tiny_engine()
    manager = JobManager(store, engine, files_dir=data / "files", jobs_dir=data / "jobs", org="o")
    manager.start()
    upload = data / "files" / "file-big"
    tool = {"type": "function", "function": {"name": "lookup", "description": "d" * 40000,
                                             "parameters": {"type": "object", "properties": {}}}}
    with open(upload, "w") as out:
        for i in range(1000):
            line = {"messages": [{"role": "user", "content": f"ping {i}"}, {"role": "assistant", "content": "pong"}],
                    "tools": [tool]}
            out.write(json.dumps(line) + "\\n")
        out.write("not json\\n")  # the job fails at the very end: only validation runs
    store.add_file(FileRecord("file-big", "big.jsonl", "fine-tune", upload.stat().st_size, 1, upload))
    engine.count_tokens(engine.base_models()[0], {"messages": [{"role": "user", "content": "warm"},
                                                              {"role": "assistant", "content": "up"}]})
    before = kb("VmRSS")
    job = manager.create(parse_job_params({"model": engine.base_models()[0], "training_file": "file-big",
                                           "hyperparameters": {"n_epochs": 1}}))
    while store.get_job(job.id).status == "validating_files":
        time.sleep(0.05)
    done = store.get_job(job.id)
    manager.stop()
    print(done.status, done.error["code"], upload.stat().st_size // 1024, before, kb("VmHWM"))
""")


def test_validation_holds_one_line_not_the_file(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", _VALIDATION_MEMORY_SCRIPT, str(tmp_path / "data")],
                         capture_output=True, text=True, timeout=300, cwd=ROOT, check=True)  # fmt: skip
    status, code, file_kb, before, peak = out.stdout.split()
    assert (status, code) == ("failed", "invalid_training_file")  # after reading every line
    assert int(file_kb) > 38_000
    # holding the examples would cost more than the file's 39 MB; one line is 40 KB
    assert int(peak) - int(before) < int(file_kb) // 2, f"peak grew by {(int(peak) - int(before)) // 1024} MB"


# ----------------------------------------------------------------------------- disk


def _inode(path: Path) -> int:
    return path.stat().st_ino


async def test_jobs_share_the_upload_and_finished_jobs_keep_only_their_model(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with running_server(config, PacedEngine(tiny_engine(), step_pause=0.2)) as url:
        client = async_client(url)
        upload = await client.files.create(file=("t.jsonl", jsonl(10)), purpose="fine-tune")
        stored = config.files_dir / upload.id
        hp = {"n_epochs": 2, "batch_size": 5}
        jobs = [await client.fine_tuning.jobs.create(model=BASE, training_file=upload.id, hyperparameters=hp)
                for _ in range(3)]  # fmt: skip
        links = [config.jobs_dir / j.id / TRAINING_COPY for j in jobs]
        assert {_inode(p) for p in links} == {_inode(stored)}  # one copy on disk, four names
        assert stored.stat().st_nlink == 4

        async def running() -> bool:
            return await _status(client, jobs[0].id) == "running"

        await wait_for(running, timeout=60)
        await client.fine_tuning.jobs.cancel(jobs[2].id)  # waiting behind the first
        await client.files.delete(upload.id)  # the jobs keep their data
        assert not stored.exists() and links[0].read_bytes() == jsonl(10)
        done = [await wait_status(client, j.id, {"succeeded", "failed"}) for j in jobs[:2]]
        assert [d.status for d in done] == ["succeeded", "succeeded"], [d.error for d in done]

        assert list((config.jobs_dir / jobs[2].id).iterdir()) == []  # the cancelled job keeps nothing
        for job in jobs[:2]:
            kept = {str(p.relative_to(config.jobs_dir / job.id)) for p in (config.jobs_dir / job.id).rglob("*")}
            assert {"output/adapter", "output/checkpoints/epoch-001", "output/checkpoints/epoch-002"} <= kept
            assert not {Path(p).name for p in kept} & {TRAINING_COPY, "validation.jsonl", "trainer_state.pt"}
            assert not [p for p in kept if ".partial-" in p]  # no training data, no resume state, no temporary
            output = config.jobs_dir / job.id / "output"
            weights = "adapter_model.safetensors"
            assert _inode(output / "adapter" / weights) == _inode(output / "checkpoints" / "epoch-002" / weights)
        chat = await client.chat.completions.create(model=done[0].fine_tuned_model, max_tokens=3,
                                                    messages=[{"role": "user", "content": "ping 1"}])  # fmt: skip
        assert chat.choices[0].message.content is not None


async def test_failed_jobs_keep_no_copy(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with running_server(config, tiny_engine()) as url:
        client = async_client(url)
        upload = await client.files.create(file=("t.jsonl", jsonl(7)), purpose="fine-tune")  # too few examples
        job = await client.fine_tuning.jobs.create(model=BASE, training_file=upload.id)
        failed = await wait_status(client, job.id, {"failed", "succeeded"})
        assert failed.status == "failed" and failed.error.code == "invalid_n_examples"
        assert list((config.jobs_dir / job.id).iterdir()) == []
        assert (config.files_dir / upload.id).stat().st_nlink == 1


async def test_a_deleted_model_is_gone_with_its_checkpoints(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with running_server(config, tiny_engine()) as url:
        client = async_client(url)
        upload = await client.files.create(file=("t.jsonl", jsonl(10)), purpose="fine-tune")
        job = await client.fine_tuning.jobs.create(model=BASE, training_file=upload.id,
                                                   hyperparameters={"n_epochs": 2, "batch_size": 10})  # fmt: skip
        done = await wait_status(client, job.id, {"succeeded", "failed"})
        assert done.status == "succeeded", done.error
        checkpoints = [c.fine_tuned_model_checkpoint async for c in client.fine_tuning.jobs.checkpoints.list(job.id)]
        assert len(checkpoints) == 2
        prompt = [{"role": "user", "content": "ping 1"}]
        await client.chat.completions.create(model=checkpoints[0], messages=prompt, max_tokens=2)

        await client.models.delete(done.fine_tuned_model)
        for name in [done.fine_tuned_model, *checkpoints]:
            with pytest.raises(openai.NotFoundError):
                await client.chat.completions.create(model=name, messages=prompt, max_tokens=2)
        assert [c async for c in client.fine_tuning.jobs.checkpoints.list(job.id)] == []
        assert not (config.jobs_dir / job.id / "output").exists()
        assert [m.id async for m in client.models.list()] == [BASE]


# ----------------------------------------------------------------------------- privacy and lock


async def test_the_data_folder_is_private(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config.data_dir.mkdir(mode=0o755)
    (config.data_dir / "jobs").mkdir(mode=0o755)
    stale = config.data_dir / "notes.txt"
    stale.write_text("written by an older version")
    stale.chmod(0o644)
    with running_server(config, tiny_engine()) as url:
        client = async_client(url)
        upload = await client.files.create(file=("t.jsonl", jsonl(10)), purpose="fine-tune")
        job = await client.fine_tuning.jobs.create(model=BASE, training_file=upload.id,
                                                   hyperparameters={"n_epochs": 1, "batch_size": 10})  # fmt: skip
        done = await wait_status(client, job.id, {"succeeded", "failed"})
        assert done.status == "succeeded", done.error
        modes = _modes(config.data_dir)
        assert {m for p, m in modes.items() if (config.data_dir / p).is_dir()} == {0o700}
        assert {m for p, m in modes.items() if (config.data_dir / p).is_file()} == {0o600}, modes


async def test_a_second_trainer_on_the_same_folder_refuses_and_the_first_is_untouched(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with running_server(config, PacedEngine(tiny_engine(), step_pause=0.1)) as url:
        client = async_client(url)
        upload = await client.files.create(file=("t.jsonl", jsonl(10)), purpose="fine-tune")
        job = await client.fine_tuning.jobs.create(model=BASE, training_file=upload.id,
                                                   hyperparameters={"n_epochs": 3, "batch_size": 2})  # fmt: skip
        second = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "trainer", "--data-dir", str(config.data_dir), "--port", "0"],
            capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, "TRAINER_API_KEY": API_KEY},
        )  # fmt: skip
        assert second.returncode != 0
        expected = f"The trainer data folder {config.data_dir.resolve()} is in use by another trainer (process {os.getpid()})"
        assert expected in second.stderr and "Traceback" not in second.stderr
        done = await wait_status(client, job.id, {"succeeded", "failed"})
        assert done.status == "succeeded", done.error
        steps = [e.data["step"] for e in await all_events(client, job.id) if e.type == "metrics"]
        assert steps == list(range(1, 16))  # trained once, by the first trainer only


def test_a_second_job_manager_on_the_folder_refuses_before_touching_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first_store, second_store = Store(data / "trainer.sqlite3"), Store(data / "trainer.sqlite3")
    first, second = _manager(data, first_store), _manager(data, second_store)
    try:
        first.start()
        (data / "files" / "file-orphan").write_bytes(b"would be cleaned by a start")
        with pytest.raises(DataDirBusy, match="is in use by another trainer"):
            second.start()
        assert (data / "files" / "file-orphan").exists() and not second.lock.held
        first.stop()
        second.start()  # free again once the first has stopped
        assert not (data / "files" / "file-orphan").exists()
        second.stop()
    finally:
        first_store.close()
        second_store.close()


_HOLD_LOCK_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from trainer.datadir import DataDirLock
    DataDirLock(Path(sys.argv[1])).acquire()
    print("locked", flush=True)
    time.sleep(120)
""")


def test_the_lock_names_its_holder_and_dies_with_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK_SCRIPT, str(data)], stdout=subprocess.PIPE,
                              text=True, cwd=ROOT)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(DataDirBusy, match=f"in use by another trainer \\(process {holder.pid}\\)"):
            DataDirLock(data).acquire()
    finally:
        holder.kill()  # SIGKILL: the kernel releases the lock
        holder.wait(30)
    with DataDirLock(data) as lock:
        assert lock.held
        with pytest.raises(DataDirBusy):  # a second holder in the same process is refused too
            DataDirLock(data).acquire()
    assert (data / LOCK_FILE).stat().st_mode & 0o777 == 0o600
    with DataDirLock(data):  # released on exit
        pass


# ----------------------------------------------------------------------------- crashes mid-write


_SLOW_WRITE_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from trainer.datadir import atomic_writer
    with atomic_writer(Path(sys.argv[1])) as out:
        out.write(b"half of a file")
        out.flush()
        print("writing", flush=True)
        time.sleep(120)
""")


def _manager(data: Path, store: Store) -> JobManager:
    return JobManager(store, tiny_engine(), files_dir=data / "files", jobs_dir=data / "jobs", org="o")


def test_a_write_killed_midway_leaves_only_a_temporary_that_the_next_start_removes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    files = data / "files"
    files.mkdir(parents=True)
    target = files / "file-killed"
    writer = subprocess.Popen([sys.executable, "-c", _SLOW_WRITE_SCRIPT, str(target)], stdout=subprocess.PIPE,
                              text=True, cwd=ROOT)  # fmt: skip
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(30)
    assert not target.exists()  # never a half file under the real name
    partials = [p for p in files.iterdir() if ".partial-" in p.name]
    assert len(partials) == 1 and partials[0].read_bytes() == b"half of a file"

    store = Store(data / "trainer.sqlite3")
    try:
        kept = files / "file-kept"
        kept.write_bytes(jsonl(10))
        store.add_file(FileRecord("file-kept", "t.jsonl", "fine-tune", kept.stat().st_size, 1, kept))
        (files / "file-orphan").write_bytes(b"an upload killed before it was recorded")
        orphan_job = data / "jobs" / "ftjob-orphan"
        orphan_job.mkdir(parents=True)
        (orphan_job / TRAINING_COPY).write_bytes(jsonl(10))
        old_style = data / "jobs" / "ftjob-orphan2" / "output" / "checkpoints" / "epoch-001.tmp"
        old_style.mkdir(parents=True)
        manager = _manager(data, store)
        manager.start()
        manager.stop()
        assert sorted(p.name for p in files.iterdir()) == ["file-kept"]
        assert list((data / "jobs").iterdir()) == []
    finally:
        store.close()


def test_atomic_writer_leaves_the_old_file_on_error(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_writer(target) as out:
        out.write(b"new but broken")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f"]


# ----------------------------------------------------------------------------- files with nothing to train on


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "The file is empty"),
        (b"\n\n  \n", "only blank lines"),
        (bytes(range(256)) * 64, "no line of the file is a valid training example"),
        (b"\xff\xfe" + b"h\x00i\x00" * 1000, "no line of the file is a valid training example"),
        (b"x" * (3 << 20), "longer than 1,048,576 bytes"),
        (b"not json\n" * (PROBE_LINES + 5), f"none of its first {PROBE_LINES:,} lines is a valid training example"),
    ],
)
def test_a_file_with_nothing_to_train_on_is_an_error(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(content)
    details = check_upload(path)
    assert details is not None and reason in details


def test_a_file_with_one_usable_line_is_processed(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"garbage\n" * 5 + jsonl(1))
    assert check_upload(path) is None


async def test_empty_and_binary_uploads_are_errors_a_job_refuses(tmp_path: Path) -> None:
    with running_server(make_config(tmp_path), tiny_engine()) as url:
        client = async_client(url)
        for content in (b"", os.urandom(4096)):
            upload = await client.files.create(file=("t.jsonl", content), purpose="fine-tune")
            assert upload.status == "error" and upload.status_details
            assert (await client.files.retrieve(upload.id)).status == "error"
            with pytest.raises(openai.BadRequestError) as err:
                await client.fine_tuning.jobs.create(model=BASE, training_file=upload.id)
            assert err.value.code == "invalid_file_status" and err.value.param == "training_file"
            assert upload.status_details in err.value.message
        good = await client.files.create(file=("t.jsonl", jsonl(10)), purpose="fine-tune")
        assert good.status == "processed"


# ----------------------------------------------------------------------------- the store


def test_a_thousand_metadata_filters_are_one_flat_query(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.sqlite3")
    try:
        job = JobRecord(
            id="ftjob-a", created_at=1, model=BASE, training_file="file-x", validation_file=None, suffix=None,
            seed=1, metadata={"guild": "1", "k": "v"}, hyperparameters={}, status="queued", error=None,
            model_name="ft:x", fine_tuned_model=None, finished_at=None, trained_tokens=None, result_files=[],
            estimated_finish=None, output_dir=tmp_path / "ftjob-a",
        )  # fmt: skip
        store.add_job(job, [])

        def listed(metadata: dict[str, str]) -> list[str]:
            return [j.id for j in store.list_jobs(after=None, limit=10, metadata=metadata).items]

        assert listed({"guild": "1"}) == listed({"guild": "1", "k": "v"}) == ["ftjob-a"]
        assert listed({"guild": "2"}) == listed({"guild": "1", "k": "w"}) == []
        many = {f"k{i}": "v" for i in range(1200)}
        assert listed(many) == []
        assert listed({"guild": "1", **{"k": "v"}}) == ["ftjob-a"]
    finally:
        store.close()
