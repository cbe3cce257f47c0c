"""Differential cases of `prebuilt`: `create_react_agent` (v1 and v2) and a ReAct loop built
by hand from `ToolNode` and `tools_condition`, on LangGraph, embedded and on a cluster.

`ScriptedToolModel` is a deterministic tool-calling chat model (langchain-core's fake models
cannot `bind_tools`): its n-th answer in a conversation (n = the AI messages already in it) is
the n-th scripted list of tool calls, and after the script a text that quotes the tool results
it was given. It keeps no state of its own, so separate worker processes answer alike.
Registered into `tests.differential.cases.CASES` on import (cases.py imports this module).
"""

from collections.abc import Sequence
from typing import Annotated, Any

import pydantic
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tools import InjectedToolCallId, tool
from langchain_core.utils.function_calling import convert_to_openai_tool

from tests.differential.api import Api
from tests.differential.cases import case


class ScriptedToolModel(BaseChatModel):
    """Answers turn n of a conversation with `script[n]`'s tool calls (name, args) each."""

    script: list[list[tuple[str, dict[str, Any]]]] = []
    structured: dict[str, Any] | None = None

    @property
    def _llm_type(self) -> str:
        return "scripted-tools"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Runnable:
        return RunnableLambda(lambda _messages: schema(**(self.structured or {})))

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **_: Any) -> ChatResult:
        turn = sum(isinstance(m, AIMessage) for m in messages)
        if turn < len(self.script):
            calls = [{"name": name, "args": args, "id": f"call-{turn}-{i}", "type": "tool_call"}
                     for i, (name, args) in enumerate(self.script[turn])]
            message = AIMessage(content="", tool_calls=calls, id=f"ai-{turn}")
        else:
            results = [str(m.content) for m in messages if isinstance(m, ToolMessage)]
            first = messages[0]
            text = f"done ({first.type}: {first.content}) with {', '.join(results) or 'nothing'}"
            message = AIMessage(content=text, id=f"ai-{turn}")
        return ChatResult(generations=[ChatGeneration(message=message)])


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two numbers."""
    return a * b


@tool
def explode(reason: str) -> str:
    """Always fails."""
    raise ValueError(f"boom: {reason}")


@tool(return_direct=True)
def lookup(key: str) -> str:
    """Answers directly, ending the agent's loop."""
    return f"value of {key}"


ARITHMETIC = [[("add", {"a": 2, "b": 3}), ("multiply", {"a": 4, "b": 5})],
              [("add", {"a": 5, "b": 20})]]
QUESTION = {"messages": [HumanMessage(content="compute", id="q")]}


@case([QUESTION], unordered=True, note="v2: one Send per tool call")
def build_react_agent_v2(api: Api) -> Any:
    model = ScriptedToolModel(script=ARITHMETIC)
    return api.create_react_agent(model, [add, multiply], name="diff_react_agent_v2")


@case([QUESTION], note="v1: one tools task runs the turn's calls")
def build_react_agent_v1(api: Api) -> Any:
    model = ScriptedToolModel(script=ARITHMETIC)
    return api.create_react_agent(model, [add, multiply], version="v1", prompt="Be exact.",
                                  name="diff_react_agent_v1")


@case([QUESTION], unordered=True, note="a return_direct tool ends the loop")
def build_react_agent_return_direct(api: Api) -> Any:
    model = ScriptedToolModel(script=[[("lookup", {"key": "k"})]])
    return api.create_react_agent(model, [lookup, add], name="diff_react_agent_return_direct")


@case([QUESTION, {"messages": [HumanMessage(content="again", id="q2")]}], unordered=True,
      note="handled errors, an unknown tool, a bad argument")
def build_react_agent_errors(api: Api) -> Any:
    model = ScriptedToolModel(script=[[("explode", {"reason": "x"}), ("nope", {}),
                                       ("add", {"a": "not a number", "b": 1})]])
    tools = api.ToolNode([explode, add], handle_tool_errors=True)
    return api.create_react_agent(model, tools, name="diff_react_agent_errors")


class Answer(pydantic.BaseModel):
    total: int
    note: str


@case([QUESTION], unordered=True, note="response_format: a last structured answer")
def build_react_agent_structured(api: Api) -> Any:
    model = ScriptedToolModel(script=ARITHMETIC[:1], structured={"total": 25, "note": "ok"})
    return api.create_react_agent(model, [add, multiply], response_format=Answer,
                                  name="diff_react_agent_structured")


@case([QUESTION], unordered=True, note="pre and post model hooks")
def build_react_agent_hooks(api: Api) -> Any:
    model = ScriptedToolModel(script=ARITHMETIC[:1])

    def trim(state: Any) -> dict[str, Any]:
        return {"llm_input_messages": state["messages"][-3:]}

    def audit(state: Any) -> dict[str, Any]:
        return {"messages": [AIMessage(content=f"seen {len(state['messages'])}",
                                       id=f"audit-{len(state['messages'])}")]} if not state[
            "messages"][-1].tool_calls else {}

    return api.create_react_agent(model, [add, multiply], pre_model_hook=trim,
                                  post_model_hook=audit, name="diff_react_agent_hooks")


def _hand_built(api: Api, name: str) -> Any:
    class State(api.MessagesState):  # type: ignore[name-defined, misc]
        unit: str

    @tool
    def convert(amount: int, unit: Annotated[str, api.InjectedState("unit")],
                state: Annotated[dict, api.InjectedState]) -> str:
        """Convert an amount into the state's unit."""
        return f"{amount} {unit} after {len(state['messages'])} messages"

    @tool
    def remember(fact: str, tool_call_id: Annotated[str, InjectedToolCallId]) -> Any:
        """Store a fact in the state's unit and answer the call."""
        return api.Command(update={"unit": fact, "messages": [
            ToolMessage(content=f"noted {fact}", tool_call_id=tool_call_id)]})

    model = ScriptedToolModel(script=[[("convert", {"amount": 3})], [("remember", {"fact": "kg"})],
                                      [("convert", {"amount": 4})]]).bind_tools([convert, remember])

    def chat(state: Any) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    g = api.StateGraph(State)
    g.add_node("chat", chat)
    g.add_node(api.ToolNode([convert, remember]))
    g.add_edge(api.START, "chat")
    g.add_conditional_edges("chat", api.tools_condition)
    g.add_edge("tools", "chat")
    return g.compile(name=name)


@case([{**QUESTION, "unit": "lb"}], note="ToolNode and tools_condition by hand; InjectedState; "
                                        "a tool that returns a Command")
def build_tool_node_by_hand(api: Api) -> Any:
    return _hand_built(api, "diff_tool_node_by_hand")
