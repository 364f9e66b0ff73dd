"""A real HTTP server on loopback that records the JSON bodies POSTed to it (an alert webhook)."""
from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator


class WebhookReceiver:
    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.raw: list[bytes] = []
        self.answers: list[tuple[int, dict[str, str]]] = []  # scripted (status, headers), then 200
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.raw.append(raw + str(self.headers).encode())
                status, headers = receiver.answers.pop(0) if receiver.answers else (200, {})
                if status == 200:
                    receiver.bodies.append(json.loads(raw))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/nightly"


@contextlib.contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
