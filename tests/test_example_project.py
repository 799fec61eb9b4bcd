"""The demo project (``example/``) loads as a separate Django project: the package imports
cleanly without the test settings' extras (django_tasks patches django-stubs' generics in), its
migrations are complete and its system checks pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

MANAGE = Path(__file__).resolve().parent.parent / "example" / "manage.py"


def _manage(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["DEMO_DATABASE"] = str(tmp_path / "demo.sqlite3")
    return subprocess.run(
        [sys.executable, str(MANAGE), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=MANAGE.parent,
    )


@pytest.mark.parametrize(
    "args",
    [
        ("check", "--fail-level", "WARNING"),
        ("makemigrations", "--check", "--dry-run"),
    ],
)
def test_demo_project(tmp_path, args):
    done = _manage(tmp_path, *args)
    assert done.returncode == 0, done.stdout + done.stderr


def test_demo_setup_creates_users_and_the_gateway_record_once(tmp_path):
    assert _manage(tmp_path, "migrate", "--noinput", "-v", "0").returncode == 0
    first = _manage(tmp_path, "demo_setup", "--django-url", "http://127.0.0.1:8123")
    assert first.returncode == 0, first.stderr
    assert "Created user alice" in first.stdout
    assert "Created ApiGateway 'demo' -> http://127.0.0.1:8123/ws/" in first.stdout
    again = _manage(tmp_path, "demo_setup", "--django-url", "http://127.0.0.1:8123")
    assert again.returncode == 0, again.stderr
    assert "Created" not in again.stdout
    assert "Using ApiGateway 'demo'" in again.stdout
