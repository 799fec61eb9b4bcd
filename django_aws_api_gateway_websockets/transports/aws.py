"""The AWS Management API transport: concurrent, bounded, retrying fan-out from one process.

Measured on a 2-core machine, boto3 spends about a millisecond of CPU per ``post_to_connection``
and parks a thread in back-off for every throttled call. This transport keeps the exact protocol
(same URLs, SigV4 signature, status codes and ``x-amzn-ErrorType`` handling as botocore) but runs
all requests on one event loop per process, in a background thread:

* ``max_concurrency`` requests in flight at most, over keep-alive connections pooled per host and
  shared by every broadcast of the process;
* throttling (429) and transient failures (5xx, network, timeouts) are retried with exponential
  back-off and full jitter on a timer (or after the answer's ``Retry-After``), so a throttled
  recipient never holds up the others;
* ``max_rate`` caps sends per second (a token bucket) to keep the process under the account's
  throttle (10,000 requests/s by default in most regions); with ``shared_rate`` the cap holds for
  every process together, through a counter in Django's cache;
* credentials come from boto3's standard chain and are re-read for each batch, so refreshable
  credentials (roles, SSO, web identity) are refreshed as boto3 would refresh them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

from asgiref.sync import sync_to_async

from .. import __version__
from . import DELETE, GET, POST, BaseTransport, Batch, Outcome, Result, Target, classify
from .blocking import BlockingPool
from .http import ConnectionPool, Response, request
from .sigv4 import Credentials, Signer, payload_hash

USER_AGENT = f"django-aws-api-gateway-websockets/{__version__}"

#: Endpoints (with their signers) a transport keeps; more are only seen after rotations.
_MAX_CACHED_ENDPOINTS = 64

logger = logging.getLogger("django_aws_api_gateway_websockets.sending")


def error_code(response: Response) -> str:
    """The error code exactly as botocore's rest-json parser derives it."""
    header = response.headers.get("x-amzn-errortype", "")
    if header:
        return header.split(":", 1)[0]
    if response.body:
        try:
            body = json.loads(response.body)
        except ValueError:
            body = None
        if isinstance(body, dict):
            code = body.get("code") or body.get("Code") or body.get("__type") or ""
            if isinstance(code, str) and code:
                return code.rsplit("#", 1)[-1]
    return str(response.status)


class _EventLoopThread:
    """One asyncio loop per process, started on first use and replaced after a fork."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def get(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None and self._pid == os.getpid():
            return loop
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="dagw-management-api", daemon=True
                )
                thread.start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop


_loop_thread = _EventLoopThread()


class _RateLimiter:
    """A token bucket: ``rate`` per second, bursts of a tenth of a second. The event loop waits
    for its turn; a direct send from a caller's thread only goes when a token is free now."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.burst = max(1.0, (rate or 0) / 10) * self.interval
        self.next_free = 0.0
        self._lock = threading.Lock()

    async def wait(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self.interval:
            return
        now = loop.time()  # time.monotonic(), the clock try_acquire() reads
        with self._lock:
            slot = max(self.next_free, now - self.burst)
            self.next_free = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)

    def try_acquire(self) -> bool:
        """Take a token if one is free at once (never waits)."""
        if not self.interval:
            return True
        now = time.monotonic()
        with self._lock:
            slot = max(self.next_free, now - self.burst)
            if slot > now:
                return False
            self.next_free = slot + self.interval
            return True


