"""The gateway's configuration: APIs with their routes, integrations, stages and deployments.

The control plane writes it (boto3 ``apigatewayv2`` calls); the data plane only reads what a stage
has deployed. Like AWS, a deployment freezes the API's routes and integrations: edits after it do
nothing until the next ``CreateDeployment`` (or an ``AutoDeploy`` stage redeploys).

Plain dataclasses with AWS's field meanings (snake_case of the API's PascalCase). No Django import.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from . import ids


def now() -> datetime:
    return datetime.now(timezone.utc)


class StoreError(Exception):
    """Base class: the control plane turns each into AWS's ``x-amzn-ErrorType``."""

    error_type = "BadRequestException"
    status = 400


class NotFound(StoreError):
    error_type = "NotFoundException"
    status = 404


class Conflict(StoreError):
    error_type = "ConflictException"
    status = 409


class BadRequest(StoreError):
    error_type = "BadRequestException"
    status = 400


@dataclass
class Integration:
    integration_id: str
    integration_type: str
    integration_uri: str = ""
    integration_method: str = ""
    connection_type: str = "INTERNET"
    description: str = ""
    request_parameters: dict[str, str] = field(default_factory=dict)
    request_templates: dict[str, str] = field(default_factory=dict)
    template_selection_expression: str = ""
    passthrough_behavior: str = ""
    content_handling_strategy: str = ""
    timeout_in_millis: int = 29_000
    integration_response_selection_expression: str = ""
    #: Other members of AWS's shape (PascalCase), stored and echoed back as given.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RouteResponse:
    route_response_id: str
    route_response_key: str
    model_selection_expression: str = ""
    response_models: dict[str, str] = field(default_factory=dict)
    response_parameters: dict[str, Any] = field(default_factory=dict)
    #: Other members of AWS's shape (PascalCase), stored and echoed back as given.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Route:
    route_id: str
    route_key: str
    target: str = ""  # "integrations/<integration_id>" or ""
    authorization_type: str = "NONE"
    api_key_required: bool = False
    operation_name: str = ""
    route_response_selection_expression: str = ""
    model_selection_expression: str = ""
    request_models: dict[str, str] = field(default_factory=dict)
    request_parameters: dict[str, Any] = field(default_factory=dict)
    route_responses: dict[str, RouteResponse] = field(default_factory=dict)
    #: Other members of AWS's shape (PascalCase), stored and echoed back as given.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def integration_id(self) -> str | None:
        prefix = "integrations/"
        return self.target[len(prefix) :] if self.target.startswith(prefix) else None

    @property
    def two_way(self) -> bool:
        """A route with a ``$default`` route response sends the integration's answer back."""
        return any(r.route_response_key == "$default" for r in self.route_responses.values())


@dataclass(frozen=True)
class Snapshot:
    """What a deployment froze: the routes (by key) and integrations (by id) of the API."""

    routes: dict[str, Route]
    integrations: dict[str, Integration]
    route_selection_expression: str


@dataclass
class Deployment:
    deployment_id: str
    snapshot: Snapshot
    description: str = ""
    created_date: datetime = field(default_factory=now)
    deployment_status: str = "DEPLOYED"
    auto_deployed: bool = False
    #: Other members of AWS's shape (PascalCase), stored and echoed back as given.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Stage:
    stage_name: str
    deployment_id: str = ""
    description: str = ""
    stage_variables: dict[str, str] = field(default_factory=dict)
    default_route_settings: dict[str, Any] = field(default_factory=dict)
    route_settings: dict[str, Any] = field(default_factory=dict)
    auto_deploy: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    created_date: datetime = field(default_factory=now)
    last_updated_date: datetime = field(default_factory=now)
    #: Other members of AWS's shape (PascalCase), stored and echoed back as given.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Api:
    api_id: str
    name: str
    protocol_type: str = "WEBSOCKET"
    route_selection_expression: str = "$request.body.action"
    api_key_selection_expression: str = "$request.header.x-api-key"
    description: str = ""
    disable_execute_api_endpoint: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    created_date: datetime = field(default_factory=now)
    integrations: dict[str, Integration] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)  # by route_id
    deployments: dict[str, Deployment] = field(default_factory=dict)
    stages: dict[str, Stage] = field(default_factory=dict)
    #: Other members of AWS's shape (PascalCase), stored and echoed back as given.
    extra: dict[str, Any] = field(default_factory=dict)

    def snapshot(self) -> Snapshot:
        routes = {r.route_key: copy.deepcopy(r) for r in self.routes.values()}
        return Snapshot(
            routes=routes,
            integrations=copy.deepcopy(self.integrations),
            route_selection_expression=self.route_selection_expression,
        )


@dataclass(frozen=True)
class DeployedStage:
    """What the data plane serves for ``/{stage}`` of an API: its last deployment and variables."""

    api_id: str
    stage_name: str
    stage_variables: dict[str, str]
    snapshot: Snapshot


class GatewayStore:
    """All APIs of one gateway process. Thread-safe; the control plane holds ``lock`` per call."""

    def __init__(self, base_url: str = "") -> None:
        #: ``ws://127.0.0.1:<port>``: an API's ``ApiEndpoint`` is ``<base_url>/<api_id>``.
        self.base_url = base_url
        self.apis: dict[str, Api] = {}
        self.lock = threading.RLock()

    def api_endpoint(self, api_id: str) -> str:
        return f"{self.base_url}/{api_id}"

    def get_api(self, api_id: str) -> Api:
        try:
            return self.apis[api_id]
        except KeyError:
            raise NotFound(f"Invalid API identifier specified {api_id}") from None

    def add_api(self, api: Api) -> Api:
        with self.lock:
            if not api.api_id:
                api.api_id = ids.new_api_id()
            self.apis[api.api_id] = api
            return api

    def deploy(self, api: Api, description: str = "", *, auto: bool = False) -> Deployment:
        """Freeze the API's routes and integrations as a new deployment."""
        with self.lock:
            deployment = Deployment(
                deployment_id=ids.new_deployment_id(),
                snapshot=api.snapshot(),
                description=description,
                auto_deployed=auto,
            )
            api.deployments[deployment.deployment_id] = deployment
            return deployment

    def redeploy_auto_stages(self, api: Api) -> None:
        """After any change to routes or integrations, as AWS does for ``AutoDeploy`` stages."""
        with self.lock:
            auto = [stage for stage in api.stages.values() if stage.auto_deploy]
            if auto:
                deployment = self.deploy(api, auto=True)
                for stage in auto:
                    stage.deployment_id = deployment.deployment_id
                    stage.last_updated_date = now()

    def deployed(self, api_id: str, stage_name: str) -> DeployedStage | None:
        """The data plane's lookup; ``None`` when the API, stage or deployment does not exist."""
        with self.lock:
            api = self.apis.get(api_id)
            stage = api.stages.get(stage_name) if api else None
            deployment = api.deployments.get(stage.deployment_id) if api and stage else None
            if api is None or stage is None or deployment is None:
                return None
            return DeployedStage(
                api_id=api_id,
                stage_name=stage_name,
                stage_variables=dict(stage.stage_variables),
                snapshot=deployment.snapshot,
            )
