"""A private JupyterLab server and headless Chromium for the browser tests (test_browser.py,
test_notebooks_stable.py): one way to start, wait for and stop the server, one set of user settings."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def require_browser() -> None:
    """Skip when Chromium, playwright or JupyterLab is missing; under ``CI=true`` fail instead: CI must never
    skip the browser tests silently."""
    def unavailable(reason: str):
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser test cannot run: {reason}. Run tests/setup_browser.sh (as root) and "
                        "pip install -e '.[dev]' first.")
        pytest.skip(f"browser test skipped: {reason} (tests/setup_browser.sh installs Chromium)")

    if not CHROMIUM.exists():
        unavailable(f"no Chromium at {CHROMIUM}")
    for module in ("playwright", "jupyterlab"):
        try:
            __import__(module)
        except ImportError:
            unavailable(f"the {module} package is not installed")


def lab_env(root: Path, **extra: str) -> dict:
    """The server's environment: JupyterLab user settings under ``root/.settings`` (every cell stays in the
    DOM, no windowing; the notebook's kernel starts without a "Select Kernel" dialog; no news pop-up),
    runtime files under ``root/.rt``, one OpenMP thread per kernel (it shares the CPU with Chromium)."""
    settings = root / ".settings"
    for ext, name, value in (("@jupyterlab/notebook-extension", "tracker", {"windowingMode": "none",
                                                                         "autoStartDefaultKernel": True}),
                             ("@jupyterlab/apputils-extension", "notification",
                              {"fetchNews": "false", "checkForUpdates": False})):
        (settings / ext).mkdir(parents=True, exist_ok=True)
        (settings / ext / f"{name}.jupyterlab-settings").write_text(json.dumps(value))
    return dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTER_RUNTIME_DIR=str(root / ".rt"),
                JUPYTER_PLATFORM_DIRS="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), **extra)


@contextmanager
def jupyterlab(root: Path, env: dict, log_path: Path):
    """A JupyterLab server on a free 127.0.0.1 port serving ``root``, without token or password; yields its
    base URL. The server and its kernels form one process group, stopped (SIGTERM, then SIGKILL) on exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
           "--allow-root", "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}",
           f"--LabApp.workspaces_dir={root / '.ws'}"]
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n"
                                       + log_path.read_text(errors="replace")[-3000:]) from None
                time.sleep(0.3)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
