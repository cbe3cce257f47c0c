"""Static checks of the container packaging: Dockerfile, .dockerignore and docker-compose.yml.

Docker does not run where these tests run, so they check what can be checked without it: every
container command is a real `arqgraph` invocation (the project's own argparse parser accepts it)
whose graph specs load, the image's entrypoint is the project's console script, and the compose
file keeps the properties the deployment relies on: Redis with AOF and a password that the
services' URLs use, a worker that scales and gets time to finish its nodes, env vars the CLI reads.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import io
import json
import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
import yaml

from arqgraph.cli import build_parser
from arqgraph.loader import GraphSpecError, load_all
from arqgraph.settings import Settings
from arqgraph.storage.connection import redis_settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"

SETTINGS_ENV = {f"ARQGRAPH_{name.upper()}": name for name in Settings.model_fields}
SERVING = ("orchestrator", "worker", "up")  # subcommands that take SPEC... and serve graphs


# --------------------------------------------------------------------------------------------
# Compose file: loading and variable interpolation
# --------------------------------------------------------------------------------------------

_VAR = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose-style `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `$VAR`, `$$` -> `$`."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("braced") or m.group("bare")
        op, arg = m.group("op"), m.group("arg") or ""
        current = env.get(name)
        if op in (":-", "-"):
            unset = current is None or (op == ":-" and current == "")
            return arg if unset else current  # type: ignore[return-value]
        if op in (":?", "?"):
            if current is None or (op == ":?" and current == ""):
                pytest.fail(f"docker-compose.yml requires ${{{name}}} to be set: {arg}")
            return current  # type: ignore[return-value]
        if op in (":+", "+"):
            return arg if current else ""
        return current or ""

    return _VAR.sub(sub, value)


def load_compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE.name} is missing"
    try:
        raw = yaml.safe_load(COMPOSE_FILE.read_text())
    except yaml.YAMLError as exc:
        pytest.fail(f"{COMPOSE_FILE.name} is not valid YAML: {exc}")
    assert isinstance(raw, dict), f"{COMPOSE_FILE.name} must be a mapping at the top level"
    services = raw.get("services")
    assert isinstance(services, dict) and services, f"{COMPOSE_FILE.name} defines no services"
    for name, svc in services.items():
        assert isinstance(svc, dict), f"service {name!r} must be a mapping"
    return interpolate(raw, env or {})


def services(env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    return load_compose(env)["services"]


def is_redis(svc: dict[str, Any]) -> bool:
    image = str(svc.get("image", ""))
    return "build" not in svc and image.split("@")[0].split(":")[0].split("/")[-1] == "redis"


def app_services(env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Every service that runs this project's image (i.e. is not the redis image)."""
    return {n: s for n, s in services(env).items() if not is_redis(s)}


def redis_service(env: dict[str, str] | None = None) -> tuple[str, dict[str, Any]]:
    found = [(n, s) for n, s in services(env).items() if is_redis(s)]
    assert len(found) == 1, f"expected exactly one redis service, found {[n for n, _ in found]}"
    return found[0]


