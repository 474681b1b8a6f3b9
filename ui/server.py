"""Serve the chat page on its own: a FastAPI app with the Blocks mounted at "/", under uvicorn.

`create_ui_app` is what the HTTP API does too (rag/api.py mounts the same page
next to /v1); `UIServer` runs it in a background thread on a free loopback port
for the browser test; `python -m ui.server` is a local launcher.
"""

from __future__ import annotations

import argparse
import logging
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI


def create_ui_app(assistant) -> FastAPI:
    from .app import mount_ui

    app = FastAPI(title="政策问答")

    @app.get("/healthz")
    def healthz():
        return {"ok": True, "documents": len(assistant.corpus.documents)}

    return mount_ui(app, assistant, path="/")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class UIServer:
    """uvicorn in a daemon thread; `with UIServer(app) as url:` waits until it accepts connections."""

    def __init__(self, app, host: str = "127.0.0.1", port: int | None = None, timeout: float = 60.0):
        self.host, self.port = host, port or free_port(host)
        self.timeout = timeout
        self.server = uvicorn.Server(uvicorn.Config(app, host=self.host, port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="ui-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + self.timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"UI server did not start on {self.url}")
            time.sleep(0.05)
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the 政策问答 chat page alone (the API server also serves it).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from rag.service import Assistant

    assistant = Assistant()
    print(f"政策问答 chat page: http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(create_ui_app(assistant), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
