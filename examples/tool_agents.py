"""A team of two tool-using agents, each a subgraph: a researcher calls a search tool three
times at once, then a writer checks its draft with a word-count tool.

    pip install '.[langchain]'                             # the agents are LangChain's
    python examples/tool_agents.py                         # embedded
    arqgraph up examples.tool_agents:graph --workers 3 &    # or a cluster, then:
    python examples/tool_agents.py --cluster redis://127.0.0.1:6379/0

Each agent is `create_react_agent` with `version="v2"`: every tool call of a model's turn is a
task of its own, so on a cluster the researcher's three searches (0.5 s each) run at once on
whichever workers are free. The model is scripted (no API key): it asks for tools until it
has their results, then answers. `stream(subgraphs=True)` shows each agent's steps under its
namespace.
"""

import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool

from arqgraph.graph import END, START, MessagesState, StateGraph
from arqgraph.prebuilt import create_react_agent


@tool
async def search(query: str) -> str:
    """Search the web for `query`."""
    await asyncio.sleep(0.5)  # a search API
    return f"3 sources on {query}"


@tool
def word_count(text: str) -> int:
    """Count the words of `text`."""
    return len(text.split())


class ScriptedModel(BaseChatModel):
    """A chat model that answers by a function of the conversation (a stand-in for an LLM)."""

    reply: Callable[[Sequence[BaseMessage]], AIMessage]

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> "ScriptedModel":
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self.reply(messages))])


def research(messages: Sequence[BaseMessage]) -> AIMessage:
    found = [m.content for m in messages if isinstance(m, ToolMessage)]
    if found:
        return AIMessage(f"notes: {'; '.join(map(str, found))}")
    topic = messages[0].content
    return AIMessage("", tool_calls=[{"name": "search", "args": {"query": f"{topic} {aspect}"},
                                      "id": f"search-{aspect}"}
                                     for aspect in ("papers", "news", "forums")])


def writing(messages: Sequence[BaseMessage]) -> AIMessage:
    notes = next(str(m.content) for m in reversed(messages)
                 if isinstance(m, AIMessage) and str(m.content).startswith("notes"))
    draft = f"A short piece on {messages[0].content}, from {notes.count(';') + 1} notes."
    counted = [m.content for m in messages if isinstance(m, ToolMessage) and m.name == "word_count"]
    if counted:
        return AIMessage(f"{draft} ({counted[-1]} words)")
    return AIMessage("", tool_calls=[{"name": "word_count", "args": {"text": draft},
                                      "id": "count"}])


researcher = create_react_agent(ScriptedModel(reply=research), [search], name="researcher",
                                version="v2")
writer = create_react_agent(ScriptedModel(reply=writing), [word_count], name="writer",
                            version="v2")

team = StateGraph(MessagesState)
team.add_node("researcher", researcher)
team.add_node("writer", writer)
team.add_edge(START, "researcher")
team.add_edge("researcher", "writer")
team.add_edge("writer", END)
graph = team.compile(name="tool_agents")


async def main(cluster: str | None) -> None:
    runnable = graph.with_cluster(cluster) if cluster else graph
    started = time.perf_counter()
    async for namespace, update in runnable.astream(
            {"messages": [HumanMessage("async graphs")]}, subgraphs=True):
        where = " / ".join(part.split(":")[0] for part in namespace) or "team"
        for node, written in update.items():
            last = (written or {}).get("messages", [None])[-1]  # (an agent's last word)
            said = last.content or [c["args"] for c in last.tool_calls] if last else None
            print(f"{time.perf_counter() - started:4.1f}s  {where:12} {node:10} {said}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] == "--cluster" else None))
