"""A local HTTP file server on 127.0.0.1 for download tests (Range support, scripted faults)."""

from __future__ import annotations

import re
import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FileServer:
    """Serve ``files`` (URL path -> bytes) in a thread; record every request.

    Faults, per path, consumed in order, one per request (``faults[path] = [...]``):
    ``("cut", n)`` sends the headers of the full answer but only ``n`` body bytes, then
    closes; ``("stall", n)`` sends ``n`` bytes and then stalls for ``stall_s`` seconds;
    ``("no-range",)`` answers 200 with the whole file even when a Range was asked for.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, list[tuple]] = {}
        self.requests: list[dict] = []
        self.stall_s = 3.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep the test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                server._serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        rng = h.headers.get("Range")
        self.requests.append({"path": h.path, "range": rng})
        data = self.files.get(h.path)
        if data is None:
            h.send_error(404)
            return
        pending = self.faults.get(h.path) or []
        fault = pending.pop(0) if pending else ("ok",)
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and fault[0] != "no-range":
            start = int(m.group(1))
            if start >= len(data):
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(data)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            h.send_response(200)
        body = data[start:]
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Content-Type", "application/octet-stream")
        h.end_headers()
        if fault[0] in ("cut", "stall"):
            h.wfile.write(body[: fault[1]])
            h.wfile.flush()
            if fault[0] == "stall":
                time.sleep(self.stall_s)
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        h.wfile.write(body)


def unused_port() -> int:
    """A local TCP port with nothing listening on it (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def checkpoint_bytes(folder) -> bytes:
    """A small sam-pets checkpoint (``test`` config) as the bytes a server would send."""
    from sam_pets.model import build_model, save_checkpoint

    return save_checkpoint(build_model("test", seed=0), Path(folder) / "t.pt").read_bytes()


def use_fake_builtin(folder, monkeypatch, seed: int) -> Path:
    """Point ``$SAM_PETS_BUILTIN_MODEL`` at a small fp16 checkpoint in ``folder``."""
    import torch

    from sam_pets.model import build_model, save_checkpoint

    path = save_checkpoint(
        build_model("test", seed=seed), Path(folder) / "pets.pt", dtype=torch.float16
    )
    monkeypatch.setenv("SAM_PETS_BUILTIN_MODEL", str(path))
    return path


@contextmanager
def serve_official(monkeypatch, name: str, data: bytes):
    """A local server holding ``data`` as Meta's file ``name``, with the registry's hash of it."""
    import dataclasses
    import hashlib

    from sam_pets.model import hub

    with FileServer() as srv:
        entry = hub.OFFICIAL[name]
        srv.files[f"/{entry.release}/{name}.pt"] = data
        monkeypatch.setenv(hub.URL_ENV, srv.url)
        digest = hashlib.sha256(data).hexdigest()
        monkeypatch.setitem(hub.OFFICIAL, name, dataclasses.replace(entry, sha256=digest))
        yield srv
