"""The chat service's rules without Discord: context, trimming, system prompt, limits."""

from __future__ import annotations

from bot.dataset.examples import ChatExample
from bot.dataset.pricing import PriceCatalogue
from bot.providers.errors import ContextTooLong, ModelNotFound, RateLimited, Unavailable
from bot.services.chat import (
    BASE_NOTE_PREFIX,
    ChatLimits,
    ChatService,
    ContextMessage,
    ConversationTooLong,
    Refusal,
    Ticket,
    build_conversation,
    error_message,
    token_counter,
    training_system_prompt,
    turns_of,
)
from storage.store import Storage

BOT = 1


def said(text: str, author: int = 7) -> ContextMessage:
    return ContextMessage(author, text, from_bot=author == BOT)


def chars(messages) -> int:
    """A counter for the tests: one token per character of content."""
    return sum(len(m["content"]) for m in messages)


def test_turns_alternate_join_and_drop_the_note():
    history = [
        said("an answer nobody asked for", BOT),
        said("hi"),
        said("there", 8),
        said(f"hello!\n\n{BASE_NOTE_PREFIX} `m`: no fine-tuned model is active.", BOT),
        said("  "),
        said("thanks"),
    ]
    assert turns_of(history) == [
        {"role": "user", "content": "hi\nthere"},
        {"role": "assistant", "content": "hello!"},
        {"role": "user", "content": "thanks"},
    ]


def test_the_oldest_messages_are_dropped_to_fit_the_budget():
    history = [said("a" * 10), said("b" * 10, BOT), said("c" * 10), said("d" * 10, BOT), said("q")]
    messages, dropped = build_conversation(history, "sys", budget=25, count=chars)
    assert messages == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "c" * 10},
        {"role": "assistant", "content": "d" * 10},
        {"role": "user", "content": "q"},
    ]
    assert dropped == 2
    messages, dropped = build_conversation(history, None, budget=100, count=chars)
    assert len(messages) == 5 and dropped == 0


def test_a_message_that_alone_is_too_long_is_refused():
    try:
        build_conversation([said("x" * 50)], None, budget=10, count=chars)
    except ConversationTooLong as exc:
        assert "too long" in str(exc)
    else:
        raise AssertionError("not refused")


def test_counting_uses_the_models_tokenizer():
    catalogue = PriceCatalogue.load()
    count = token_counter("gpt-4o-mini", catalogue)
    one = [{"role": "user", "content": "hello world"}]
    # cookbook counting with o200k_base: 3 per message + role + content + 3 priming
    assert count(one) == 3 + 1 + 2 + 3
    assert token_counter("ft:gpt-4o-mini-2024-07-18:org:x:1", catalogue)(one) == count(one)


def test_cooldown_and_channel_cap():
    now = [100.0]
    limits = ChatLimits(cooldown=3, per_channel=2, clock=lambda: now[0])
    first = limits.acquire(1, 10, 500)
    assert isinstance(first, Ticket)
    again = limits.acquire(1, 10, 500)
    assert isinstance(again, Refusal) and again.notice and "3 seconds" in again.notice
    assert limits.acquire(1, 10, 500) == Refusal(None)  # told once per window
    second = limits.acquire(1, 11, 500)
    assert isinstance(second, Ticket)
    busy = limits.acquire(1, 12, 500)
    assert isinstance(busy, Refusal) and busy.notice and "already answering" in busy.notice
    assert isinstance(limits.acquire(1, 13, 501), Ticket)  # another channel
    first.release()
    first.release()  # idempotent
    now[0] += 10
    assert isinstance(limits.acquire(1, 12, 500), Ticket)
    assert isinstance(limits.acquire(1, 10, 500), Refusal)  # second and 12's are running


def test_errors_become_short_lines():
    assert "busy" in error_message(RateLimited("429"))
    assert "not answering" in error_message(Unavailable("500"))
    assert "not available any more" in error_message(ModelNotFound("gone"))
    assert "too long" in error_message(ContextTooLong("ctx"))
    assert "went wrong" in error_message(RuntimeError("secret sk-123"))
    assert "sk-123" not in error_message(RuntimeError("secret sk-123"))


async def test_system_prompt_follows_the_policy(tmp_path):
    async with await Storage.open(tmp_path / "db.sqlite3") as storage:
        include = await storage.datasets.create(1, "inc", system_prompt="P", policy="include")
        omit = await storage.datasets.create(1, "omit", system_prompt="P", policy="omit")
        written = await storage.datasets.create(1, "aw", system_prompt="P", policy="as_written")
        assert await training_system_prompt(storage, include) == "P"
        assert await training_system_prompt(storage, omit) is None
        assert await training_system_prompt(storage, written) is None  # no examples carry one

        def example(system: str | None, i: int) -> ChatExample:
            head = [{"role": "system", "content": system}] if system else []
            return ChatExample.from_obj(
                {"messages": [*head, {"role": "user", "content": f"q{i}"},
                              {"role": "assistant", "content": "a"}]}
            )  # fmt: skip

        await storage.examples.add(1, written.id, example("Trained", 1), status="approved")
        await storage.examples.add(1, written.id, example("Trained", 2), status="approved")
        assert await training_system_prompt(storage, written) == "Trained"
        await storage.examples.add(1, written.id, example(None, 3), status="approved")
        assert await training_system_prompt(storage, written) is None  # not one prompt


