"""Which webhook URLs a run may name, as LangGraph's server decides it from `langgraph.json`'s
`webhooks` section: the same keys, the same defaults, the same refusals (422) and `detail`s.

By default a webhook may not reach this machine (`localhost`, 127.0.0.0/8, a path of the
server), link-local or reserved addresses, cloud metadata endpoints or Kubernetes' internal
names: a run's creator must not turn the server into a proxy to what only it can reach.
`webhooks.url` relaxes or tightens that: `disable_loopback`, `disable_private_ips`,
`allowed_domains` (`hooks.example.com`, `*.example.com`), `allowed_ports`, `require_https`,
`max_url_length`. As in LangGraph, giving a `url` section turns `require_https` on unless it
says otherwise. A host name is resolved and each of its addresses checked, when the run is
made and again before the call."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from arqgraph.loader import GraphSpecError

LOOPBACK_REFUSED = (
    "Loopback webhooks (relative URLs and localhost) are disabled by default. They bypass "
    "authentication via the in-process ASGI transport and can be abused to invoke internal "
    "routes as an unauthenticated caller. Set webhooks.url.disable_loopback to false (in "
    "langgraph.json or via LANGGRAPH_WEBHOOKS) to opt back in — only do so when you control "
    "the mounted routes.")


def _nets(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# Never a webhook: link-local, "this network", documentation, benchmarking, multicast and
# reserved ranges; in IPv6 also the forms that embed an IPv4 address (mapped, compatible and
# NAT64), so no IPv4 address passes disguised. `::1` is one of the compatible ones.
ALWAYS_BLOCKED = _nets(
    "169.254.0.0/16", "0.0.0.0/8", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
    "fe80::/10", "ff00::/8", "::ffff:0:0/96", "::/96", "64:ff9b::/96", "64:ff9b:1::/48")
LOOPBACK = _nets("127.0.0.0/8", "::1/128")
PRIVATE = _nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
METADATA_ADDRESSES = frozenset({"169.254.169.254", "169.254.170.2", "100.100.100.200",
                                "fd00:ec2::254"})
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.amazonaws.com", "metadata",
                            "instance-data"})
LOCALHOST_NAMES = frozenset({"localhost", "localhost.localdomain", "host.docker.internal"})
KUBERNETES_SUFFIX = ".svc.cluster.local"


class WebhookRefused(Exception):
    """The webhook URL breaks the project's policy; the message is the 422's `detail`."""


@dataclass(frozen=True)
class WebhookPolicy:
    """`webhooks.url` of the project file; the defaults are LangGraph's with no such section."""

    require_https: bool = False
    allowed_domains: tuple[str, ...] = ()
    allowed_ports: tuple[int, ...] = ()
    max_url_length: int = 4096
    disable_loopback: bool = True
    disable_private_ips: bool = False

    @classmethod
    def from_project(cls, url: Any, where: str) -> WebhookPolicy:
        """The policy `webhooks.url` states. A section given, even partly, makes https
        required and URLs at most 2,048 characters unless it says otherwise, as in LangGraph."""
        if not url:
            return cls()
        if not isinstance(url, dict):
            raise GraphSpecError(f"{where}: webhooks.url must be an object")
        domains = url.get("allowed_domains") or []
        if not isinstance(domains, list) or not all(isinstance(d, str) and d for d in domains):
            raise GraphSpecError(f"{where}: webhooks.url.allowed_domains must be a list of "
                                 f"non-empty strings. Got: {domains}")
        if any("*" in d and not d.startswith("*.") for d in domains):
            raise GraphSpecError(f"{where}: webhooks.url.allowed_domains wildcard can only be "
                                 f"used as a prefix, in the form '*.domain'. Got: {domains}")
        ports = url.get("allowed_ports") or []
        if not isinstance(ports, list) or not all(type(p) is int for p in ports):
            raise GraphSpecError(f"{where}: webhooks.url.allowed_ports must be a list of "
                                 f"port numbers. Got: {ports}")
        return cls(require_https=bool(url.get("require_https", True)),
                   allowed_domains=tuple(d.strip().lower() for d in domains),
                   allowed_ports=tuple(ports),
                   max_url_length=int(url.get("max_url_length", 2048)),
                   disable_loopback=bool(url.get("disable_loopback", True)),
                   disable_private_ips=bool(url.get("disable_private_ips", False)))

    def allows_host(self, host: str) -> bool:
        """Whether `allowed_domains` names the host: exactly, or as a subdomain of a
        `*.domain` entry (not the domain itself)."""
        return host in self.allowed_domains or any(
            d.startswith("*.") and host.endswith(d[1:]) for d in self.allowed_domains)

    async def check(self, url: str) -> str | None:
        """Refuse (`WebhookRefused`) a URL the policy does not take, in LangGraph's order:
        length, a path, https, port, host, allowed domains, then where the host leads. The
        address checked, if the host's name was resolved: the call must go there (`pinned`),
        so a name that resolves elsewhere by then does not lead past the check."""
        if len(url) > self.max_url_length:
            raise WebhookRefused("Webhook URL too long")
        if url.startswith("/"):
            if self.disable_loopback:
                raise WebhookRefused(LOOPBACK_REFUSED)
            return None
        parsed = urlparse(url)
        scheme = parsed.scheme.lower()
        if self.require_https and scheme != "https":
            raise WebhookRefused("Webhook must use https")
        try:
            port = parsed.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise WebhookRefused(f"Invalid webhook port in '{url}'") from exc
        if self.allowed_ports and port not in self.allowed_ports:
            raise WebhookRefused(f"Webhook port {port} not allowed")
        host = (parsed.hostname or "").lower()
        if not host:
            raise WebhookRefused("Invalid webhook hostname ''")
        if self.allowed_domains and not self.allows_host(host):
            raise WebhookRefused("Webhook domain not allowed")
        return await self.where_to(scheme, host, port)

    async def where_to(self, scheme: str, host: str, port: int) -> str | None:
        """The address the host resolves to, each of its addresses checked (None: not
        resolved, a host taken by name); refused for its name or any of its addresses.
        Hosts `allowed_domains` names are trusted as they are."""
        if scheme not in ("http", "https"):
            raise WebhookRefused(f"Webhook host blocked: scheme '{scheme}' not allowed")
        if self.allows_host(host):
            return None
        if host in LOCALHOST_NAMES and not self.disable_loopback:
            return None
        reason = ("localhost address" if host in LOCALHOST_NAMES else
                  "cloud metadata endpoint" if host in METADATA_HOSTS else
                  "Kubernetes internal DNS" if host.endswith(KUBERNETES_SUFFIX) else None)
        addresses: list[str] = []
        if reason is None:
            try:
                found = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM)
                addresses = [str(address[0]) for *_, address in found]
            except (OSError, UnicodeError):
                reason = "DNS resolution failed"
        reason = reason or next(filter(None, map(self.address_blocked, addresses)), None)
        if reason is not None:
            raise WebhookRefused(f"Webhook host blocked: {reason}")
        return addresses[0] if addresses else None

    def address_blocked(self, ip: str) -> str | None:
        """Why an address may not be called, or None."""
        try:
            address = ipaddress.ip_address(ip.partition("%")[0])  # (an IPv6 zone dropped)
        except ValueError:
            return "invalid IP address"
        if any(address in net for net in ALWAYS_BLOCKED):
            return "blocked IP range"
        if self.disable_loopback and any(address in net for net in LOOPBACK):
            return "loopback IP range"
        if self.disable_private_ips and any(address in net for net in PRIVATE):
            return "private IP range"
        if str(address) in METADATA_ADDRESSES:
            return "cloud metadata endpoint"
        return None


