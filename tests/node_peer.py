"""A protocol peer written for Node (a script under tests/js): started with its JSON config on
a free loopback port, its ready line read, stopped at the end."""

from __future__ import annotations

import contextlib
import json
import selectors
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

START_SECONDS = 30.0


def _ready_line(process: subprocess.Popen[str]) -> dict[str, Any] | None:
    assert process.stdout is not None
    deadline = time.monotonic() + START_SECONDS
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=deadline - time.monotonic()):
                return None
            line = process.stdout.readline()
            if not line:
                return None
            with contextlib.suppress(ValueError):
                message = json.loads(line)
                if isinstance(message, dict) and message.get("ready"):
                    return message
    return None


@contextlib.contextmanager
def running_node_peer(
    script: Path, config: dict[str, Any], what: str
) -> Iterator[tuple[dict[str, Any], subprocess.Popen[str]]]:
    """``node script CONFIG`` until the block ends: its ready line (``{"ready": true, ...}``)
    and its process. ``what`` names it in a failure to start."""
    node = shutil.which("node")
    assert node is not None, f"Node 20 runs {what}"
    assert (script.parent / "node_modules" / "oidc-provider").is_dir(), "run make install"
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(
            [node, str(script), json.dumps(config)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            ready = _ready_line(process)
            if ready is None:
                stderr.seek(0)
                pytest.fail(f"{what} did not start:\n{stderr.read()}")
            yield ready, process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            assert process.stdout is not None
            process.stdout.close()
