"""How a store's index turns texts into vectors: its `embed` is a function of a list of texts,
sync or async, or a LangChain Embeddings.

As in LangGraph (`ensure_embeddings`), an async function serves the async API only: the
sync twins here refuse it, since they cannot wait for it. A store whose sync API runs on an
event loop of its own (`RedisStore`, for sync nodes) embeds through the async twins, so an
async function serves both of its APIs.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from arqgraph.store.base import IndexConfig, PutOp, text_at_path


def is_async_embed(embed: Any) -> bool:
    """Whether an index's `embed` is an async function (or an object with an async call)."""
    func = getattr(embed, "func", embed)  # (a functools.partial)
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        type(func).__call__)  # (an object whose call is async)


def texts_to_embed(value: Mapping[str, Any], fields: Sequence[str] | None) -> list[str]:
    return [t for path in (fields or ["$"]) for t in text_at_path(value, path)]


def put_texts(op: PutOp, index: IndexConfig | None) -> list[str]:
    """The texts a put embeds: the fields it names, else the index's (none without an
    index, for a delete, or with `index=False`)."""
    if index is None or op.index is False or op.value is None:
        return []
    return texts_to_embed(op.value, op.index if op.index is not None else index.get("fields"))


def embed_texts(index: IndexConfig, texts: list[str]) -> list[list[float]]:
    """The vectors of `texts`, with the index's sync embedding."""
    embed = index["embed"]
    if hasattr(embed, "embed_documents"):
        return [list(v) for v in embed.embed_documents(texts)]
    if not callable(embed):
        raise ValueError(f"the index's embed must be a function or an Embeddings, got {embed!r}")
    if is_async_embed(embed):
        raise ValueError("the index's embed is an async function: use the store's async API "
                         "(await store.aput(...), store.asearch(...))")
    return [list(v) for v in embed(texts)]


async def aembed_texts(index: IndexConfig, texts: list[str]) -> list[list[float]]:
    """The vectors of `texts`: an Embeddings' async method, an async function awaited, a
    sync function called."""
    embed = index["embed"]
    if hasattr(embed, "aembed_documents"):
        return [list(v) for v in await embed.aembed_documents(texts)]
    if not callable(embed):
        raise ValueError(f"the index's embed must be a function or an Embeddings, got {embed!r}")
    vectors = embed(texts)
    return [list(v) for v in (await vectors if inspect.isawaitable(vectors) else vectors)]


def put_vectors(op: PutOp, index: IndexConfig | None) -> list[list[float]]:
    texts = put_texts(op, index)
    return embed_texts(index, texts) if texts and index is not None else []


async def aput_vectors(op: PutOp, index: IndexConfig | None) -> list[list[float]]:
    texts = put_texts(op, index)
    return await aembed_texts(index, texts) if texts and index is not None else []


def query_vector(index: IndexConfig | None, query: str | None) -> list[float] | None:
    """A search query's vector (None without a query or an index)."""
    if query is None or index is None:
        return None
    embed: Any = index["embed"]
    if hasattr(embed, "embed_query"):
        return list(embed.embed_query(query))
    return embed_texts(index, [query])[0]


async def aquery_vector(index: IndexConfig | None, query: str | None) -> list[float] | None:
    """`query_vector`, with the index's async embedding."""
    if query is None or index is None:
        return None
    embed: Any = index["embed"]
    if hasattr(embed, "aembed_query"):
        return list(await embed.aembed_query(query))
    return (await aembed_texts(index, [query]))[0]