async def test_model_choice_active_else_default_dataset_base(tmp_path):
    async with await Storage.open(tmp_path / "db.sqlite3") as storage:
        service = ChatService(storage, PriceCatalogue.load(), "smollm2-135m-instruct")
        choice = await service.model_for(1)
        assert choice.model == "smollm2-135m-instruct" and choice.note
        await storage.datasets.create(
            1, "d", system_prompt="P", policy="include", base_model="gpt-4o-mini-2024-07-18"
        )
        choice = await service.model_for(1)
        assert (choice.model, choice.system_prompt) == ("gpt-4o-mini-2024-07-18", "P")
        assert choice.note is not None and "gpt-4o-mini-2024-07-18" in choice.note
        await storage.active_models.set(1, "ft:tuned", system_prompt="Q")
        choice = await service.model_for(1)
        assert (choice.model, choice.system_prompt, choice.note) == ("ft:tuned", "Q", None)


async def test_enabled_channels_and_threads(tmp_path):
    async with await Storage.open(tmp_path / "db.sqlite3") as storage:
        service = ChatService(storage, PriceCatalogue.load(), "m")
        assert not await service.is_chat_channel(1, 50)
        assert await service.enable(1, 50, by=9)
        assert not await service.enable(1, 50)
        assert await service.is_chat_channel(1, 50)
        assert await service.is_chat_channel(1, 77, parent_id=50)
        assert not await service.is_chat_channel(2, 50)
        fresh = ChatService(storage, PriceCatalogue.load(), "m")  # reads what was stored
        assert await fresh.is_chat_channel(1, 50)
        assert await service.disable(1, 50)
        assert not await service.is_chat_channel(1, 77, parent_id=50)


async def test_model_choice_is_kept_until_anything_is_written(tmp_path):
    async with await Storage.open(tmp_path / "db.sqlite3") as storage:
        service = ChatService(storage, PriceCatalogue.load(), "m")
        dataset = await storage.datasets.create(
            1, "d", system_prompt="P", policy="include", base_model="gpt-4o-mini-2024-07-18"
        )
        first = await service.model_for(1)
        assert await service.model_for(1) is first  # nothing written: no query
        await storage.datasets.update(1, dataset.id, system_prompt="P2")
        edited = await service.model_for(1)
        assert edited is not first and edited.system_prompt == "P2"
        await storage.datasets.create(2, "other guild", system_prompt="X")  # any write
        assert await service.model_for(1) is not edited
        assert (await service.model_for(1)).system_prompt == "P2"


async def test_messages_that_asked_before_chat_on_are_judged_on_the_state_before_it(tmp_path):
    """The first look at a guild's chat channels reads the database. When every reader
    connection is busy that read waits, while ``/chat on``'s write (on the writer) could
    commit first: a message that asked before the command must still not see the change."""
    import asyncio
    from contextlib import AsyncExitStack

    async with await Storage.open(tmp_path / "db.sqlite3") as storage:
        busy, done = asyncio.Event(), asyncio.Event()

        async def occupy_readers() -> None:
            async with AsyncExitStack() as stack:
                for _ in range(len(storage.db._readers)):
                    await stack.enter_async_context(storage.db.reading())
                busy.set()
                await done.wait()

        for guild, turn_on in ((1, True), (1, False)):
            service = ChatService(storage, PriceCatalogue.load(), "m")
            busy.clear()
            done.clear()
            holder = asyncio.create_task(occupy_readers())
            await busy.wait()
            earlier = [asyncio.create_task(service.is_chat_channel(guild, 50)) for _ in range(2)]
            change = asyncio.create_task(
                service.enable(guild, 50, by=9) if turn_on else service.disable(guild, 50)
            )
            await asyncio.sleep(0.2)  # the write is free to go ahead meanwhile
            done.set()
            await holder
            assert await asyncio.gather(*earlier) == [not turn_on, not turn_on]
            assert await change
            assert await service.is_chat_channel(guild, 50) is turn_on


async def test_a_message_cancelled_while_the_channels_are_read_leaves_the_read_to_others(tmp_path):
    import asyncio

    async with await Storage.open(tmp_path / "db.sqlite3") as storage:
        await ChatService(storage, PriceCatalogue.load(), "m").enable(1, 50)
        service = ChatService(storage, PriceCatalogue.load(), "m")
        gone = asyncio.create_task(service.is_chat_channel(1, 50))
        other = asyncio.create_task(service.is_chat_channel(1, 50))
        await asyncio.sleep(0)
        gone.cancel()
        assert await other
        assert await service.is_chat_channel(1, 50)
