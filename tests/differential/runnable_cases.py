"""Differential cases of LangChain runnables as nodes and as edges' paths: a RunnableLambda, a
chain of them, one taking the config, and a prompt | model | parser chain whose model streams.
Registered into `tests.differential.cases.CASES` on import (cases.py imports this module last).
"""

from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableConfig, RunnableLambda, RunnablePick

from tests.differential.api import Api
from tests.differential.cases import LogState, Run, _compile, case
from tests.differential.message_cases import EchoModel


def shout(state: LogState) -> dict[str, Any]:
    return {"text": state["text"].upper(), "log": ["shout"]}


def exclaim(state: LogState) -> dict[str, Any]:
    return {"text": state["text"] + "!", "log": ["exclaim"]}


def tagged(state: LogState, config: RunnableConfig) -> dict[str, Any]:
    return {"log": [f"tagged:{config['configurable'].get('who', '-')}"]}


async def atagged(state: LogState, config: RunnableConfig) -> dict[str, Any]:
    return {"log": [f"atagged:{config['configurable'].get('who', '-')}"]}


def pick(state: LogState) -> str:
    return "tagged" if "!" in state["text"] else "__end__"


@case([Run({"text": "hi", "log": []}, {"configurable": {"who": "ann"}}), {"text": "yo", "log": []}])
def build_runnable_nodes(api: Api) -> Any:
    g = api.StateGraph(LogState)
    g.add_node(RunnableLambda(shout))  # (named by the runnable: "shout")
    g.add_node("twice", RunnableLambda(exclaim) | RunnableLambda(exclaim).with_config(
        run_name="again"))
    g.add_node("tagged", RunnableLambda(tagged, afunc=atagged))
    g.add_edge(api.START, "shout")
    g.add_edge("shout", "twice")
    g.add_conditional_edges("twice", RunnableLambda(pick))
    return _compile(g, "runnable_nodes")


@case([{"messages": [HumanMessage(content="tell me", id="in")]}])
def build_runnable_chat_chain(api: Api) -> Any:
    """A prompt | model chain as the node, its reply wrapped by a last RunnableLambda: the
    model's tokens stream from inside the chain."""
    prompt = ChatPromptTemplate.from_messages(
        [("system", "be brief"), MessagesPlaceholder("messages")])

    def wrap(message: AIMessage) -> dict[str, Any]:
        return {"messages": [AIMessage(content=message.content, id="reply")]}

    g = api.StateGraph(api.MessagesState)
    g.add_node("chat", prompt | EchoModel() | RunnableLambda(wrap))
    g.add_edge(api.START, "chat")
    return _compile(g, "runnable_chat_chain")


def louder(state: LogState) -> dict[str, Any]:
    return {"log": ["louder"], "volume": len(state["text"])}  # ("volume": no channel)


def by_volume(state: dict[str, Any]) -> str:
    """A path typed with a plain dict reads the node's keys that are no channel too."""
    return "tagged" if state["volume"] > 2 else "__end__"


@case([{"text": "hi", "log": []}, {"text": "hey", "log": []}])
def build_parallel_map_node_and_passed_keys(api: Api) -> Any:
    """A dict of runnables as a node (LangChain's RunnableParallel), and a conditional edge
    reading a key its node returned that is no channel of the state."""
    g = api.StateGraph(LogState)
    g.add_node("both", {"text": RunnablePick("text") | RunnableLambda(str.title),
                        "log": RunnableLambda(lambda state: ["both"])})
    g.add_node("louder", louder)
    g.add_node("tagged", RunnableLambda(tagged, afunc=atagged))
    g.add_edge(api.START, "both")
    g.add_edge("both", "louder")
    g.add_conditional_edges("louder", by_volume)
    return _compile(g, "parallel_map_node_and_passed_keys")
