"""The JavaScript client's unit tests (``tests/js/client.test.mjs``) on Node's test runner, with a
scripted WebSocket and fetch and mocked timers; the browser tests run it for real in Chromium."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "django_aws_api_gateway_websockets/static/django_aws_api_gateway_websockets"
NODE = shutil.which("node") or shutil.which("nodejs")

needs_node = pytest.mark.skipif(NODE is None, reason="Node.js is not installed")


@needs_node
def test_client_module_parses_as_an_es_module():
    done = subprocess.run(
        [NODE, "--input-type=module", "-e", f"import('{CLIENT / 'websocket-client.js'}')"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


@needs_node
def test_client_unit_tests_pass():
    done = subprocess.run(
        [NODE, "--test", str(ROOT / "tests/js/client.test.mjs")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout
    assert "# pass 16" in done.stdout