def as_argv(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {k: v for k, v in pairs}
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def service_argv(name: str, svc: dict[str, Any]) -> list[str]:
    """The arguments `arqgraph` gets in this service: its command, or the image's default CMD."""
    if "entrypoint" in svc:
        assert as_argv(svc["entrypoint"]) == ["arqgraph"], (
            f"service {name!r} overrides the image's entrypoint with {svc['entrypoint']!r}; "
            "its command would not be an `arqgraph` invocation"
        )
    if svc.get("command") is not None:
        return as_argv(svc["command"])
    return dockerfile_final_exec("CMD")


def parse_cli(
    name: str, argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Parse `argv` with the project's own parser, as the service's process would (same env)."""
    for key in list(os.environ):
        if key.startswith("ARQGRAPH_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("ARQGRAPH_")})
    except ValueError as exc:
        pytest.fail(f"service {name!r}: {exc}")
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            return build_parser(settings).parse_args(argv)
    except SystemExit as exc:
        pytest.fail(
            f"service {name!r}: `arqgraph {shlex.join(argv)}` is not a valid invocation of this "
            f"project's CLI (argparse exited with {exc.code}): {stderr.getvalue().strip()}"
        )


def specs_of(args: Any) -> list[str]:
    """The graph specs (`pkg.module:attr`) a parsed command loads."""
    if args.command in SERVING:
        return list(args.specs)
    if args.command == "run" and (":" in args.spec or not args.redis):
        return [args.spec]
    return []  # `run NAME --redis URL`: a graph registered by the orchestrator


def load_specs(name: str, specs: list[str], monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    monkeypatch.syspath_prepend(str(ROOT))
    try:
        return load_all(specs)
    except GraphSpecError as exc:
        pytest.fail(f"service {name!r}: its graph specs {specs} do not load: {exc}")


def parsed_services(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    return {
        name: parse_cli(name, service_argv(name, svc), environment(svc), monkeypatch)
        for name, svc in app_services().items()
    }


def served_graph_names(
    parsed: dict[str, Any], command: str, monkeypatch: pytest.MonkeyPatch
) -> set[str]:
    names: set[str] = set()
    for name, args in parsed.items():
        if args.command == command:
            names |= {g.name for g in load_specs(name, list(args.specs), monkeypatch)}
    return names


def duration_seconds(value: Any) -> float:
    """A compose duration: `45s`, `1m30s`, `1h`, `500ms` (a bare number is seconds)."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"bad duration {value!r}"
    return sum(float(n) * units[u] for n, u in parts)


def fixed_host_ports(svc: dict[str, Any]) -> list[str]:
    """Port mappings that pin a host port (and so break `--scale`)."""
    fixed = []
    for port in svc.get("ports") or []:
        if isinstance(port, dict):
            if port.get("published"):
                fixed.append(str(port))
        elif ":" in str(port).split("/")[0]:
            fixed.append(str(port))
    return fixed


# --------------------------------------------------------------------------------------------
# Dockerfile parsing
# --------------------------------------------------------------------------------------------


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuations joined and comments dropped."""
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    out: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        if full:
            word, _, rest = full.partition(" ")
            out.append((word.upper(), rest.strip()))
    assert not pending, "Dockerfile ends in a line continuation"
    return out


def dockerfile_final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    starts = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    assert starts, "Dockerfile has no FROM"
    return instructions[starts[-1]:]


def dockerfile_final_exec(word: str) -> list[str]:
    """The final stage's ENTRYPOINT or CMD, which must be in exec (JSON) form."""
    found = [rest for w, rest in dockerfile_final_stage() if w == word]
    assert found, f"the Dockerfile's final stage has no {word}"
    try:
        value = json.loads(found[-1])
    except json.JSONDecodeError:
        pytest.fail(
            f"the Dockerfile's {word} {found[-1]!r} must be in exec form (a JSON list), so "
            "arqgraph is PID 1's child without a shell and receives SIGTERM"
        )
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), (
        f"the Dockerfile's {word} must be a JSON list of strings, got {found[-1]!r}"
    )
    return value


def copy_sources(stage: list[tuple[str, str]]) -> list[str]:
    """Build-context sources of the stage's COPY/ADD instructions (not `--from=` ones)."""
    sources: list[str] = []
    for word, rest in stage:
        if word not in ("COPY", "ADD"):
            continue
        tokens = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        if any(t.startswith("--from") for t in tokens):
            continue
        tokens = [t for t in tokens if not t.startswith("--")]
        sources += [t.rstrip("/").removeprefix("./") or "." for t in tokens[:-1]]
    return sources


def pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text())


def package_dirs() -> dict[str, str]:
    """pyproject's package-dir: import package -> the repo folder it installs from."""
    return dict(pyproject().get("tool", {}).get("setuptools", {}).get("package-dir", {}))


def installed_top_level() -> set[str]:
    """The top-level import names `pip install .` provides."""
    return {name.split(".")[0] for name in package_dirs()}


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Approximately Docker's rule: the last matching pattern wins, `!` re-includes."""
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.strip().strip("/")
        parts = path.split("/")
        candidates = {"/".join(parts[: i + 1]) for i in range(len(parts))}
        if pat.startswith("**/"):
            tail = pat[3:]
            hit = any(fnmatch.fnmatch(p, tail) for p in parts) or fnmatch.fnmatch(path, tail)
        else:
            hit = any(fnmatch.fnmatch(c, pat) for c in candidates)
        if hit:
            excluded = not negate
    return excluded


