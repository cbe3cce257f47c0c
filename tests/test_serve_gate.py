"""The server's submit gate (`arqgraph.server.gate`): a lone submit goes at once; submits made
while another is on its way wait for the gate's next opening and go together."""

from __future__ import annotations

import asyncio

from arqgraph.server.gate import Gate


async def turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_lone_submit_goes_at_once_and_company_waits_for_the_opening() -> None:
    gate = Gate(window=3600.0)  # (never opens by itself here: the test opens it)
    entered: list[int] = []
    hold = asyncio.Event()

    async def submit(n: int) -> None:
        async with gate.through():
            entered.append(n)
            await hold.wait()

    first = asyncio.create_task(submit(0))
    await turns()
    assert entered == [0]  # (alone: no wait for a gate that opens in an hour)
    others = [asyncio.create_task(submit(n)) for n in (1, 2, 3)]
    await turns()
    assert entered == [0]  # (another is on its way: they wait)
    gate._open()  # (the window's end)
    await turns()
    assert sorted(entered) == [0, 1, 2, 3]
    hold.set()
    await asyncio.gather(first, *others)
    assert gate.submitting == 0
    lone = asyncio.create_task(submit(4))
    await turns()
    assert entered[-1] == 4  # (a quiet gate again)
    await lone


async def test_a_window_of_zero_is_no_gate() -> None:
    gate = Gate(window=0)
    async with gate.through(), gate.through():  # (the second while the first is on its way)
        assert gate.submitting == 2
