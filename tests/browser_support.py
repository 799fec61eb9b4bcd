"""The demo project running for real: Django (``runserver``) and the local gateway
(``run_local_gateway``) as two child processes on a throwaway SQLite file, and Chromium driven by
Playwright. Shared by the browser tests and ``benchmarks/browser_latency.py``.

Nothing is faked: the browser fetches tokens from Django, opens WebSockets to the local gateway,
the gateway calls Django over HTTP, and Django sends through the gateway's Management API.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example"
MANAGE = EXAMPLE / "manage.py"
CHROMIUM = os.environ.get("DAGW_CHROMIUM", "/usr/bin/chromium")
SCREENSHOT = ROOT / "docs" / "_static" / "demo.png"


class BrowserUnavailable(RuntimeError):
    """Playwright or Chromium is missing."""


def chromium_path() -> str:
    path = shutil.which(CHROMIUM) or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if path is None:
        raise BrowserUnavailable(f"Chromium not found at {CHROMIUM} (apt-get install chromium).")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Process:
    """A child process whose output is kept (and shown when something fails)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.proc = subprocess.Popen(
            args,
            env=env,
            cwd=EXAMPLE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line.rstrip())
                self.changed.notify_all()

    def wait_for_line(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not any(text in line for line in self.lines):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited:\n" + "\n".join(self.lines[-40:]))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"{self.name}: no {text!r}:\n" + "\n".join(self.lines[-40:]))
                self.changed.wait(min(left, 0.5))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def tail(self, count: int = 40) -> str:
        return "\n".join(self.lines[-count:])


class DemoStack:
    """``example/`` with its own database, Django port and gateway port.

    ``idle_timeout``/``max_duration`` are the gateway's (AWS: 600 s and 7200 s);
    ``keep_alive``/``max_connection`` are what the page's client is told.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        idle_timeout: float = 600,
        max_duration: float = 7200,
        keep_alive: int | None = None,
        max_connection: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.idle_timeout = idle_timeout
        self.max_duration = max_duration
        self.django_port = free_port()
        self.gateway_port = free_port()
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "DEMO_DATABASE": str(workdir / "demo.sqlite3"),
            "DEMO_LOCAL_GATEWAY_URL": f"http://127.0.0.1:{self.gateway_port}",
            "DEMO_DEBUG": "0",
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        self.env.pop("DJANGO_SETTINGS_MODULE", None)
        if keep_alive is not None:
            self.env["DEMO_KEEP_ALIVE_SECONDS"] = str(keep_alive)
        if max_connection is not None:
            self.env["DEMO_MAX_CONNECTION_SECONDS"] = str(max_connection)
        self.django: _Process | None = None
        self.gateway: _Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.django_port}"

    def manage(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [sys.executable, str(MANAGE), *args],
            env=self.env,
            cwd=EXAMPLE,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def shell(self, code: str) -> str:
        """Run Python in the demo project (``manage.py shell -c``), e.g. a server-side close."""
        return self.manage("shell", "-c", code)

    def start(self) -> DemoStack:
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("demo_setup", "--django-url", self.url)
        self.start_gateway()
        self.django = _Process(
            "django",
            [
                sys.executable,
                str(MANAGE),
                "runserver",
                f"127.0.0.1:{self.django_port}",
                "--noreload",
                "--insecure",
            ],
            self.env,
        )
        self._wait_http(self.url + "/login/")
        return self

    def start_gateway(self) -> None:
        self.gateway = _Process(
            "gateway",
            [
                sys.executable,
                str(MANAGE),
                "run_local_gateway",
                "--port",
                str(self.gateway_port),
                "--backend-url",
                self.url,
                "--idle-timeout",
                str(self.idle_timeout),
                "--max-duration",
                str(self.max_duration),
            ],
            self.env,
        )
        self.gateway.wait_for_line("Ready.")

    def stop_gateway(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None

    def _wait_http(self, url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5):
                    return
            except OSError:
                if self.django is not None and self.django.proc.poll() is not None:
                    raise RuntimeError("Django exited:\n" + self.django.tail()) from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def logs(self) -> str:
        parts = []
        for proc in (self.django, self.gateway):
            if proc is not None:
                parts.append(f"--- {proc.name} ---\n{proc.tail(80)}")
        return "\n".join(parts)

    def stop(self) -> None:
        self.stop_gateway()
        if self.django is not None:
            self.django.stop()
            self.django = None


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(
        executable_path=chromium_path(),
        args=["--no-sandbox", "--disable-dev-shm-usage"],
    )


def sign_in(browser: Any, stack: DemoStack, username: str, room: str = "lobby") -> Any:
    """A new browser context signed in as ``username``, on ``room``'s page, connected."""
    context = browser.new_context(viewport={"width": 1100, "height": 720})
    page = context.new_page()
    page.sockets = []  # type: ignore[attr-defined]
    page.frames_sent = []  # type: ignore[attr-defined]

    def opened(ws: Any) -> None:
        page.sockets.append(ws.url)
        ws.on("framesent", lambda payload: page.frames_sent.append(payload))

    page.on("websocket", opened)
    page.goto(f"{stack.url}/login/?next=/room/{room}/")
    page.click(f"button[data-user={username}]")
    page.wait_for_url(f"**/room/{room}/")
    return page


def wait_state(page: Any, state: str, timeout: float = 30_000) -> None:
    page.wait_for_selector(f"#state[data-state={state}]", timeout=timeout)


def wait_until(
    predicate: Callable[[], bool], timeout: float = 30, message: str = "", page: Any = None
) -> None:
    """Poll ``predicate``; with ``page``, wait through Playwright so that its events (such as
    ``page.on("websocket")``) are dispatched meanwhile (a plain sleep would starve them)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message or "condition not met in time")
        if page is not None:
            page.wait_for_timeout(100)
        else:
            time.sleep(0.1)