PAYLOAD_FIELDS = frozenset({
    "run_id", "thread_id", "assistant_id", "created_at", "updated_at", "metadata", "kwargs",
    "multitask_strategy", "status", "run_started_at", "run_ended_at", "webhook_sent_at",
    "values", "error"})
TEMPLATE = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")  # `${{ env.LG_WEBHOOK_TOKEN }}`


@dataclass(frozen=True)
class Webhooks:
    """The project's `webhooks` section (or `LANGGRAPH_WEBHOOKS`, as LangGraph reads it when
    the file has none), and `http.disable_webhooks`."""

    policy: WebhookPolicy = WebhookPolicy()
    headers: tuple[tuple[str, str], ...] = ()  # sent with every call, templates filled in
    fields: frozenset[str] | None = None  # `allowed_fields`: the payload's keys sent
    disabled: bool = False  # `http.disable_webhooks`: runs take webhooks, none is called

    @classmethod
    def from_project(cls, options: Any, where: str, disabled: bool = False) -> Webhooks:
        """Checked as LangGraph checks it at startup: a mistake stops the server."""
        if options is None and os.environ.get("LANGGRAPH_WEBHOOKS"):
            where, options = "LANGGRAPH_WEBHOOKS", _json(os.environ["LANGGRAPH_WEBHOOKS"])
        options = options or {}
        headers = options.get("headers") or {} if isinstance(options, dict) else None
        if not isinstance(headers, dict):
            raise GraphSpecError(f"{where}: webhooks must be an object, its 'headers' one too")
        fields = options.get("allowed_fields")
        if fields is not None and (not isinstance(fields, list) or not set(fields)
                                   <= PAYLOAD_FIELDS):
            raise GraphSpecError(f"{where}: webhooks.allowed_fields must list fields of "
                                 f"{sorted(PAYLOAD_FIELDS)}. Got: {fields}")
        prefix = options.get("env_prefix", "LG_WEBHOOK_")
        return cls(WebhookPolicy.from_project(options.get("url"), where),
                   tuple((str(k), _filled(v, prefix, where)) for k, v in headers.items()),
                   frozenset(fields) if fields is not None else None, disabled)

    def payload(self, sent: dict[str, Any]) -> dict[str, Any]:
        """The call's body: the keys `allowed_fields` keeps (all when it is not given)."""
        return sent if not self.fields else {k: v for k, v in sent.items() if k in self.fields}


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise GraphSpecError(f"LANGGRAPH_WEBHOOKS is not JSON: {exc}") from exc


def _filled(value: Any, prefix: Any, where: str) -> str:
    """A header's value with each `${{ env.NAME }}` replaced by the variable, read at start.
    Only variables whose name starts with `env_prefix` may be read, so a project file cannot
    leak the server's other secrets to a receiver."""
    if not isinstance(value, str):
        raise GraphSpecError(f"{where}: webhook header values must be strings. Got: {value}")
    if not isinstance(prefix, str):
        raise GraphSpecError(f"{where}: webhooks.env_prefix must be a string")

    def variable(match: re.Match[str]) -> str:
        reference = match.group(1).strip()
        name = reference.removeprefix("env.")
        if name == reference or not name or "." in name:
            raise GraphSpecError(f"{where}: webhook headers may only read env.VAR "
                                 f"(e.g. ${{{{ env.{prefix}TOKEN }}}}), not {reference!r}")
        if not name.startswith(prefix):
            raise GraphSpecError(f"{where}: webhook headers: environment variable name "
                                 f"'{name}' must start with the configured env_prefix "
                                 f"'{prefix}'")
        if name not in os.environ:
            raise GraphSpecError(f"{where}: webhook headers: missing required environment "
                                 f"variable '{name}'")
        return os.environ[name]

    return TEMPLATE.sub(variable, value)
