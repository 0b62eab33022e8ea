"""``cancel_and_wait``: a task that swallows its cancellation is cancelled again.

nats-py's publish swallows a ``CancelledError`` that lands in its flush, and the task then
carries on; a session's publisher cancelled there went back to waiting for packets, forever,
and the session (and the gateway's stop) with it."""

from __future__ import annotations

import asyncio
import contextlib

from suho_mt5.gateway._common import cancel_and_wait


async def _swallows_once(never: asyncio.Event) -> None:
    with contextlib.suppress(asyncio.CancelledError):  # as nats-py's _flush_pending does
        await asyncio.sleep(3600)
    await never.wait()  # back to waiting, as the publisher's loop does


def test_a_task_that_swallows_its_cancellation_is_cancelled_again() -> None:
    async def scenario() -> tuple[bool, bool]:
        never = asyncio.Event()
        stubborn = asyncio.create_task(_swallows_once(never))
        plain = asyncio.create_task(asyncio.sleep(3600))
        await asyncio.sleep(0)
        await asyncio.wait_for(cancel_and_wait([stubborn, plain], again_s=0.05), 10)
        return stubborn.cancelled(), plain.cancelled()

    assert asyncio.run(scenario()) == (True, True)


def test_a_single_cancellation_is_not_enough_for_such_a_task() -> None:
    """The reason for the helper: gathering after one cancel waits for ever."""
    async def scenario() -> bool:
        stubborn = asyncio.create_task(_swallows_once(asyncio.Event()))
        await asyncio.sleep(0)
        stubborn.cancel()
        done, _ = await asyncio.wait({stubborn}, timeout=0.2)
        stubborn.cancel()
        await asyncio.gather(stubborn, return_exceptions=True)
        return bool(done)

    assert asyncio.run(scenario()) is False


def test_the_tasks_exceptions_are_retrieved() -> None:
    async def boom() -> None:
        raise ValueError("boom")

    async def scenario() -> list[object]:
        unretrieved: list[object] = []
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, ctx: unretrieved.append(ctx.get("exception")))
        task = asyncio.create_task(boom())
        await asyncio.sleep(0)
        await cancel_and_wait([task])
        del task
        import gc
        gc.collect()
        return unretrieved

    assert asyncio.run(scenario()) == []
