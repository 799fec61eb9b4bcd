"""The demo chat in Chromium: two users chat through the real local gateway and a live Django.

Everything runs for real (see :mod:`tests.browser_support`): these tests check the JavaScript
client's behaviour end to end, including what only a browser shows (a refused handshake's reason,
reconnecting after the gateway went away). They run with ``DAGW_BROWSER_TESTS=1`` (CI's browser
leg), and fail, never skip, when Chromium or Playwright is missing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser_support import (
    SCREENSHOT,
    BrowserUnavailable,
    DemoStack,
    launch_chromium,
    sign_in,
    wait_state,
    wait_until,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - CI installs the browser extra
        pytest.fail(f"Playwright is not installed (pip install -e '.[browser]'): {exc}")
    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="module")
def browser(playwright) -> Iterator[Any]:
    try:
        chromium = launch_chromium(playwright)
    except BrowserUnavailable as exc:
        pytest.fail(str(exc))
    yield chromium
    chromium.close()


def _stack(tmp_path_factory: pytest.TempPathFactory, **options: Any) -> Iterator[DemoStack]:
    stack = DemoStack(tmp_path_factory.mktemp("demo"), **options)
    try:
        stack.start()
    except Exception:
        print(stack.logs())
        stack.stop()
        raise
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[DemoStack]:
    yield from _stack(tmp_path_factory)


@pytest.fixture
def pages(browser) -> Iterator[list[Any]]:
    """Pages opened by a test; their contexts are closed afterwards."""
    opened: list[Any] = []
    yield opened
    for page in opened:
        page.context.close()


def _open(pages: list[Any], browser: Any, stack: DemoStack, user: str, room: str = "lobby") -> Any:
    page = sign_in(browser, stack, user, room)
    pages.append(page)
    return page


def _presence(page: Any) -> list[str]:
    return page.eval_on_selector_all("#presence li", "items => items.map(i => i.textContent)")


def _lines(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        "#messages li.chat_message", "items => items.map(i => i.textContent)"
    )


def _say(page: Any, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


def _received_texts(page: Any) -> list[str]:
    return page.evaluate("window.chat.received.map(m => m.text)")


def _chat_frames(page: Any) -> list[str]:
    """The texts of the chat messages the page put on the wire, in order."""
    texts = []
    for payload in page.frames_sent:
        message = json.loads(payload)
        if message.get("action") == "chat":
            texts.append(message["text"])
    return texts


def _tokens(page: Any) -> list[str]:
    return [parse_qs(urlsplit(url).query)["ws_token"][0] for url in page.sockets]


def _check(stack: DemoStack, page: Any, condition: Any, message: str, timeout: float = 30) -> None:
    try:
        wait_until(condition, timeout, message, page)
    except AssertionError:
        print(stack.logs())
        raise


# Chat and presence -------------------------------------------------------------------------------


def test_two_users_chat_and_see_each_other(browser, stack, pages):
    alice = _open(pages, browser, stack, "alice")
    wait_state(alice, "open")
    bob = _open(pages, browser, stack, "bob")
    wait_state(bob, "open")

    for page in (alice, bob):
        _check(stack, page, lambda p=page: _presence(p) == ["alice", "bob"], "presence lists both")

    _say(alice, "Hello Bob!")
    _check(stack, bob, lambda: "alice: Hello Bob!" in _lines(bob), "bob receives alice's line")
    _say(bob, "Hi Alice.")
    _check(stack, alice, lambda: "bob: Hi Alice." in _lines(alice), "alice receives bob's line")
    # The sender sees its own line once (broadcast), not twice.
    assert _lines(alice).count("alice: Hello Bob!") == 1

    # A reply to the sender only: Bob does not see Alice's notice.
    alice.click("#whoami")
    alice.wait_for_selector("#messages li.notice:has-text('You are alice in #lobby.')")
    bob.wait_for_timeout(500)
    assert bob.locator("#messages li.notice").count() == 0

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    alice.screenshot(path=str(SCREENSHOT))

    # Bob leaves: Alice's presence list follows.
    bob.context.close()
    pages.remove(bob)
    _check(
        stack, alice, lambda: _presence(alice) == ["alice"], "presence drops bob after he leaves"
    )


def test_switching_room_reconnects_with_a_new_token_and_sees_history(browser, stack, pages):
    alice = _open(pages, browser, stack, "alice")
    wait_state(alice, "open")
    bob = _open(pages, browser, stack, "bob", room="random")
    wait_state(bob, "open")
    _say(bob, "Anyone in random?")
    _check(stack, bob, lambda: "bob: Anyone in random?" in _lines(bob), "bob sees his line")

    alice.click("a[data-room=random]")
    _check(stack, alice, lambda: len(alice.sockets) == 2, "a second socket for the new room")
    wait_state(alice, "open")
    tokens = _tokens(alice)
    assert tokens[0] != tokens[1]
    assert "channel=random" in alice.sockets[1]
    # The history (a two-way reply to the sender only) shows what was said before.
    _check(stack, alice, lambda: "bob: Anyone in random?" in _lines(alice), "history reaches alice")
    _check(stack, bob, lambda: _presence(bob) == ["alice", "bob"], "bob sees alice arrive")


# Refusals ----------------------------------------------------------------------------------------


def test_user_without_permission_is_refused_from_the_staff_room_and_told_why(browser, stack, pages):
    alice = _open(pages, browser, stack, "alice", room="staff")
    wait_state(alice, "refused")
    message = alice.text_content("#refusal")
    assert "You may not join this channel." in message
    assert "403" in message
    assert alice.evaluate("window.chat.client.refusal") == {
        "status": 403,
        "reason": "You may not join this channel.",
    }
    # A refusal that will not heal is not retried.
    alice.wait_for_timeout(2000)
    assert len(alice.sockets) == 1

    # Another room works again (new token, new connection).
    alice.click("a[data-room=lobby]")
    wait_state(alice, "open")

    staff = _open(pages, browser, stack, "staff", room="staff")
    wait_state(staff, "open")
    assert staff.is_hidden("#refusal")


# Staying connected -------------------------------------------------------------------------------


def test_server_side_close_reconnects_with_a_new_token(browser, stack, pages):
    alice = _open(pages, browser, stack, "alice")
    bob = _open(pages, browser, stack, "bob")
    wait_state(alice, "open")
    wait_state(bob, "open")

    stack.shell(
        "from django_aws_api_gateway_websockets.models import WebSocketSession\n"
        "WebSocketSession.objects.filter(user__username='bob', connected=True).close()"
    )
    _check(
        stack, bob, lambda: len(bob.sockets) >= 2, "bob opens a new socket after DeleteConnection"
    )
    wait_state(bob, "open")
    tokens = _tokens(bob)
    assert len(set(tokens)) == len(tokens), "every connection used its own token"

    _say(alice, "Still there, Bob?")
    _check(stack, bob, lambda: "alice: Still there, Bob?" in _lines(bob), "bob receives after")


def test_gateway_stop_and_restart_is_recovered_without_losing_queued_messages(
    browser, stack, pages
):
    alice = _open(pages, browser, stack, "alice")
    bob = _open(pages, browser, stack, "bob")
    wait_state(alice, "open")
    wait_state(bob, "open")

    stack.stop_gateway()
    wait_state(alice, "reconnecting")
    wait_state(bob, "reconnecting")
    # Sent while the network is down: queued, then delivered in order once reconnected.
    for number in range(3):
        _say(alice, f"queued {number}")
    assert alice.evaluate("window.chat.client.queued") == 3

    stack.start_gateway()
    wait_state(alice, "open", timeout=60_000)
    wait_state(bob, "open", timeout=60_000)
    wanted = [f"queued {number}" for number in range(3)]
    # The client flushed its queue in order, on the new connection...
    _check(stack, alice, lambda: _chat_frames(alice)[-3:] == wanted, "alice flushes in order")
    assert alice.evaluate("window.chat.client.queued") == 0
    # ...and Bob, back too, has every line: live, or from the history his page asks for on
    # open (lines broadcast before his new connection existed cannot reach him live).
    _check(
        stack,
        bob,
        lambda: (
            sorted(line for line in _lines(bob) if ": queued" in line)
            == [f"alice: {text}" for text in wanted]
        ),
        "bob has the queued lines",
        timeout=60,
    )
    _say(bob, "Back online.")
    _check(stack, alice, lambda: "bob: Back online." in _lines(alice), "alice hears bob again")


@pytest.fixture(scope="module")
def short_stack(tmp_path_factory) -> Iterator[DemoStack]:
    """The gateway closes idle connections after 3 s and every connection after 8 s; the page's
    client pings every second and replaces its connection after 5 s."""
    yield from _stack(
        tmp_path_factory, idle_timeout=3, max_duration=8, keep_alive=1, max_connection=5
    )


def test_short_idle_timeout_and_max_duration_lose_no_message(browser, short_stack, pages):
    alice = _open(pages, browser, short_stack, "alice")
    bob = _open(pages, browser, short_stack, "bob")
    wait_state(alice, "open")
    wait_state(bob, "open")

    # Quiet for longer than the idle timeout: the keep-alive holds the connection.
    alice.wait_for_timeout(4000)
    assert alice.evaluate("window.chat.client.state") == "open"

    # Then a steady conversation across several connection replacements on both sides.
    sent = [f"line {number:02d}" for number in range(40)]
    for text in sent:
        alice.evaluate("text => window.chat.client.send({action: 'chat', text})", text)
        alice.wait_for_timeout(300)
    # Alice's client put every line on the wire once, in order, whatever socket was current.
    _check(short_stack, alice, lambda: _chat_frames(alice) == sent, "alice sends each line once")
    # Bob's page shows every line exactly once. Delivery is at least once: the client drops
    # frames that both the replaced and the new connection delivered, and the page drops a line
    # whose id it has shown (API Gateway does not order the handling of messages, so lines are
    # compared as sets).
    try:
        _check(
            short_stack,
            bob,
            lambda: sorted(line.removeprefix("alice: ") for line in _lines(bob)) == sent,
            "bob shows every line exactly once",
        )
    except AssertionError:
        closes = (alice.evaluate("window.chat.closes"), bob.evaluate("window.chat.closes"))
        raise AssertionError(f"bob shows {_lines(bob)}; closes {closes}") from None
    assert set(_received_texts(bob)) >= set(sent)
    assert len(alice.sockets) >= 3 and len(bob.sockets) >= 3, (alice.sockets, bob.sockets)
    # Neither the idle timeout nor the maximum duration ever closed a socket under the client:
    # keep-alive and replacement came first.
    assert alice.evaluate("window.chat.closes") == []
    assert bob.evaluate("window.chat.closes") == []
    tokens = _tokens(alice) + _tokens(bob)
    assert len(set(tokens)) == len(tokens)
