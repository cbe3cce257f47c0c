"""Differential cases of long-term memory: a store given at compile, reached by a node's
`store` parameter, `get_store()` and `runtime.store`, with semantic search over an index.

`embed` is a deterministic toy embedding (letter counts), defined at module level so that the
workers of a cluster have it. Registered into `tests.differential.cases.CASES` on import.
"""

from typing import Any, TypedDict

from tests.differential.api import Api
from tests.differential.cases import case

LETTERS = "aeiourst"


def embed(texts: list[str]) -> list[list[float]]:
    return [[float(text.count(c)) + 0.1 for c in LETTERS] for text in texts]


class Memo(TypedDict, total=False):
    user: str
    facts: list[str]
    question: str
    recalled: list[str]


@case([{"user": "ada", "facts": ["likes tea", "owns a cat", "rides a bike"],
        "question": "what does ada ride?"}])
def build_store_semantic_memory(api: Api) -> Any:
    def remember(state: Memo, store: api.BaseStore) -> dict[str, Any]:  # type: ignore[name-defined]
        for i, fact in enumerate(state["facts"]):
            store.put(("memories", state["user"]), f"fact-{i}", {"text": fact, "n": i})
        return {}

    def recall(state: Memo) -> dict[str, Any]:
        store = api.get_store()
        found = store.search(("memories",), query=state["question"], limit=2)
        filtered = store.search(("memories", state["user"]), filter={"n": {"$gte": 1}})
        item = store.get(("memories", state["user"]), "fact-0")
        spaces = store.list_namespaces(prefix=("memories",))
        return {"recalled": [f"{r.key}:{r.value['text']}:{round(r.score, 4)}" for r in found]
                + sorted(r.key for r in filtered) + [item.value["text"]]
                + ["/".join(ns) for ns in spaces]}

    g = api.StateGraph(Memo)
    g.add_node("remember", remember)
    g.add_node("recall", recall)
    g.add_edge(api.START, "remember")
    g.add_edge("remember", "recall")
    return g.compile(name="diff_store_semantic_memory",
                     store=api.InMemoryStore(index={"dims": len(LETTERS), "embed": embed,
                                                    "fields": ["text"]}))


@case([{"user": "bo", "facts": ["a", "b"]}], async_only=True)
def build_store_async_api(api: Api) -> Any:
    async def remember(state: Memo, store: api.BaseStore) -> dict[str, Any]:  # type: ignore[name-defined]
        for fact in state["facts"]:
            await store.aput(("notes", state["user"]), fact, {"text": fact})
        await store.adelete(("notes", state["user"]), "a")
        found = await store.asearch(("notes",))
        return {"recalled": [r.key for r in found]}

    g = api.StateGraph(Memo)
    g.add_node("remember", remember)
    g.add_edge(api.START, "remember")
    return _compile_with_store(g, api)


def _compile_with_store(g: Any, api: Api) -> Any:
    return g.compile(name="diff_store_async_api", store=api.InMemoryStore())

