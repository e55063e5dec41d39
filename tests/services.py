"""Real Prometheus / Alertmanager processes (Debian packages) on loopback, for tests."""
from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import free_ports


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(
            f"{binary} not installed (Debian package: apt-get install prometheus prometheus-alertmanager)"
        )
    return path


def get_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in {timeout} s:\n{log.read_text()[-2000:]}")


@dataclass
class Service:
    url: str
    proc: subprocess.Popen
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def deploy_inhibit_rules() -> list:
    """The inhibition rules of deploy/alertmanager.yml (what a real deployment runs)."""
    import yaml

    return yaml.safe_load((Path(__file__).resolve().parents[1] / "deploy" / "alertmanager.yml").read_text())[
        "inhibit_rules"]


def start_alertmanager(tmp: Path, inhibit: bool = False) -> Service:
    """A real Alertmanager on loopback; ``inhibit``: with deploy/alertmanager.yml's inhibition rules."""
    import yaml

    binary = need("prometheus-alertmanager")
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = tmp / "alertmanager.yml"
    conf: dict = {"route": {"receiver": "null", "group_by": ["customer"]}, "receivers": [{"name": "null"}]}
    if inhibit:
        conf["inhibit_rules"] = deploy_inhibit_rules()
    cfg.write_text(yaml.safe_dump(conf))
    port = free_ports(1)[0]
    log = tmp / "alertmanager.log"
    proc = subprocess.Popen(
        [binary, f"--config.file={cfg}", f"--storage.path={tmp / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=open(log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    svc = Service(f"http://127.0.0.1:{port}", proc, log)
    wait_http(svc.url + "/-/ready", proc, log)
    return svc


def start_prometheus(tmp: Path, targets: list[str], scrape_interval: str = "1s") -> Service:
    binary = need("prometheus")
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = tmp / "prometheus.yml"
    cfg.write_text(
        "global:\n  scrape_interval: %s\n  evaluation_interval: %s\n"
        "scrape_configs:\n  - job_name: lookout\n    static_configs:\n      - targets: [%s]\n"
        % (scrape_interval, scrape_interval, ", ".join(f'"{t}"' for t in targets)))
    port = free_ports(1)[0]
    log = tmp / "prometheus.log"
    proc = subprocess.Popen(
        [binary, f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=open(log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    svc = Service(f"http://127.0.0.1:{port}", proc, log)
    wait_http(svc.url + "/-/ready", proc, log)
    return svc


class HookEndpoint:
    """A ticketing-system stand-in: refuses (503) for ``down_for_s``, then accepts and dedups by
    ``Idempotency-Key``. The outage starts with the first request (whenever the first alert
    gets through the worker's pipeline), so it is always exercised."""

    def __init__(self, down_for_s: float = 0.0):
        self.down_for_s = down_for_s
        self.down_until: float | None = None
        self.accepted: dict[str, dict] = {}
        self.refused = 0
        self.duplicates = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.lock:
                    if outer.down_until is None:
                        outer.down_until = time.monotonic() + outer.down_for_s
                    if time.monotonic() < outer.down_until:
                        outer.refused += 1
                        self.send_response(503)
                    else:
                        key = self.headers["Idempotency-Key"]
                        if key in outer.accepted:
                            outer.duplicates += 1
                        else:
                            outer.accepted[key] = json.loads(body)
                        self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tickets"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


#: chromium's flags for a quiet, isolated headless run (no network calls home, no first-run UI)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync")


def render_in_chromium(page: Path, profile: Path, timeout: float = 90.0) -> tuple[str, list[str]]:
    """Open ``page`` in headless Debian chromium (a fresh profile): (the DOM after load, every
    console message -- errors, uncaught exceptions and resources that failed to load among them)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("chromium not installed (Debian package: apt-get install chromium)")
    res = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    console = [line for line in res.stderr.splitlines() if ":CONSOLE" in line]
    return res.stdout, console
