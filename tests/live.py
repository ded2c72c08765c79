"""A real ``belong serve`` on a free loopback port, for tests that need a live server.

The database is migrated with ``belong db upgrade``, a token is made with ``belong clients
create`` (its last output line), and the server is always stopped at the end.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

BELONG = Path(sys.executable).with_name("belong")
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class LiveServer:
    origin: str
    token: str
    env: dict[str, str]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def belong(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(BELONG), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@contextmanager
def live_server(
    database_url: str,
    folder: Path,
    scopes: Sequence[str],
    clinic: str = "live",
    extra_env: dict[str, str] | None = None,
    workers: int = 1,
    public_host: str | None = None,
) -> Iterator[LiveServer]:
    """``public_host`` (e.g. localhost, another site than 127.0.0.1 to a browser): the
    server's public base URL names it instead of the address it listens on."""
    port = free_port()
    origin = f"http://{public_host or '127.0.0.1'}:{port}"
    env = {
        **os.environ,
        "BELONG_DATABASE_URL": database_url,
        "BELONG_LOG_LEVEL": "WARNING",
        **({"BELONG_PUBLIC_BASE_URL": origin} if public_host else {}),
        **(extra_env or {}),
    }
    belong("db", "upgrade", env=env)
    scope_args = [arg for scope in scopes for arg in ("--scope", scope)]
    token = belong(
        "clients", "create", "--create-clinic", "--clinic", clinic, *scope_args, env=env
    ).splitlines()[-1]
    log_path = folder / f"server-{port}.log"
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(BELONG), *serve],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                assert process.poll() is None, log_path.read_text()
                try:
                    ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2)
                    if ready.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server did not become ready"
                time.sleep(0.2)
            yield LiveServer(origin, token, env)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
