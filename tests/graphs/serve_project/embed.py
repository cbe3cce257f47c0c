"""A toy embedding for `langgraph.more.json`'s `store.index`: how often a text names each of
three drinks, so that a search's ranking is known in advance; `aembed` is the same as an async
function (what `langgraph.more.json` names, and the `remember` graph's store embeds with)."""

from __future__ import annotations

import asyncio

WORDS = ("tea", "coffee", "water")


def embed(texts: list[str]) -> list[list[float]]:
    return [[float(text.lower().split().count(word)) for word in WORDS] for text in texts]


async def aembed(texts: list[str]) -> list[list[float]]:
    """`embed` as an async function (LangGraph's store takes either)."""
    await asyncio.sleep(0)
    return embed(texts)
