"""`ganforge ui` serves the real MLflow UI over the project's store, on loopback only."""

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from spawn_helpers import free_port

pytestmark = pytest.mark.slow



def test_ui_serves_the_store_on_loopback(tmp_path):
    port = free_port()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    server = subprocess.Popen([sys.executable, "-m", "pipelines.cli.main", "ui", "--port", str(port),
                               "--tracking-uri", uri], cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline, body = time.time() + 90, None
        while time.time() < deadline and body is None:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
            except OSError:
                assert server.poll() is None, "the UI server exited"
                time.sleep(1)
        assert body == b"OK"
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
        local_addresses = {line.split()[3] for line in listening.splitlines()}
        assert local_addresses == {f"127.0.0.1:{port}"}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
