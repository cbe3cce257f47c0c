"""A toy embedding for `langgraph.more.json`'s `store.index`: how often a text names each of
three drinks, so that a search's ranking is known in advance."""

from __future__ import annotations

WORDS = ("tea", "coffee", "water")


def embed(texts: list[str]) -> list[list[float]]:
    return [[float(text.lower().split().count(word)) for word in WORDS] for text in texts]