def retry_after(response: Response | None, now: float | None = None) -> float | None:
    """Seconds the server asked to wait (``Retry-After``: seconds or an HTTP date), if any."""
    if response is None:
        return None
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class SharedQuota:
    """At most ``rate`` sends per wall-clock second for every process sharing ``cache_alias``.

    Each process reserves quota in blocks with one atomic ``incr`` on a per-second key in
    Django's cache (Redis or Memcached in production), so the cache is asked about once per
    ``block`` sends, and the sum of every process's sends in a second stays under ``rate``.
    A block is only used in the second it was reserved for. If the cache fails, the process
    falls back to its own ``max_rate`` (logged once) rather than stop sending.
    """

    def __init__(self, cache_alias: str, rate: float, key_prefix: str = "dagw:send-quota") -> None:
        self.cache_alias = cache_alias
        self.rate = max(1, int(rate))
        self.block = max(1, self.rate // 20)
        self.key_prefix = key_prefix
        self._window = -1
        self._left = 0
        self._full = False
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._warned = False

    def reserve(self, window: int) -> int:
        """Take up to one block of the fleet's quota for ``window``; returns what was granted."""
        from django.core.cache import caches

        cache = caches[self.cache_alias]
        key = f"{self.key_prefix}:{window}"
        try:
            cache.add(key, 0, timeout=10)
            try:
                total = cache.incr(key, self.block)
            except ValueError:  # expired between add and incr
                cache.add(key, 0, timeout=10)
                total = cache.incr(key, self.block)
        except Exception:
            if not self._warned:
                logger.warning("Shared send quota unavailable; using max_rate", exc_info=True)
                self._warned = True
            return self.block
        return max(0, min(self.block, self.rate - (total - self.block)))

    async def acquire(self, loop: asyncio.AbstractEventLoop) -> int:
        """Wait for one send's worth of quota; returns the second (epoch) it was granted in."""
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        async with self._lock:
            while True:
                now = time.time()
                window = int(now)
                if window != self._window:
                    self._window, self._left, self._full = window, 0, False
                if self._left > 0:
                    self._left -= 1
                    return window
                if not self._full:
                    granted = await loop.run_in_executor(None, self.reserve, window)
                    if int(time.time()) != window:
                        continue  # reserved for a second that is over: ask again
                    self._left += granted
                    self._full = granted < self.block
                    continue
                await asyncio.sleep(window + 1 - now)


class _Endpoint:
    """Per-target request data that does not change between recipients."""

    def __init__(self, target: Target, signer: Signer) -> None:
        parts = urlsplit(target.endpoint_url)
        use_tls = parts.scheme == "https"
        port = parts.port or (443 if use_tls else 80)
        default_port = (use_tls and port == 443) or (not use_tls and port == 80)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host  # an IPv6 literal keeps its brackets
        self.host_header = host if default_port else f"{host}:{port}"
        self.pool_key = (parts.hostname or "", port, use_tls)
        self.base_path = parts.path.rstrip("/")
        self.signer = signer

    def path(self, connection_id: str) -> str:
        return f"{self.base_path}/@connections/{quote(connection_id, safe='-_.~')}"


class _AsyncBatch(Batch):
    def __init__(self, transport: ManagementApiTransport, operation: str, payload: bytes) -> None:
        self.transport = transport
        self.operation = operation
        self.payload = payload
        self.body_hash = payload_hash(payload)
        self.loop = _loop_thread.get()
        self.credentials: Credentials | None = None  # read on first submit, not for empty sends
        self._endpoints: dict[Target, _Endpoint] = {}
        self._results: deque[Result] = deque()
        self._space = threading.Condition()
        self._outstanding = 0  # submitted and not finished; guarded by _space
        self._space_waiters: list[concurrent.futures.Future[None]] = []  # async submitters
        self._done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._closed = False  # guarded by _space
        #: Attempts waiting for a worker; touched only on the event loop's thread.
        self._queue: deque[tuple[str, _Endpoint, int]] = deque()
        self._workers = 0

    # caller's thread

    def submit(self, target: Target, connection_ids: Sequence[str]) -> None:
        if not connection_ids:
            return
        endpoint = self._endpoint(target)
        if len(connection_ids) == 1 and self._direct(endpoint, connection_ids[0]):
            return
        limit = self.transport.max_pending
        with self._space:
            self._space.wait_for(lambda: self._outstanding < limit)
            self._outstanding += len(connection_ids)
        self.loop.call_soon_threadsafe(self._enqueue, endpoint, list(connection_ids))

    def completed(self) -> list[Result]:
        results = []
        while self._results:
            results.append(self._results.popleft())
        return results

    def finish(self) -> list[Result]:
        if not self._close():
            self._done.result()
        return self.completed()

    def _close(self) -> bool:
        """No more submits; ``True`` when every result is in already (no wait, no wake-up of
        the event loop: a single send costs one hop to the loop, not two)."""
        with self._space:
            self._closed = True
            return self._outstanding == 0

    # caller's event loop (async callers): the same steps, awaited instead of blocking

    async def asubmit(self, target: Target, connection_ids: Sequence[str]) -> None:
        if not connection_ids:
            return
        if self.credentials is None:  # the credential chain may do network I/O
            endpoint = await sync_to_async(self._endpoint, thread_sensitive=False)(target)
        else:
            endpoint = self._endpoint(target)
        limit = self.transport.max_pending
        while True:
            with self._space:
                if self._outstanding < limit:
                    self._outstanding += len(connection_ids)
                    break
                waiter: concurrent.futures.Future[None] = concurrent.futures.Future()
                self._space_waiters.append(waiter)
            await asyncio.wrap_future(waiter)
        self.loop.call_soon_threadsafe(self._enqueue, endpoint, list(connection_ids))

    async def afinish(self) -> list[Result]:
        if not self._close():
            await asyncio.wrap_future(self._done)
        return self.completed()

    def _endpoint(self, target: Target) -> _Endpoint:
        target = self.transport.target_for(target)
        endpoint = self._endpoints.get(target)
        if endpoint is None:
            if self.credentials is None:
                self.credentials = self.transport.credentials()
            endpoint = self._endpoints[target] = self.transport.endpoint(target, self.credentials)
        return endpoint

    # event loop's thread

    def _enqueue(self, endpoint: _Endpoint, connection_ids: list[str]) -> None:
        self._queue.extend((connection_id, endpoint, 1) for connection_id in connection_ids)
        self._spawn()

    def _spawn(self) -> None:
        """Enough workers for the queue, up to ``max_concurrency``; each exits when it finds
        the queue empty, so a finished batch leaves no task behind."""
        wanted = min(self.transport.max_concurrency, self._workers + len(self._queue))
        while self._workers < wanted:
            self._workers += 1
            self.loop.create_task(self._worker())

    def _complete(self, result: Result) -> None:
        self._results.append(result)  # before the count: whoever sees 0 sees every result
        with self._space:
            self._outstanding -= 1
            self._space.notify()
            waiters, self._space_waiters = self._space_waiters, []
            finished = self._closed and self._outstanding == 0
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        if finished:
            self._done.set_result(None)

    async def _worker(self) -> None:
        queue = self._queue
        try:
            while queue:
                await self._attempt(*queue.popleft())
        finally:
            self._workers -= 1

    def _head(self, endpoint: _Endpoint, connection_id: str) -> bytes:
        """The signed request line and headers, up to the blank line."""
        path = endpoint.path(connection_id)
        headers = endpoint.signer.headers(
            self.operation,
            endpoint.host_header,
            path,
            self.body_hash,
            endpoint.signer.amz_date(),
        )
        head = [f"{self.operation} {path} HTTP/1.1"]
        head += [f"{name}: {value}" for name, value in headers]
        head.append(f"User-Agent: {USER_AGENT}")
        if self.operation == POST:
            head.append(f"Content-Length: {len(self.payload)}")
        head.append("\r\n")
        return "\r\n".join(head).encode("latin-1")

    def _direct(self, endpoint: _Endpoint, connection_id: str) -> bool:
        """The first attempt of a one-recipient submit, made from the caller's thread (see
        :mod:`.blocking`); a retry goes to the event loop. ``False``: not attempted here (the
        transport sends through its loop only, or ``max_rate`` has no token free right now)."""
        transport = self.transport
        if not transport.direct_single_sends or transport.shared_quota is not None:
            return False
        if not transport.rate_limiter.try_acquire():
            return False
        reason = ""
        response: Response | None = None
        try:
            data = self._head(endpoint, connection_id)
            if self.operation == POST:
                data += self.payload
            response = transport.blocking_pool(endpoint.pool_key).request(data, transport.timeout)
        except OSError as exc:  # network, timeouts, protocol errors: retried
            outcome: Outcome | None = None
            reason = type(exc).__name__
        except Exception as exc:  # e.g. an unencodable host name: final, as on the loop
            outcome, reason = Outcome.FAILED, type(exc).__name__
        else:
            reason = "" if 200 <= response.status < 300 else error_code(response)
            outcome = classify(response.status, reason)
        if outcome is None:
            if transport.max_attempts > 1:
                delay = transport.backoff(1, retry_after(response))
                with self._space:
                    self._outstanding += 1
                self.loop.call_soon_threadsafe(
                    self.loop.call_later, delay, self._retry, connection_id, endpoint, 2
                )
                return True
            outcome = Outcome.FAILED
        body = None
        if outcome is Outcome.OK and self.operation == GET and response is not None:
            body = _json_object(response.body)
        self._results.append(Result(connection_id, outcome, reason, 1, body))
        return True

    async def _attempt(self, connection_id: str, endpoint: _Endpoint, attempt: int) -> None:
        transport = self.transport
        await transport.rate_limiter.wait(self.loop)
        try:
            head = self._head(endpoint, connection_id)
            async with transport.slots():
                if transport.shared_quota is not None:
                    await transport.shared_quota.acquire(self.loop)
                response = await request(
                    transport.pool(endpoint.pool_key),
                    head,
                    self.payload if self.operation == POST else b"",
                    transport.timeout,
                )
        except (OSError, TimeoutError, asyncio.TimeoutError) as exc:
            outcome, reason, response = None, type(exc).__name__, None  # network: retry
        except Exception as exc:  # e.g. an unencodable host name: final, and never a hang
            outcome, reason, response = Outcome.FAILED, type(exc).__name__, None
        else:
            assert response is not None
            reason = "" if 200 <= response.status < 300 else error_code(response)
            outcome = classify(response.status, reason)
        if outcome is None:
            if attempt < transport.max_attempts:
                delay = transport.backoff(attempt, retry_after(response))
                self.loop.call_later(delay, self._retry, connection_id, endpoint, attempt + 1)
                return
            outcome = Outcome.FAILED
        data = None
        if outcome is Outcome.OK and self.operation == GET and response is not None:
            data = _json_object(response.body)
        self._complete(Result(connection_id, outcome, reason, attempt, data))

    def _retry(self, connection_id: str, endpoint: _Endpoint, attempt: int) -> None:
        self._queue.append((connection_id, endpoint, attempt))
        self._spawn()


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body) if body else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class ManagementApiTransport(BaseTransport):
    """Send through AWS's Management API at each gateway's endpoint."""

    def __init__(
        self,
        *,
        max_concurrency: int = 256,
        max_rate: float | None = 10_000,
        max_attempts: int = 8,
        base_backoff: float = 0.05,
        max_backoff: float = 20.0,
        timeout: float = 10.0,
        max_pending: int | None = None,
        endpoint_url: str | None = None,
        shared_rate: str | None = None,
        direct_single_sends: bool = True,
    ) -> None:
        self.max_concurrency = max(1, int(max_concurrency))
        self.max_attempts = max(1, int(max_attempts))
        self.base_backoff = float(base_backoff)
        self.max_backoff = float(max_backoff)
        self.timeout = float(timeout)
        self.max_pending = int(max_pending or self.max_concurrency * 40)
        self.endpoint_url = endpoint_url
        self.rate_limiter = _RateLimiter(max_rate)
        if shared_rate and not max_rate:
            raise ValueError("shared_rate needs max_rate: the limit to share.")
        #: With ``shared_rate`` (a cache alias), ``max_rate`` holds for all processes together.
        self.shared_quota = SharedQuota(shared_rate, max_rate) if shared_rate and max_rate else None
        self._pools: dict[tuple[str, int, bool], ConnectionPool] = {}
        self._pools_loop: asyncio.AbstractEventLoop | None = None
        self._slots = asyncio.Semaphore(self.max_concurrency)
        self._boto_session: Any = None
        #: A one-recipient send from synchronous code makes its first attempt from the
        #: caller's thread (:mod:`.blocking`), not through the event loop.
        self.direct_single_sends = bool(direct_single_sends)
        self._blocking_pools: dict[tuple[str, int, bool], BlockingPool] = {}
        #: Per target and credentials: the parsed endpoint and its signer (whose signing key is
        #: derived once a day), shared by every batch instead of rebuilt for each.
        self._endpoints: dict[tuple[Target, Credentials], _Endpoint] = {}
        self._endpoints_lock = threading.Lock()

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before the attempt after ``attempt``: the server's ``Retry-After``
        when it sent one, otherwise full jitter under ``base_backoff * 2^attempt``; both capped
        by ``max_backoff``."""
        if retry_after is not None:
            return min(self.max_backoff, retry_after)
        ceiling = min(self.max_backoff, self.base_backoff * 2**attempt)
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography

    def _on_loop(self) -> None:
        """Reset per-loop state when the loop changed (a forked child starts afresh)."""
        loop = asyncio.get_running_loop()
        if loop is not self._pools_loop:
            self._pools, self._pools_loop = {}, loop
            self._slots = asyncio.Semaphore(self.max_concurrency)

    def slots(self) -> asyncio.Semaphore:
        """Requests in flight, bounded across every concurrent batch of this process."""
        self._on_loop()
        return self._slots

    def pool(self, key: tuple[str, int, bool]) -> ConnectionPool:
        """The keep-alive connections to one host, shared by every batch."""
        self._on_loop()
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = ConnectionPool(*key)
        return pool

    def blocking_pool(self, key: tuple[str, int, bool]) -> BlockingPool:
        """The keep-alive sockets of direct sends to one host, shared by the caller threads."""
        pool = self._blocking_pools.get(key)
        if pool is None:
            pool = self._blocking_pools.setdefault(key, BlockingPool(*key))
        return pool

    def credentials(self) -> Credentials:
        """The standard AWS credential chain, as boto3 resolves and refreshes it."""
        if self._boto_session is None:
            import boto3

            self._boto_session = boto3.session.Session()
        found = self._boto_session.get_credentials()
        if found is None:
            from botocore.exceptions import NoCredentialsError

            raise NoCredentialsError()
        frozen = found.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)

    def endpoint(self, target: Target, credentials: Credentials) -> _Endpoint:
        """The request data for ``target`` signed with ``credentials`` (new credentials, e.g.
        refreshed ones, get a new signer)."""
        key = (target, credentials)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            with self._endpoints_lock:
                if len(self._endpoints) >= _MAX_CACHED_ENDPOINTS:
                    self._endpoints.clear()  # rotated credentials: drop the old signers
                endpoint = self._endpoints[key] = _Endpoint(
                    target, Signer(credentials, target.region)
                )
        return endpoint

    def target_for(self, default: Target) -> Target:
        return Target(self.endpoint_url, default.region) if self.endpoint_url else default

    def open(self, operation: str, payload: bytes = b"") -> Batch:
        if operation not in (POST, GET, DELETE):
            raise ValueError(f"Unknown Management API operation {operation!r}.")
        return _AsyncBatch(self, operation, payload)


class LocalGatewayTransport(ManagementApiTransport):
    """The Management API of a local gateway, always signed with dummy credentials (a local
    gateway checks that requests are signed, not who signed them).

    Without ``endpoint_url`` each gateway's own URL is used (``LOCAL_GATEWAY_URL`` gives
    ``<url>/<api_id>/<stage>``); with it, every call goes to that one base URL.
    """

    def __init__(self, *, endpoint_url: str | None = None, **options: Any) -> None:
        options.setdefault("max_rate", None)
        super().__init__(endpoint_url=endpoint_url, **options)

    def credentials(self) -> Credentials:
        return Credentials("local", "local")
