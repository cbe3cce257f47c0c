"""`ValidationNode`: checks the tool calls of the last AIMessage against pydantic schemas
without running anything, as `langgraph.prebuilt.tool_validator`. Each call gets a
ToolMessage: its validated arguments as JSON, or the error (`additional_kwargs["is_error"]`)
for the model to fix, which is how a graph re-prompts for well-formed structured output."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import AIMessage, ToolCall, ToolMessage
from langchain_core.runnables.config import RunnableConfig, ensure_config, get_executor_for_config
from langchain_core.tools import BaseTool, create_schema_from_function
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, ValidationError
from pydantic.v1 import BaseModel as BaseModelV1
from pydantic.v1 import ValidationError as ValidationErrorV1

FormatError = Callable[[BaseException, ToolCall, type[BaseModel]], str]


def _default_format_error(error: BaseException, call: ToolCall, schema: Any) -> str:
    return f"{error!r}\n\nRespond after fixing all validation errors."


class ValidationNode:
    """Validates each tool call of the last AIMessage against the schema of its name: a
    pydantic model (by class name), a tool's args_schema (by tool name), or a function's
    signature (by function name)."""

    def __init__(
        self,
        schemas: Sequence[BaseTool | type[BaseModel] | Callable[..., Any]],
        *,
        format_error: FormatError | None = None,
        name: str = "validation",
        tags: list[str] | None = None,
    ) -> None:
        self.name = name
        self.tags = tags
        self._format_error = format_error or _default_format_error
        self.schemas_by_name: dict[str, Any] = {}
        for schema in schemas:
            if isinstance(schema, BaseTool):
                if schema.args_schema is None:
                    raise ValueError(f"Tool {schema.name} does not have an args_schema defined.")
                if not isinstance(schema.args_schema, type) or not is_basemodel_subclass(
                        schema.args_schema):
                    raise ValueError(
                        "Validation node only works with tools that have a pydantic BaseModel "
                        f"args_schema. Got {schema.name} with args_schema: {schema.args_schema}.")
                self.schemas_by_name[schema.name] = schema.args_schema
            elif isinstance(schema, type) and issubclass(schema, BaseModel | BaseModelV1):
                self.schemas_by_name[schema.__name__] = schema
            elif callable(schema):
                self.schemas_by_name[schema.__name__] = create_schema_from_function(
                    "Validation", schema)
            else:
                raise ValueError("Unsupported input to ValidationNode. Expected BaseModel, tool "
                                 f"or function. Got: {type(schema)}.")

    def get_name(self) -> str:
        """The node's name in a graph when added without one."""
        return self.name

    def __call__(self, input: Any, config: RunnableConfig | None = None) -> Any:
        return self.invoke(input, config)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """The ToolMessages: a list for list input, else `{"messages": [...]}`."""
        if isinstance(input, list):
            as_list, messages = True, input
        elif messages := input.get("messages", []):
            as_list = False
        else:
            raise ValueError("No message found in input")
        message = messages[-1]
        if not isinstance(message, AIMessage):
            raise ValueError("Last message is not an AIMessage")
        with get_executor_for_config(ensure_config(config)) as executor:
            outputs = list(executor.map(self._validate, message.tool_calls))
        return outputs if as_list else {"messages": outputs}

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None,
                      **kwargs: Any) -> Any:
        """As `invoke`: validation does no I/O."""
        return self.invoke(input, config)

    def _validate(self, call: ToolCall) -> ToolMessage:
        schema = self.schemas_by_name[call["name"]]
        try:
            if issubclass(schema, BaseModel):
                content = schema.model_validate(call["args"]).model_dump_json()
            elif issubclass(schema, BaseModelV1):
                content = schema.validate(call["args"]).json()
            else:
                raise ValueError(f"Unsupported schema type: {type(schema)}. Expected BaseModel "
                                 "or BaseModelV1.")
            return ToolMessage(content=content, name=call["name"], tool_call_id=str(call["id"]))
        except (ValidationError, ValidationErrorV1) as e:
            return ToolMessage(content=self._format_error(e, call, schema), name=call["name"],
                               tool_call_id=str(call["id"]), additional_kwargs={"is_error": True})
