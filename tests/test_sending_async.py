"""Sending from async code (finding 12): awaitable variants, and blocking calls refused in a loop.

The coroutines run on a real event loop through ``async_to_sync``, as an ASGI view's would, so
the ORM's thread-sensitive calls reach the test's own database connection.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.exceptions import SynchronousOnlyOperation
from django.test.utils import override_settings

from django_aws_api_gateway_websockets import signals
from django_aws_api_gateway_websockets.models import WebSocketSession
from django_aws_api_gateway_websockets.sending import SendFromEventLoop
from tests.helpers import make_sessions, receiver


def run(coroutine_function, *args):
    """Run ``coroutine_function(*args)`` on a fresh event loop, as an async view would."""
    return async_to_sync(coroutine_function)(*args)


async def ticking(coroutine):
    """Await ``coroutine`` while counting how often the loop got to run something else."""
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.ensure_future(ticker())
    try:
        result = await coroutine
    finally:
        done.set()
        await task
    return result, ticks


# -- awaitable variants ---------------------------------------------------------------------------


def test_queryset_asend_message_does_not_block_the_loop(local, gateway):
    sessions = make_sessions(gateway, 5, local)
    make_sessions(gateway, 2, local, channel="other")
    local.latency = 0.3

    async def main():
        return await ticking(WebSocketSession.objects.in_channel("lobby").asend_message({"a": 1}))

    report, ticks = run(main)
    assert sorted(report.sent) == sorted(s.connection_id for s in sessions)
    assert local.stats()["messages"] == 5
    assert ticks >= 10, "the event loop was blocked while the requests were in flight"


def test_session_asend_message_and_gone_marking(local, gateway):
    live, dead = make_sessions(gateway, 2, local)
    local.remove_connection(dead.connection_id)

    async def main():
        return await live.asend_message("hi"), await dead.asend_message("hi")

    first, second = run(main)
    assert first.sent == [live.connection_id]
    assert second.gone == [dead.connection_id]
    dead.refresh_from_db()
    assert not dead.connected
    assert local.received[live.connection_id] == [b"hi"]


def test_async_failures_are_signalled(local, gateway):
    (session,) = make_sessions(gateway, 1, local)
    local.fail(session.connection_id, 403, times=1)

    async def main():
        return await session.asend_message("x")

    with receiver(signals.delivery_failed) as failures:
        report = run(main)
    assert report.failed == {session.connection_id: "ForbiddenException"}
    assert len(failures) == 1 and failures[0]["report"] is report


def test_aclose_and_ais_connected(local, gateway):
    one, two, three = make_sessions(gateway, 3, local, age=timedelta(hours=1))

    async def main():
        alive = await one.ais_connected()
        closed = await two.aclose()
        gone_after = await two.ais_connected()
        channel = await WebSocketSession.objects.filter(pk=three.pk).aclose()
        return alive, closed, gone_after, channel

    alive, closed, gone_after, channel = run(main)
    assert alive is True
    assert closed.sent == [two.connection_id] and not two.connected
    assert gone_after is False
    assert channel.sent == [three.connection_id]
    assert not WebSocketSession.objects.get(pk=three.pk).connected
    assert not local.is_connected(two.connection_id)


def test_asend_to_a_many_to_many_join_sends_once(local, gateway, user):
    from django.contrib.auth.models import Group

    user.groups.add(Group.objects.create(name="a"), Group.objects.create(name="b"))
    (session,) = make_sessions(gateway, 1, local)
    session.user = user
    session.save()
    members = WebSocketSession.objects.filter(user__groups__name__in=["a", "b"])

    async def main():
        return await members.asend_message("x")

    report = run(main)
    assert report.sent == [session.connection_id]
    assert local.received[session.connection_id] == [b"x"]


@pytest.mark.django_db(transaction=True)
def test_async_pending_delivery(local, gateway):
    (session,) = make_sessions(gateway, 1, age=timedelta(0))
    local.add_connecting(session.connection_id)

    async def main():
        report = await session.asend_message("welcome")
        assert report.pending == [session.connection_id]
        asyncio.get_running_loop().call_later(0.2, local.open_connection, session.connection_id)
        assert await report.await_pending(10)
        return report

    report = run(main)
    assert report.pending_delivered == [session.connection_id]
    assert local.received[session.connection_id] == [b"welcome"]


# -- the blocking calls refuse to run in a loop, before doing anything -----------------------------


@pytest.mark.parametrize(
    ("call", "alternative"),
    [
        (lambda s: s.send_message("x"), "asend_message"),
        (lambda s: s.close(), "aclose"),
        (lambda s: s.is_connected(), "ais_connected"),
        (lambda s: WebSocketSession.objects.filter(pk=s.pk).send_message("x"), "asend_message"),
        (
            lambda s: WebSocketSession.objects.filter(pk=s.pk).send_message("x", background=True),
            "asend_message",
        ),
        (lambda s: WebSocketSession.objects.broadcast("x"), "asend_message"),
        (lambda s: WebSocketSession.objects.filter(pk=s.pk).close(), "aclose"),
    ],
)
def test_blocking_calls_refuse_in_an_event_loop_before_any_side_effect(
    local, gateway, call, alternative
):
    (session,) = make_sessions(gateway, 1)  # unknown to the local: a POST would mark it gone

    async def main():
        call(session)

    with pytest.raises(SendFromEventLoop, match=alternative) as refused:
        run(main)
    assert isinstance(refused.value, SynchronousOnlyOperation)
    assert local.requests == 0, "a request was sent before the refusal"
    session.refresh_from_db()
    assert session.connected and session.state == "open"


def test_the_blocking_call_still_works_outside_a_loop(local, gateway):
    (session,) = make_sessions(gateway, 1, local)
    assert session.send_message("x").sent == [session.connection_id]


def test_asend_message_in_the_background_enqueues(gateway):
    from django_aws_api_gateway_websockets.transports.outbox import outbox

    sessions = make_sessions(gateway, 3)
    config = {
        "GATEWAY_SECRETS": [settings.GATEWAY_SECRET],
        "TRANSPORT": "django_aws_api_gateway_websockets.transports.outbox.OutboxTransport",
    }

    async def main():
        return await WebSocketSession.objects.all().asend_message({"n": 1}, background=True)

    with override_settings(AWS_API_GATEWAY_WEBSOCKETS=config):
        outbox.reset()
        results = run(main)
        assert len(results) == 1
        assert sorted(results[0].args[0]) == sorted(s.pk for s in sessions)
        assert outbox.total == 0  # enqueued, not sent
