"""README's first command: ``lookout demo`` against a running broker finds what it injected."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import free_ports

pytestmark = pytest.mark.integration

KINDS = ("origin_outage", "cache_collapse", "traffic_drop")


def test_the_demo_detects_every_incident_it_injects_and_stops_what_it_started(kafka_bootstrap, tmp_path):
    port = free_ports(1)[0]
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "demo", "--bootstrap", kafka_bootstrap, "--customers", "12",
         "--days", "2", "--speed", "40", "--web-port", str(port), "--kinds", ",".join(KINDS)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    m = re.search(r"(\d+)/(\d+) injected incidents detected", out)
    assert m, out[-3000:]
    assert int(m.group(2)) == len(KINDS) and int(m.group(1)) == len(KINDS), out[-3000:]
    assert "FIRING" in out  # alerts printed live, as the README shows
    # the worker it started is gone: its web port is free again
    bind = ("import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
            f"s.bind(('127.0.0.1', {port}))")
    probe = subprocess.run([sys.executable, "-c", bind], capture_output=True)
    assert probe.returncode == 0, "the demo's worker still holds its web port"
