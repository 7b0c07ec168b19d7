"""Real receivers for what the worker reports: a Prometheus Pushgateway (Debian's
prometheus-pushgateway, installed by `tools/install-servers.sh monitoring`) and a loopback HTTP
server that records heartbeat pings and webhook posts, as healthchecks.io or Slack would receive them."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from testsupport.servers import free_port, setting, wait_http_ok


class Pushgateway:
    def __init__(self) -> None:
        self.binary = setting("CNPG_TEST_PUSHGATEWAY")
        if not Path(self.binary).exists():
            pytest.fail(f"{self.binary} missing: run tools/install-servers.sh monitoring", pytrace=False)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="cnpg-test-pushgateway-"))
        self.proc: subprocess.Popen | None = None

    def start(self) -> Pushgateway:
        self.proc = subprocess.Popen(
            [self.binary, f"--web.listen-address=127.0.0.1:{self.port}", f"--persistence.file={self.dir / 'data'}"],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "log", "ab"),
        )
        if not wait_http_ok(f"{self.url}/-/ready", 20):
            raise RuntimeError(f"pushgateway did not start: {(self.dir / 'log').read_text()[-2000:]}")
        return self

    def samples(self, name: str) -> dict[frozenset, float]:
        """Every sample of metric `name` the Pushgateway exposes, keyed by its label set."""
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as r:
            text = r.read().decode()
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name:
                    out[frozenset(s.labels.items())] = s.value
        return out

    def stop(self) -> None:
        if self.proc:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Hit:
    method: str
    path: str
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """`http://127.0.0.1:<port>/...`: answers 200 to anything and remembers it."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def _take(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                hits.append(Hit(self.command, self.path, self.rfile.read(n) if n else b""))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"OK")

            do_GET = do_POST = _take  # noqa: N815

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
