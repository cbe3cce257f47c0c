"""Every process reaches a Redis that wants TLS (`rediss://`) and a user with a password.

A redis-server of the test's own listens only on a TLS port, with a self-signed certificate
(made with `openssl`), the default user disabled and one ACL user `app`. The orchestrator and
worker processes and the producer connect with `rediss://app:<password>@...?ssl_ca_certs=...`
and run a graph; a wrong password is refused at once with an error that does not show it.
(That no pickle is ever executed is proved in tests/test_cluster.py.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import redis

from arqgraph.client import Client
from tests.conftest import ArqProcesses, _free_port_outside_ephemeral_range, _redis_binary
from tests.graphs import fault_graphs as graphs
from tests.test_cluster import STARTUP_LIMIT, wait_registered, within

SPEC = "tests.graphs.fault_graphs:GRAPHS"
PASSWORD = "s3cr@t:pass/word"  # characters a URL must percent-encode


@dataclass
class TlsRedis:
    port: int
    ca: Path

    def url(self, password: str = PASSWORD) -> str:
        return (f"rediss://app:{quote(password, safe='')}@127.0.0.1:{self.port}/0"
                f"?ssl_ca_certs={self.ca}")


def _openssl() -> str:
    binary = shutil.which("openssl")
    if binary is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but openssl is not installed (apt-get install openssl)")
        pytest.skip("openssl is not installed")
    return binary


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsRedis]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [_openssl(), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    port = _free_port_outside_ephemeral_range()
    log = tmp_path / "redis.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [_redis_binary(), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
             "--tls-cert-file", str(cert), "--tls-key-file", str(key),
             "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
             "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
             "--user", "default", "off",
             "--user", "app", "on", f">{PASSWORD}", "~*", "&*", "+@all"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    server = TlsRedis(port, cert)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                client = redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(cert),
                                     username="app", password=PASSWORD, socket_timeout=1)
                client.ping()
                client.close()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError(f"TLS redis-server did not come up:\n{log.read_text()}") from None
                time.sleep(0.05)
        yield server
    finally:
        process.kill()
        process.wait(timeout=10)


async def test_every_process_works_over_tls_with_a_password(
    tls_redis: TlsRedis, arq_processes: ArqProcesses
) -> None:
    url = tls_redis.url()
    orchestrator = arq_processes.orchestrator(SPEC, redis=url, name="tls-orchestrator")
    worker = arq_processes.worker(SPEC, redis=url, extra=("--poll-delay", "0.05"),
                                  name="tls-worker")
    try:
        worker.wait_for_output("worker serving graphs", STARTUP_LIMIT)
        wait_registered(url, [g.name for g in graphs.GRAPHS])
        client = await within(Client.connect(url), 10)
        try:
            handle = await within(client.submit(graphs.large_graph.name, {"size": 3}))
            assert await within(handle.result()) == {"size": 3, "blob": "xxx", "done": []}
        finally:
            await client.close()
        for proc in (orchestrator, worker):
            assert PASSWORD not in proc.output() and quote(PASSWORD, safe="") not in proc.output()
            assert proc.terminate() == 0, proc.logs()
    finally:
        for proc in (orchestrator, worker):
            if proc.alive():
                proc.kill()


async def test_a_wrong_password_is_refused_at_once_without_showing_it(
    tls_redis: TlsRedis, arq_processes: ArqProcesses
) -> None:
    wrong = "not-the-password"
    with pytest.raises(ConnectionRefusedError) as caught:
        await within(Client.connect(tls_redis.url(wrong)), 10)
    assert "refused us" in str(caught.value) and wrong not in str(caught.value)

    orchestrator = arq_processes.orchestrator(SPEC, redis=tls_redis.url(wrong),
                                              name="wrong-password-orchestrator")
    assert orchestrator.wait_exit(timeout=STARTUP_LIMIT) != 0
    assert "refused us" in orchestrator.output() and wrong not in orchestrator.output()
