"""`ganforge ui` serves the real MLflow UI over the project's store, on loopback only."""

import os
import signal
import subprocess
import sys

import pytest
from spawn_helpers import free_port, group_commands, wait_for_http

pytestmark = pytest.mark.slow


def test_ui_serves_the_store_on_loopback(tmp_path, empty_store):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli.main", "ui", "--port", str(port), "--tracking-uri", empty_store],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert wait_for_http(f"http://127.0.0.1:{port}/health", server, "the UI server", timeout=90) == b"OK"
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
        local_addresses = {line.split()[3] for line in listening.splitlines()}
        assert local_addresses == {f"127.0.0.1:{port}"}
        # MLflow's job runner and task consumers (GenAI features) are left off: a server and its UI workers only.
        assert not [c for c in group_commands(server.pid) if "mlflow.server.jobs" in c or "huey" in c]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
