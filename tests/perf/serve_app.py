"""`python APP.py`: serve a benchmark app's ``create_app`` under granian, with the same Server
arguments as ``belong serve``, so every server in a benchmark run is served alike."""

from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent


def serve(module: str, description: str, default_port: int) -> int:
    from granian.constants import Interfaces
    from granian.server import Server

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--graceful-timeout", type=int, default=30)
    args = parser.parse_args()
    server = Server(
        f"{module}:create_app",
        factory=True,
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        workers_kill_timeout=args.graceful_timeout,
        working_dir=HERE,
    )
    server.serve()
    return 0
