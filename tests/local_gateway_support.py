"""Shared parts of the local gateway tests: a recording HTTP backend and APIs built in the store.

The backend is a real aiohttp server on its own thread and event loop, so the gateway calls it
over TCP exactly as it calls Django.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from django_aws_api_gateway_websockets import contract
from django_aws_api_gateway_websockets.local_gateway import ids
from django_aws_api_gateway_websockets.local_gateway.store import (
    Api,
    GatewayStore,
    Integration,
    Route,
    RouteResponse,
    Stage,
)


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.time)

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class RecordingBackend:
    """An HTTP server that records every request and answers per path (default 200, empty).

    ``replies[path]`` is a :class:`Reply` or a callable taking the :class:`Recorded` request.
    """

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.replies: dict[str, Reply | Callable[[Recorded], Reply]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.changed = threading.Condition()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        recorded = Recorded(
            request.method,
            request.path,
            request.rel_url.raw_query_string,
            {k: v for k, v in request.headers.items()},
            body,
        )
        reply = self.replies.get(request.path, Reply())
        if callable(reply):
            reply = reply(recorded)
        with self.changed:
            self.requests.append(recorded)
            self.changed.notify_all()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return web.Response(status=reply.status, body=reply.body, headers=reply.headers)

    def start(self) -> RecordingBackend:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self.loop is not None and self._thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    def wait_for(
        self, predicate: Callable[[list[Recorded]], bool], timeout: float = 5.0
    ) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self.requests):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out; recorded: {[r.path for r in self.requests]}")
                self.changed.wait(left)
            return list(self.requests)

    def reset(self, quiet: float = 0.1) -> None:
        """Forget what was recorded, once requests of earlier tests (a late ``$disconnect``)
        have stopped arriving for ``quiet`` seconds."""
        while True:
            with self.changed:
                count = len(self.requests)
            time.sleep(quiet)
            with self.changed:
                if len(self.requests) == count:
                    self.requests.clear()
                    break
        self.replies.clear()

    def paths(self) -> list[str]:
        with self.changed:
            return [r.path for r in self.requests]

    def on(self, path: str) -> list[Recorded]:
        with self.changed:
            return [r for r in self.requests if r.path == path]


def build_api(
    store: GatewayStore,
    backend_url: str,
    *,
    routes: tuple[str, ...] = (contract.CONNECT, contract.DISCONNECT, contract.DEFAULT),
    two_way: tuple[str, ...] = (),
    stage: str = "production",
    stage_variables: dict[str, str] | None = None,
    request_parameters: dict[str, str] | None = None,
    route_selection_expression: str = "$request.body.action",
    integration_type: str = "HTTP_PROXY",
    uri_base: str | None = None,
    timeout_in_millis: int = 29_000,
    deploy: bool = True,
) -> Api:
    """An API as provisioning creates it: one integration per route at ``<base>/<slug>``, with
    the contract's ``RequestParameters``; deployed to ``stage`` unless ``deploy=False``."""
    api = store.add_api(
        Api(api_id="", name="test", route_selection_expression=route_selection_expression)
    )
    params = (
        contract.integration_request_parameters(None)
        if request_parameters is None
        else request_parameters
    )
    for key in routes:
        integration = Integration(
            integration_id=ids.new_resource_id(),
            integration_type=integration_type,
            integration_uri=contract.integration_uri(
                uri_base or backend_url, contract.route_slug(key)
            ),
            integration_method="POST",
            request_parameters=dict(params),
            timeout_in_millis=timeout_in_millis,
        )
        api.integrations[integration.integration_id] = integration
        route = Route(
            route_id=ids.new_resource_id(),
            route_key=key,
            target=f"integrations/{integration.integration_id}",
        )
        if key in two_way:
            route.route_response_selection_expression = "$default"
            response = RouteResponse(ids.new_resource_id(), "$default")
            route.route_responses[response.route_response_id] = response
        api.routes[route.route_id] = route
    api.stages[stage] = Stage(stage_name=stage, stage_variables=dict(stage_variables or {}))
    if deploy:
        redeploy(store, api, stage)
    return api


def redeploy(store: GatewayStore, api: Api, stage: str = "production") -> None:
    deployment = store.deploy(api)
    api.stages[stage].deployment_id = deployment.deployment_id


def add_route(store: GatewayStore, api: Api, key: str, backend_url: str, **kwargs: Any) -> Route:
    integration = Integration(
        integration_id=ids.new_resource_id(),
        integration_type="HTTP_PROXY",
        integration_uri=contract.integration_uri(backend_url, contract.route_slug(key)),
        integration_method="POST",
        request_parameters=contract.integration_request_parameters(None),
    )
    api.integrations[integration.integration_id] = integration
    route = Route(
        route_id=ids.new_resource_id(),
        route_key=key,
        target=f"integrations/{integration.integration_id}",
        **kwargs,
    )
    api.routes[route.route_id] = route
    return route


def ws_url(gateway: Any, api: Api, stage: str = "production", query: str = "") -> str:
    return f"{gateway.ws_url}/{api.api_id}/{stage}" + (f"?{query}" if query else "")


def management_url(gateway: Any, api: Api, stage: str = "production") -> str:
    return f"{gateway.http_url}/{api.api_id}/{stage}"


def management_client(gateway: Any, api: Api, stage: str = "production", **config: Any) -> Any:
    """An unmodified boto3 ``apigatewaymanagementapi`` client pointed at the gateway."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=management_url(gateway, api, stage),
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, **config),
    )


def connection_id_of(backend: RecordingBackend, index: int = -1) -> str:
    """The connection id the backend saw on the ``index``-th ``$connect``."""
    connects = backend.wait_for(lambda rs: any(r.path == "/connect" for r in rs))
    value = [r for r in connects if r.path == "/connect"][index].header(contract.CONNECTION_ID.name)
    assert value
    return value
