"""What a server serves: the graphs of a `langgraph.json` (or of graph specs), each with its
default assistant, and the options of the project file the server honours (`env`, `http`,
`auth.path`, `store.index`, `webhooks`).
"""

from __future__ import annotations

import functools
import json
import os
import pkgutil
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arqgraph.graph.compiled import CompiledStateGraph
from arqgraph.loader import GraphSpecError, load_graphs
from arqgraph.server.webhook_policy import Webhooks

ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")  # RFC 4122's URL space


@functools.lru_cache(maxsize=1024)
def default_assistant_id(graph_id: str) -> str:
    """The default assistant of a graph: the same UUID on every server, across restarts."""
    return str(uuid.uuid5(ASSISTANT_NAMESPACE, graph_id))


@dataclass(frozen=True)
class ServedGraph:
    """A graph as the API names it (`graph_id`, the key of `langgraph.json`'s `graphs` map)
    and as the cluster does (`graph.name`, the name its orchestrators registered)."""

    graph_id: str
    graph: CompiledStateGraph[Any, Any, Any, Any]

    @property
    def assistant_id(self) -> str:
        return default_assistant_id(self.graph_id)

    @property
    def cluster_name(self) -> str:
        return str(self.graph.name)


@dataclass
class ServeConfig:
    graphs: dict[str, ServedGraph] = field(default_factory=dict)
    cors: dict[str, Any] | None = None
    auth: Any = None  # a langgraph_sdk.Auth (`auth.path`)
    store_index: dict[str, Any] | None = None  # `store.index`, its `embed` loaded
    app: Any = None  # `http.app`: a Starlette (or FastAPI) app whose routes are served too
    custom_route_auth: bool = False  # `http.enable_custom_route_auth`
    webhooks: Webhooks = Webhooks()  # `webhooks` (URL policy, headers, fields sent)

    def find(self, assistant_or_graph_id: str) -> ServedGraph | None:
        """The graph an assistant id or a graph id names."""
        if assistant_or_graph_id in self.graphs:
            return self.graphs[assistant_or_graph_id]
        return next((g for g in self.graphs.values()
                     if g.assistant_id == assistant_or_graph_id), None)


def module_spec(path_spec: str, base: Path) -> str:
    """`./pkg/agent.py:graph` as `pkg.agent:graph` when the file lies under `base` (the
    project's folder, put on `sys.path`), so that the server registers the same graph name
    as the orchestrators and workers that load it by module path. Module forms pass as given."""
    location, sep, attr = path_spec.rpartition(":")
    if not sep or not location.endswith(".py"):
        return path_spec
    file = (base / location).resolve()
    try:
        relative = file.relative_to(base.resolve())
    except ValueError as exc:
        raise GraphSpecError(f"graph file {location!r} is outside the project folder {base}"
                             ) from exc
    return ".".join(relative.with_suffix("").parts) + ":" + attr


def import_object(spec: str) -> Any:
    """The object at `package.module:attr`."""
    try:
        return pkgutil.resolve_name(spec)
    except (ImportError, AttributeError, ValueError) as exc:
        raise GraphSpecError(f"cannot load {spec!r}: {exc}") from exc