def dockerignore_patterns() -> list[str]:
    if not DOCKERIGNORE.is_file():
        return []
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


# --------------------------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------------------------


def test_dockerfile_entrypoint_is_the_console_script() -> None:
    entrypoint = dockerfile_final_exec("ENTRYPOINT")
    assert entrypoint == ["arqgraph"], f"ENTRYPOINT should be ['arqgraph'], got {entrypoint}"
    scripts = pyproject().get("project", {}).get("scripts", {})
    assert "arqgraph" in scripts, "pyproject.toml [project.scripts] has no `arqgraph`"
    module_name, sep, attr = scripts["arqgraph"].partition(":")
    assert sep, f"console script target {scripts['arqgraph']!r} is not 'module:callable'"
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    assert callable(target), f"console script target {scripts['arqgraph']!r} is not callable"


def test_dockerfile_default_cmd_is_a_valid_subcommand(monkeypatch: pytest.MonkeyPatch) -> None:
    cmd = dockerfile_final_exec("CMD")
    args = parse_cli("Dockerfile CMD", cmd, {}, monkeypatch)
    specs = specs_of(args)
    assert specs, f"the default CMD {cmd} names no graph to serve"
    load_specs("Dockerfile CMD", specs, monkeypatch)


def test_dockerfile_base_user_and_install() -> None:
    stage = dockerfile_final_stage()
    base = stage[0][1].split()
    base = [t for t in base if not t.startswith("--")]
    assert base[0].startswith("python:3.11-slim"), f"final stage is FROM {base[0]}, not 3.11-slim"
    users = [rest.split(":")[0] for word, rest in stage if word == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must run as a non-root USER"
    runs = " ".join(rest for word, rest in dockerfile_instructions() if word == "RUN")
    assert re.search(r"pip install[^&;|]*\s\"?\.(\[[a-z,]+\])?\"?(\s|$)", runs), (
        "the Dockerfile never runs `pip install .` (with extras or not)")
    assert not any(word in ("ARG", "ENV") and re.search(r"(?i)password|secret|token", rest)
                   for word, rest in dockerfile_instructions()), "no secrets in the Dockerfile"


def test_dockerfile_copies_what_pip_install_needs() -> None:
    sources = copy_sources(dockerfile_instructions())
    if "." in sources:
        return
    assert "pyproject.toml" in sources, "the Dockerfile does not COPY pyproject.toml"
    assert package_dirs(), "pyproject has no [tool.setuptools] package-dir"
    for package, folder in package_dirs().items():
        assert folder in sources, f"{folder!r} (installed as {package}) is not COPY'd"


def test_graph_modules_are_in_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """Specs like `examples.x:graph` import a top-level package that must be in the image:
    installed by `pip install .` (pyproject include) or copied into the final stage."""
    argvs = {"Dockerfile CMD": dockerfile_final_exec("CMD")}
    argvs |= {name: service_argv(name, svc) for name, svc in app_services().items()}
    final_copies = copy_sources(dockerfile_final_stage())
    ignored = dockerignore_patterns()
    envs = {name: environment(svc) for name, svc in app_services().items()}
    for name, argv in argvs.items():
        args = parse_cli(name, argv, envs.get(name, {}), monkeypatch)
        for spec in specs_of(args):
            top = spec.partition(":")[0].split(".")[0]
            packaged = top in installed_top_level()
            copied = top in final_copies or "." in final_copies
            assert packaged or copied, (
                f"{name}: graph spec {spec!r} imports {top!r}, which the image neither installs "
                "(pyproject [tool.setuptools] package-dir) nor COPYs in its final stage"
            )
            assert not dockerignored(top, ignored), f".dockerignore excludes {top!r} ({name})"


def test_dockerignore_keeps_the_build_inputs() -> None:
    patterns = dockerignore_patterns()
    assert patterns, ".dockerignore is missing or empty"
    for source in copy_sources(dockerfile_instructions()):
        if source != ".":
            assert not dockerignored(source, patterns), f".dockerignore excludes COPY'd {source!r}"
    for secret in (".env", ".git"):
        assert dockerignored(secret, patterns), f".dockerignore should exclude {secret!r}"


# --------------------------------------------------------------------------------------------
# docker-compose.yml
# --------------------------------------------------------------------------------------------


def test_compose_parses_and_has_the_services() -> None:
    names = set(services())
    assert {"redis", "orchestrator", "worker"} <= names, f"services are {sorted(names)}"
    redis_service()
    assert {"orchestrator", "worker"} <= set(app_services())


def test_service_commands_are_cli_invocations(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = parsed_services(monkeypatch)  # fails naming the service if argparse rejects it
    assert parsed["orchestrator"].command == "orchestrator", "orchestrator must run `orchestrator`"
    assert parsed["worker"].command == "worker", "worker must run `worker`"


def test_service_graph_specs_load(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, args in parsed_services(monkeypatch).items():
        specs = specs_of(args)
        if args.command in SERVING:
            assert specs, f"service {name!r} serves no graph"
        if specs:
            load_specs(name, specs, monkeypatch)


def test_orchestrated_graphs_have_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = parsed_services(monkeypatch)
    orchestrated = served_graph_names(parsed, "orchestrator", monkeypatch)
    executed = served_graph_names(parsed, "worker", monkeypatch)
    assert orchestrated, "no service runs an orchestrator"
    assert orchestrated <= executed, (
        f"graphs {sorted(orchestrated - executed)} are orchestrated but no worker service loads "
        "them: their nodes would never run"
    )


def test_submitted_graph_names_are_served(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = parsed_services(monkeypatch)
    orchestrated = served_graph_names(parsed, "orchestrator", monkeypatch)
    for name, args in parsed.items():
        if args.command == "run" and args.redis and ":" not in args.spec:
            assert args.spec in orchestrated, (
                f"service {name!r} submits graph {args.spec!r}, which no orchestrator serves "
                f"(served: {sorted(orchestrated)})"
            )


def test_env_vars_are_ones_the_cli_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, svc in app_services().items():
        env = environment(svc)
        unknown = sorted(k for k in env if k.startswith("ARQGRAPH_") and k not in SETTINGS_ENV)
        assert not unknown, (
            f"service {name!r} sets {unknown}, which arqgraph does not read; known: "
            f"{sorted(SETTINGS_ENV)}"
        )
        try:
            Settings.from_env(env)
        except ValueError as exc:
            pytest.fail(f"service {name!r}: {exc}")


def test_build_contexts_have_a_dockerfile() -> None:
    for name, svc in services().items():
        if "build" not in svc:
            continue
        build = svc["build"]
        context, dockerfile = (build, "Dockerfile") if isinstance(build, str) else (
            build.get("context", "."), build.get("dockerfile", "Dockerfile"))
        path = (COMPOSE_FILE.parent / context / dockerfile).resolve()
        assert path.is_file(), f"service {name!r}: build context has no {dockerfile} ({path})"


def test_redis_has_aof_and_a_password() -> None:
    name, svc = redis_service()
    argv = as_argv(svc.get("command"))
    pairs = dict(zip(argv, argv[1:], strict=False))
    assert pairs.get("--appendonly") == "yes", f"{name}: command {argv} lacks --appendonly yes"
    assert pairs.get("--requirepass"), f"{name}: command {argv} lacks --requirepass PASSWORD"
    raw = yaml.safe_load(COMPOSE_FILE.read_text())["services"][name]
    raw_argv = as_argv(raw.get("command"))
    raw_pass = dict(zip(raw_argv, raw_argv[1:], strict=False)).get("--requirepass", "")
    assert "${" in raw_pass, f"{name}: --requirepass should come from an env var, e.g. " \
        "${REDIS_PASSWORD:-arqgraph}, not be hard-coded"
    mounts = [str(v) for v in svc.get("volumes") or []]
    data = [m for m in mounts if m.split(":")[1:2] == ["/data"]]
    assert data, f"{name}: no volume on /data, the AOF would be lost with the container"
    volume = data[0].split(":")[0]
    if not volume.startswith((".", "/")):
        assert volume in (load_compose().get("volumes") or {}), f"volume {volume!r} undeclared"


def test_redis_healthcheck_pings_with_the_password() -> None:
    name, svc = redis_service()
    check = svc.get("healthcheck") or {}
    test = " ".join(as_argv(check.get("test")))
    assert "redis-cli" in test and "ping" in test.lower(), f"{name}: healthcheck {test!r}"
    assert re.search(r"(\s-a\s|--pass|--user|REDISCLI_AUTH)", test) or "REDISCLI_AUTH" in \
        environment(svc), f"{name}: healthcheck {test!r} does not authenticate"
    assert "PONG" in test, (
        f"{name}: healthcheck {test!r} must check for PONG: redis-cli exits 0 on NOAUTH too"
    )


@pytest.mark.parametrize("redis_password", ["not-the-default-0", "p/a@s:s w%rd"])
def test_services_use_the_redis_password_and_host(
    monkeypatch: pytest.MonkeyPatch, redis_password: str
) -> None:
    env = {"REDIS_PASSWORD": redis_password}
    redis_name, redis = redis_service(env)
    argv = as_argv(redis.get("command"))
    password = dict(zip(argv, argv[1:], strict=False)).get("--requirepass")
    for name, svc in app_services(env).items():
        svc_env = environment(svc)
        assert "ARQGRAPH_REDIS_URL" in svc_env, f"service {name!r} sets no ARQGRAPH_REDIS_URL"
        args = parse_cli(name, service_argv(name, svc), svc_env, monkeypatch)
        settings = Settings.from_env(svc_env)  # the password, set apart, put in as the CLI does
        for label, url in (("ARQGRAPH_REDIS_URL", settings.url(svc_env["ARQGRAPH_REDIS_URL"])),
                           ("--redis", settings.url(args.redis))):
            assert redis_settings(url).password == redis_password, f"{name}: {label}"
            parsed = urlparse(url)
            assert parsed.scheme in ("redis", "rediss"), f"{name}: {label} {url!r}"
            assert parsed.hostname == redis_name, (
                f"service {name!r}: {label} points at {parsed.hostname!r}, not {redis_name!r}")
            assert unquote(parsed.password or "") == password, (
                f"service {name!r}: {label} does not use redis's --requirepass (with "
                f"REDIS_PASSWORD={env['REDIS_PASSWORD']})")


def test_app_services_wait_for_healthy_redis_and_restart() -> None:
    redis_name, _ = redis_service()
    all_services = services()
    for name, svc in app_services().items():
        deps = svc.get("depends_on") or {}
        assert isinstance(deps, dict) and redis_name in deps, f"{name} must depend on redis"
        assert deps[redis_name].get("condition") == "service_healthy", (
            f"service {name!r} must wait for redis to be healthy")
        for dep, cond in deps.items():
            assert dep in all_services, f"service {name!r} depends on unknown {dep!r}"
            if cond.get("condition") == "service_healthy":
                assert all_services[dep].get("healthcheck"), f"{dep!r} has no healthcheck"
    for name in ("orchestrator", "worker"):
        restart = all_services[name].get("restart")
        assert restart == "unless-stopped", f"{name}: restart is {restart!r}"


def test_app_services_are_scalable() -> None:
    for name, svc in app_services().items():
        assert "container_name" not in svc, (
            f"service {name!r} has container_name, so `--scale {name}=N` cannot work")
        fixed = fixed_host_ports(svc)
        assert not fixed, f"service {name!r} publishes fixed host ports {fixed}: breaks --scale"


def test_worker_stop_grace_exceeds_shutdown_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, svc in app_services().items():
        args = parse_cli(name, service_argv(name, svc), environment(svc), monkeypatch)
        if args.command != "worker":
            continue
        assert "stop_grace_period" in svc, (
            f"service {name!r} has no stop_grace_period: Docker's default 10 s would SIGKILL "
            f"nodes still within the {args.shutdown_grace:g} s shutdown grace")
        stop = duration_seconds(svc["stop_grace_period"])
        assert stop > args.shutdown_grace, (
            f"service {name!r}: stop_grace_period {stop:g} s is not longer than the worker's "
            f"shutdown grace {args.shutdown_grace:g} s")


def test_app_services_are_healthy_only_when_the_pool_serves() -> None:
    for name, svc in app_services().items():
        if name == "producer":
            continue
        test = as_argv((svc.get("healthcheck") or {}).get("test"))
        assert test[-2:] == ["arqgraph", "health"], f"{name}: healthcheck {test}"
    deps = services()["producer"]["depends_on"]
    assert {d: c["condition"] for d, c in deps.items()} == {
        "redis": "service_healthy", "orchestrator": "service_healthy",
        "worker": "service_healthy"}