def load_config(config_path: str | None, specs: list[str]) -> ServeConfig:
    """The graphs of `langgraph.json` (file and module forms) and of `specs` (`name=spec` or
    `spec`, named by the graph's own name), and the file's `env` (set in this process)."""
    config = ServeConfig()
    entries: list[tuple[str | None, str]] = []
    if config_path:
        path = Path(config_path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise GraphSpecError(f"cannot read {config_path}: {exc}") from exc
        base = path.parent.resolve()
        if str(base) not in sys.path:
            sys.path.insert(0, str(base))
        env = data.get("env")
        if isinstance(env, dict):
            os.environ.update({str(k): str(v) for k, v in env.items()})
        elif isinstance(env, str):
            _load_env_file(base / env)
        for graph_id, spec in (data.get("graphs") or {}).items():
            if not isinstance(spec, str):
                raise GraphSpecError(f"{config_path}: graphs.{graph_id} must be a string "
                                     "'path/file.py:attr' or 'package.module:attr'")
            entries.append((graph_id, module_spec(spec, base)))
        http = data.get("http") or {}
        cors = http.get("cors")
        config.cors = cors if isinstance(cors, dict) else None
        if http.get("app"):
            config.app = custom_app(str(http["app"]), base, config_path)
        config.custom_route_auth = bool(http.get("enable_custom_route_auth"))
        config.webhooks = Webhooks.from_project(data.get("webhooks"), config_path,
                                                disabled=bool(http.get("disable_webhooks")))
        auth_path = (data.get("auth") or {}).get("path")
        if auth_path:
            config.auth = import_object(module_spec(str(auth_path), base))
        index = (data.get("store") or {}).get("index")
        if index is not None:
            config.store_index = store_index(index, base, config_path)
    else:  # (no project file: LangGraph's variable may still say it)
        config.webhooks = Webhooks.from_project(None, "LANGGRAPH_WEBHOOKS")
    for spec in specs:
        name, eq, rest = spec.partition("=")
        entries.append((name, rest) if eq else (None, spec))
    for graph_id, spec in entries:
        for graph in load_graphs(spec):
            gid = graph_id if graph_id is not None else str(graph.name)
            if gid in config.graphs:
                raise GraphSpecError(f"two graphs are served as {gid!r}")
            config.graphs[gid] = ServedGraph(gid, graph)
    if not config.graphs:
        raise GraphSpecError("no graphs to serve: give --config langgraph.json or graph specs")
    return config


def store_index(index: Any, base: Path, where: str) -> dict[str, Any]:
    """`store.index` of the project file, as the store takes it: `embed` is a function of a
    list of texts, sync or async (`./file.py:fn` or `package.module:fn`), an Embeddings there, or LangChain's
    `provider:model` (made by `langchain.embeddings.init_embeddings`, as LangGraph's server
    does); `dims` and `fields` pass as given."""
    if not isinstance(index, dict) or not isinstance(index.get("embed"), str):
        raise GraphSpecError(f"{where}: store.index must be an object with an 'embed' string "
                             "('./file.py:function' or 'provider:model')")
    spec = index["embed"]
    if ".py:" in spec:
        embed = import_object(module_spec(spec, base))
    elif spec.count(":") == 1 and "." in spec.partition(":")[0]:  # package.module:attr
        embed = import_object(spec)
    else:
        try:
            from langchain.embeddings import init_embeddings
        except ImportError as exc:
            raise GraphSpecError(f"{where}: store.index.embed {spec!r} names a LangChain "
                                 "model: install langchain (and its provider's package), or "
                                 "name a function './file.py:function'") from exc
        embed = init_embeddings(spec)
    if not (callable(embed) or hasattr(embed, "embed_documents")):
        raise GraphSpecError(f"{where}: store.index.embed {spec!r} must be a function of a "
                             "list of texts (sync or async) or an Embeddings")
    return {**index, "embed": embed}


def custom_app(spec: str, base: Path, where: str) -> Any:
    """`http.app`: the Starlette app at `./file.py:app` or `package.module:app`, whose routes
    the server serves beside the API's, as LangGraph's server does."""
    from starlette.applications import Starlette

    app = import_object(module_spec(spec, base))
    if not isinstance(app, Starlette):
        raise GraphSpecError(f"{where}: http.app {spec!r} is not a Starlette or FastAPI app")
    return app


def _load_env_file(path: Path) -> None:
    """A `.env` file's KEY=VALUE lines, as `langgraph.json`'s `env` may name one."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise GraphSpecError(f"cannot read the env file {path}: {exc}") from exc
    for line in lines:
        key, eq, value = line.strip().partition("=")
        if eq and key and not key.startswith("#"):
            os.environ.setdefault(key.strip(), value.strip().strip("'\""))
