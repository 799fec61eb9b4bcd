"""The ``apigatewayv2`` REST API of the local gateway: what boto3 and the provisioning layer call.

Requests are routed, parsed and validated from botocore's own service model (it ships with boto3),
so the wire format is exactly what an unmodified ``boto3.client("apigatewayv2",
endpoint_url=...)`` sends and expects: operations' HTTP method and ``requestUri`` give the route
table, input shapes give each member's location (URI, query string, JSON body), its camelCase
``locationName``, required members, enums and length limits, and output shapes serialise the
answers. What stays hand-written is what the model cannot say: the rules AWS applies to WebSocket
APIs (``validation``) and what each operation does to the :class:`~.store.GatewayStore`.

Errors carry AWS's ``x-amzn-ErrorType`` header and a ``{"message": ...}`` body, so botocore raises
``NotFoundException``, ``BadRequestException`` and ``ConflictException`` as it does against AWS.
Imports nothing from Django.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

import botocore.session
from aiohttp import web
from botocore.model import OperationModel, ServiceModel, Shape

from . import ids, validation
from .store import (
    Api,
    BadRequest,
    Conflict,
    Deployment,
    GatewayStore,
    Integration,
    NotFound,
    Route,
    RouteResponse,
    Stage,
    StoreError,
    now,
)

SERVICE = "apigatewayv2"
PREFIX = "/v2/"
#: A header the Django loader sends on ``CreateApi`` so an API keeps the id its ``ApiGateway``
#: record holds (AWS would ignore it; boto3 users never send it).
PRESERVE_API_ID_HEADER = "X-Local-Gateway-Api-Id"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
_LENGTH_IN_NAME = re.compile(r"LengthBetween(\d+)And(\d+)$")
_API_ID = re.compile(r"^[a-z0-9]{1,32}$")


class UnsupportedOperation(StoreError):
    error_type = "BadRequestException"
    status = 400


@functools.lru_cache(maxsize=1)
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model(SERVICE)


# -- the route table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One ``apigatewayv2`` operation as the model describes it, with a regex for its URI."""

    model: OperationModel
    method: str
    pattern: re.Pattern[str]
    #: regex group name -> the URI label in the model (``apiId``, ``resource-arn``…)
    labels: dict[str, str]

    @property
    def name(self) -> str:
        name: str = self.model.name
        return name

    @property
    def status(self) -> int:
        return int(self.model.http.get("responseCode", 200))


def _compile(request_uri: str) -> tuple[re.Pattern[str], dict[str, str]]:
    path = request_uri.split("?", 1)[0]
    labels: dict[str, str] = {}
    parts = []
    for index, piece in enumerate(re.split(r"(\{[^}]+\})", path)):
        if piece.startswith("{") and piece.endswith("}"):
            label = piece[1:-1]
            greedy = label.endswith("+")
            group = f"g{index}"
            labels[group] = label.rstrip("+")
            parts.append(f"(?P<{group}>{'.+' if greedy else '[^/]+'})")
        else:
            parts.append(re.escape(piece))
    return re.compile("^" + "".join(parts) + "/?$"), labels


@functools.lru_cache(maxsize=1)
def route_table() -> tuple[Operation, ...]:
    """Every operation of the service, most specific URI first (literal segments beat labels)."""
    model = service_model()
    table = []
    for name in model.operation_names:
        op = model.operation_model(name)
        pattern, labels = _compile(op.http["requestUri"])
        table.append(Operation(op, op.http["method"].upper(), pattern, labels))
    table.sort(
        key=lambda o: (o.model.http["requestUri"].count("{"), -len(o.model.http["requestUri"]))
    )
    return tuple(table)


def match(method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
    for op in route_table():
        found = op.pattern.match(path)
        if found and op.method == method:
            return op, {op.labels[g]: unquote(v) for g, v in found.groupdict().items()}
    return None


# -- parsing and validating input against the model ---------------------------------------------


def _bad(path: str, message: str) -> BadRequest:
    return BadRequest(f"Invalid input for '{path}': {message}")


def _length_bounds(shape: Shape) -> tuple[int | None, int | None]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    found = _LENGTH_IN_NAME.search(shape.name)
    if found and shape.type_name == "string":
        low, high = int(found.group(1)), int(found.group(2))
    return low, high


def convert(shape: Shape, value: Any, path: str) -> Any:
    """``value`` checked against ``shape`` (types, enums, bounds, required members), with JSON
    keys turned into member names (``requestParameters`` becomes ``RequestParameters``)."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise _bad(path, "must be an object")
        out = {}
        for name, member in shape.members.items():
            key = member.serialization.get("name", name)
            if key in value and value[key] is not None:
                out[name] = convert(member, value[key], f"{path}.{name}")
        for name in shape.required_members:
            if name not in out:
                raise _bad(f"{path}.{name}", "is required")
        return out
    if kind == "list":
        if not isinstance(value, list):
            raise _bad(path, "must be a list")
        return [convert(shape.member, item, f"{path}[{i}]") for i, item in enumerate(value)]
    if kind == "map":
        if not isinstance(value, dict):
            raise _bad(path, "must be an object")
        return {
            convert(shape.key, k, f"{path} key"): convert(shape.value, v, f"{path}.{k}")
            for k, v in value.items()
        }
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _bad(path, "must be a boolean")
        return value
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(path, "must be an integer")
        low, high = _length_bounds(shape)
        if (low is not None and value < low) or (high is not None and value > high):
            raise _bad(path, f"must be between {low} and {high}")
        return value
    if kind in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(path, "must be a number")
        return value
    if kind in ("string", "timestamp"):
        if not isinstance(value, str):
            raise _bad(path, "must be a string")
        enum = getattr(shape, "enum", None) or []
        if enum and value not in enum:
            raise _bad(path, f"must be one of {', '.join(enum)}")
        low, high = _length_bounds(shape)
        if (low is not None and len(value) < low) or (high is not None and len(value) > high):
            raise _bad(path, f"length must be between {low} and {high}")
        return value
    return value


def _scalar_from_text(shape: Shape, text: str, path: str) -> Any:
    """URI and query-string values arrive as text; the model says what they are."""
    if shape.type_name in ("integer", "long"):
        try:
            return convert(shape, int(text), path)
        except ValueError:
            raise _bad(path, "must be an integer") from None
    if shape.type_name == "boolean":
        if text not in ("true", "false"):
            raise _bad(path, "must be true or false")
        return text == "true"
    return convert(shape, text, path)


def parse_input(
    op: Operation,
    labels: dict[str, str],
    query: Any,
    headers: Any,
    body: bytes,
) -> dict[str, Any]:
    """The operation's parameters by member name, as boto3's caller passed them."""
    shape = op.model.input_shape
    if shape is None:
        return {}
    document: dict[str, Any] = {}
    if body.strip():
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("The request body is not valid JSON.") from None
        if not isinstance(document, dict):
            raise BadRequest("The request body must be a JSON object.")
    params: dict[str, Any] = {}
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        key = member.serialization.get("name", name)
        if location == "uri":
            if key in labels:
                params[name] = _scalar_from_text(member, labels[key], name)
        elif location == "querystring":
            if key in query:
                params[name] = _scalar_from_text(member, query[key], name)
        elif location == "header":
            if key in headers:
                params[name] = _scalar_from_text(member, headers[key], name)
        elif key in document and document[key] is not None:
            params[name] = convert(member, document[key], name)
    for name in shape.required_members:
        if name not in params or params[name] == "":
            raise BadRequest(f"Invalid input: '{name}' is required.")
    return params


# -- serialising output from the model -----------------------------------------------------------


def _iso(value: datetime) -> str:
    value = value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def serialise(shape: Shape, value: Any) -> Any:
    kind = shape.type_name
    if kind == "structure":
        out = {}
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                out[member.serialization.get("name", name)] = serialise(member, value[name])
        return out
    if kind == "list":
        return [serialise(shape.member, item) for item in value]
    if kind == "map":
        return {k: serialise(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        return _iso(value) if isinstance(value, datetime) else value
    return value


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def describe(obj: Any, shape: Shape, **computed: Any) -> dict[str, Any]:
    """A store object as the output shape's members: dataclass fields by their snake_case
    names, then what was stored in ``extra``; empty values are left out, as AWS leaves them."""
    fields = {f.name for f in dataclasses.fields(obj)}
    out: dict[str, Any] = {}
    for name in shape.members:
        if name in computed:
            value = computed[name]
        elif _snake(name) in fields:
            value = getattr(obj, _snake(name))
        else:
            value = obj.extra.get(name)
        if value is None or (value == "" or value == {} or value == []):
            continue
        out[name] = value
    return out


def assign(obj: Any, params: dict[str, Any], skip: Iterable[str] = ()) -> None:
    """Write parameters onto a store object: known fields by name, the rest into ``extra``."""
    fields = {f.name for f in dataclasses.fields(obj)}
    skipped = set(skip)
    for name, value in params.items():
        if name in skipped:
            continue
        if _snake(name) in fields and _snake(name) != "extra":
            setattr(obj, _snake(name), value)
        elif value == "" or value is None:
            obj.extra.pop(name, None)
        else:
            obj.extra[name] = value


# -- pagination ------------------------------------------------------------------------------------


def page(items: list[Any], params: dict[str, Any]) -> tuple[list[Any], str | None]:
    """``MaxResults``/``NextToken`` over a list kept in creation order."""
    size = DEFAULT_PAGE_SIZE
    if "MaxResults" in params:
        try:
            size = int(params["MaxResults"])
        except ValueError:
            raise BadRequest("MaxResults must be a number.") from None
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise BadRequest(f"MaxResults must be between 1 and {MAX_PAGE_SIZE}.")
    start = 0
    if params.get("NextToken"):
        try:
            start = int(base64.urlsafe_b64decode(params["NextToken"].encode()).decode())
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise BadRequest("Invalid NextToken.") from None
        if not 0 <= start <= len(items):
            raise BadRequest("Invalid NextToken.")
    chunk = items[start : start + size]
    end = start + len(chunk)
    token = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return chunk, token


# -- operations ------------------------------------------------------------------------------------

Result = dict[str, Any] | None
Handler = Callable[["Context", dict[str, Any]], Result]


@dataclass
class Context:
    store: GatewayStore
    operation: Operation
    headers: Any

    def output(self, obj: Any, **computed: Any) -> dict[str, Any]:
        shape = self.operation.model.output_shape
        return describe(obj, shape, **computed) if shape is not None else {}

    def items(self, objects: list[Any], params: dict[str, Any], **computed: Any) -> dict[str, Any]:
        chunk, token = page(objects, params)
        item_shape = self.operation.model.output_shape.members["Items"].member
        result: dict[str, Any] = {
            "Items": [
                describe(o, item_shape, **{k: f(o) for k, f in computed.items()}) for o in chunk
            ]
        }
        if token:
            result["NextToken"] = token
        return result


HANDLERS: dict[str, Handler] = {}


def handles(name: str) -> Callable[[Handler], Handler]:
    def register(function: Handler) -> Handler:
        if name not in service_model().operation_names:
            raise LookupError(f"{name} is not an {SERVICE} operation")
        HANDLERS[name] = function
        return function

    return register


def _changed(ctx: Context, api: Api) -> None:
    """Routes or integrations changed: stages with ``AutoDeploy`` redeploy, as in AWS."""
    ctx.store.redeploy_auto_stages(api)


# APIs


def _api_output(ctx: Context, api: Api) -> dict[str, Any]:
    return ctx.output(api, ApiEndpoint=ctx.store.api_endpoint(api.api_id), ApiGatewayManaged=False)


@handles("CreateApi")
def create_api(ctx: Context, params: dict[str, Any]) -> Result:
    validation.api(params, creating=True)
    wanted = ctx.headers.get(PRESERVE_API_ID_HEADER, "")
    if wanted and not _API_ID.match(wanted):
        raise BadRequest(f"{PRESERVE_API_ID_HEADER} must be lowercase letters and digits.")
    if wanted and wanted in ctx.store.apis:
        raise Conflict(f"An API with id {wanted} already exists.")
    api = Api(api_id=wanted, name=params["Name"])
    assign(api, params)
    return _api_output(ctx, ctx.store.add_api(api))


@handles("GetApi")
def get_api(ctx: Context, params: dict[str, Any]) -> Result:
    return _api_output(ctx, ctx.store.get_api(params["ApiId"]))


@handles("GetApis")
def get_apis(ctx: Context, params: dict[str, Any]) -> Result:
    store = ctx.store
    return ctx.items(
        list(store.apis.values()),
        params,
        ApiEndpoint=lambda a: store.api_endpoint(a.api_id),
        ApiGatewayManaged=lambda a: False,
    )


@handles("UpdateApi")
def update_api(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    validation.api(params, creating=False)
    selection = api.route_selection_expression
    assign(api, params, skip={"ApiId"})
    if api.route_selection_expression != selection:
        _changed(ctx, api)
    return _api_output(ctx, api)


@handles("DeleteApi")
def delete_api(ctx: Context, params: dict[str, Any]) -> Result:
    ctx.store.get_api(params["ApiId"])
    del ctx.store.apis[params["ApiId"]]
    return None


# Integrations


def _integration(api: Api, integration_id: str) -> Integration:
    try:
        return api.integrations[integration_id]
    except KeyError:
        raise NotFound(f"Invalid Integration identifier specified {integration_id}") from None


@handles("CreateIntegration")
def create_integration(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    integration = Integration(
        integration_id=ids.new_resource_id(), integration_type=params["IntegrationType"]
    )
    assign(integration, params, skip={"ApiId"})
    validation.integration(integration)
    api.integrations[integration.integration_id] = integration
    _changed(ctx, api)
    return ctx.output(integration, ApiGatewayManaged=False)


@handles("GetIntegration")
def get_integration(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    return ctx.output(_integration(api, params["IntegrationId"]), ApiGatewayManaged=False)


@handles("GetIntegrations")
def get_integrations(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    return ctx.items(list(api.integrations.values()), params, ApiGatewayManaged=lambda i: False)


@handles("UpdateIntegration")
def update_integration(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    current = _integration(api, params["IntegrationId"])
    updated = dataclasses.replace(current, extra=dict(current.extra))
    assign(updated, params, skip={"ApiId", "IntegrationId"})
    validation.integration(updated)
    api.integrations[updated.integration_id] = updated
    _changed(ctx, api)
    return ctx.output(updated, ApiGatewayManaged=False)


@handles("DeleteIntegration")
def delete_integration(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    integration = _integration(api, params["IntegrationId"])
    users = sorted(
        r.route_key
        for r in api.routes.values()
        if r.target.endswith("/" + integration.integration_id)
    )
    if users:
        raise Conflict(
            f"Integration {integration.integration_id} is the target of route(s) "
            f"{', '.join(users)}; delete or retarget them first."
        )
    del api.integrations[integration.integration_id]
    _changed(ctx, api)
    return None


# Routes


def _route(api: Api, route_id: str) -> Route:
    try:
        return api.routes[route_id]
    except KeyError:
        raise NotFound(f"Invalid Route identifier specified {route_id}") from None


def _check_route(api: Api, route: Route) -> None:
    validation.route(route)
    if any(
        r.route_key == route.route_key and r.route_id != route.route_id for r in api.routes.values()
    ):
        raise Conflict(f"Route with key {route.route_key} already exists for this API")
    if route.target and route.integration_id not in api.integrations:
        raise NotFound(f"Invalid Integration identifier specified {route.integration_id}")


@handles("CreateRoute")
def create_route(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    route = Route(route_id=ids.new_resource_id(), route_key=params["RouteKey"])
    assign(route, params, skip={"ApiId"})
    _check_route(api, route)
    api.routes[route.route_id] = route
    _changed(ctx, api)
    return ctx.output(route, ApiGatewayManaged=False)


@handles("GetRoute")
def get_route(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    return ctx.output(_route(api, params["RouteId"]), ApiGatewayManaged=False)


@handles("GetRoutes")
def get_routes(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    return ctx.items(list(api.routes.values()), params, ApiGatewayManaged=lambda r: False)


@handles("UpdateRoute")
def update_route(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    current = _route(api, params["RouteId"])
    updated = dataclasses.replace(current, extra=dict(current.extra))
    assign(updated, params, skip={"ApiId", "RouteId"})
    _check_route(api, updated)
    api.routes[updated.route_id] = updated
    _changed(ctx, api)
    return ctx.output(updated, ApiGatewayManaged=False)


@handles("DeleteRoute")
def delete_route(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    del api.routes[_route(api, params["RouteId"]).route_id]
    _changed(ctx, api)
    return None


# Route responses


def _route_response(route: Route, response_id: str) -> RouteResponse:
    try:
        return route.route_responses[response_id]
    except KeyError:
        raise NotFound(f"Invalid RouteResponse identifier specified {response_id}") from None


@handles("CreateRouteResponse")
def create_route_response(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    route = _route(api, params["RouteId"])
    response = RouteResponse(
        route_response_id=ids.new_resource_id(), route_response_key=params["RouteResponseKey"]
    )
    assign(response, params, skip={"ApiId", "RouteId"})
    validation.route_response(response)
    if any(
        r.route_response_key == response.route_response_key for r in route.route_responses.values()
    ):
        raise Conflict(f"RouteResponse with key {response.route_response_key} already exists")
    route.route_responses[response.route_response_id] = response
    _changed(ctx, api)
    return ctx.output(response)


@handles("GetRouteResponse")
def get_route_response(ctx: Context, params: dict[str, Any]) -> Result:
    route = _route(ctx.store.get_api(params["ApiId"]), params["RouteId"])
    return ctx.output(_route_response(route, params["RouteResponseId"]))


@handles("GetRouteResponses")
def get_route_responses(ctx: Context, params: dict[str, Any]) -> Result:
    route = _route(ctx.store.get_api(params["ApiId"]), params["RouteId"])
    return ctx.items(list(route.route_responses.values()), params)


@handles("UpdateRouteResponse")
def update_route_response(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    route = _route(api, params["RouteId"])
    response = _route_response(route, params["RouteResponseId"])
    updated = dataclasses.replace(response, extra=dict(response.extra))
    assign(updated, params, skip={"ApiId", "RouteId", "RouteResponseId"})
    validation.route_response(updated)
    route.route_responses[updated.route_response_id] = updated
    _changed(ctx, api)
    return ctx.output(updated)


@handles("DeleteRouteResponse")
def delete_route_response(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    route = _route(api, params["RouteId"])
    del route.route_responses[_route_response(route, params["RouteResponseId"]).route_response_id]
    _changed(ctx, api)
    return None


# Deployments


def _deployment(api: Api, deployment_id: str) -> Deployment:
    try:
        return api.deployments[deployment_id]
    except KeyError:
        raise NotFound(f"Invalid Deployment identifier specified {deployment_id}") from None


def _deploy(ctx: Context, api: Api, description: str = "") -> Deployment:
    if not api.routes:
        raise BadRequest("At least one route is required before deploying the Api.")
    untargeted = sorted(r.route_key for r in api.routes.values() if not r.target)
    if untargeted:
        raise BadRequest(f"Route(s) {', '.join(untargeted)} have no integration target.")
    return ctx.store.deploy(api, description)


@handles("CreateDeployment")
def create_deployment(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    stage = None
    if params.get("StageName"):
        stage = _stage(api, params["StageName"])
        if stage.auto_deploy:
            raise BadRequest(f"Stage {stage.stage_name} has AutoDeploy enabled: it deploys itself.")
    deployment = _deploy(ctx, api, params.get("Description", ""))
    if stage is not None:
        stage.deployment_id = deployment.deployment_id
        stage.last_updated_date = now()
    return ctx.output(deployment)


@handles("GetDeployment")
def get_deployment(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    return ctx.output(_deployment(api, params["DeploymentId"]))


@handles("GetDeployments")
def get_deployments(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    return ctx.items(list(api.deployments.values()), params)


@handles("UpdateDeployment")
def update_deployment(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    deployment = _deployment(api, params["DeploymentId"])
    if "Description" in params:
        deployment.description = params["Description"]
    return ctx.output(deployment)


@handles("DeleteDeployment")
def delete_deployment(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    deployment = _deployment(api, params["DeploymentId"])
    active = sorted(
        s.stage_name for s in api.stages.values() if s.deployment_id == deployment.deployment_id
    )
    if active:
        raise BadRequest(
            "Active stages pointing to this deployment must be moved or deleted: "
            + ", ".join(active)
        )
    del api.deployments[deployment.deployment_id]
    return None


# Stages


def _stage(api: Api, stage_name: str) -> Stage:
    try:
        return api.stages[stage_name]
    except KeyError:
        raise NotFound(f"Invalid stage identifier specified {stage_name}") from None


def _stage_output(ctx: Context, stage: Stage) -> dict[str, Any]:
    return ctx.output(stage, ApiGatewayManaged=False)


def _route_settings_name_routes(api: Api, stage: Stage) -> None:
    keys = {r.route_key for r in api.routes.values()}
    unknown = sorted(set(stage.route_settings) - keys)
    if unknown:
        raise BadRequest(
            f"Unable to find Route by key {unknown[0]} within the provided RouteSettings"
        )


def _no_deployment_with_auto_deploy(stage: Stage, params: dict[str, Any]) -> None:
    """An ``AutoDeploy`` stage deploys itself: AWS refuses a ``DeploymentId`` for it."""
    if stage.auto_deploy and params.get("DeploymentId"):
        raise BadRequest(
            f"Stage {stage.stage_name} has AutoDeploy enabled: it cannot take a DeploymentId."
        )


@handles("CreateStage")
def create_stage(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    stage = Stage(stage_name=params["StageName"])
    assign(stage, params, skip={"ApiId"})
    validation.stage(stage)
    _no_deployment_with_auto_deploy(stage, params)
    _route_settings_name_routes(api, stage)
    if stage.stage_name in api.stages:
        raise Conflict(f"Stage {stage.stage_name} already exists")
    if stage.deployment_id:
        _deployment(api, stage.deployment_id)
    api.stages[stage.stage_name] = stage
    if stage.auto_deploy and api.routes:
        stage.deployment_id = _deploy(ctx, api).deployment_id
        api.deployments[stage.deployment_id].auto_deployed = True
    return _stage_output(ctx, stage)


@handles("GetStage")
def get_stage(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    return _stage_output(ctx, _stage(api, params["StageName"]))


@handles("GetStages")
def get_stages(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    return ctx.items(list(api.stages.values()), params, ApiGatewayManaged=lambda s: False)


@handles("UpdateStage")
def update_stage(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    current = _stage(api, params["StageName"])
    updated = dataclasses.replace(current, extra=dict(current.extra))
    assign(updated, params, skip={"ApiId", "StageName"})
    validation.stage(updated)
    _no_deployment_with_auto_deploy(updated, params)
    _route_settings_name_routes(api, updated)
    if updated.deployment_id and updated.deployment_id != current.deployment_id:
        _deployment(api, updated.deployment_id)
    updated.last_updated_date = now()
    api.stages[updated.stage_name] = updated
    if updated.auto_deploy and not current.auto_deploy and api.routes:
        _changed(ctx, api)
    return _stage_output(ctx, updated)


@handles("DeleteStage")
def delete_stage(ctx: Context, params: dict[str, Any]) -> Result:
    api = ctx.store.get_api(params["ApiId"])
    del api.stages[_stage(api, params["StageName"]).stage_name]
    return None


def supported_operations() -> list[str]:
    return sorted(HANDLERS)


# -- HTTP ------------------------------------------------------------------------------------------


def error_response(error: StoreError) -> web.Response:
    """AWS's error shape: botocore reads the code from the header and the message from the body."""
    return web.json_response(
        {"message": str(error)},
        status=error.status,
        headers={"x-amzn-ErrorType": error.error_type},
    )


async def dispatch(request: web.Request) -> web.Response:
    store: GatewayStore = request.app[STORE_KEY]
    body = await request.read()
    # The raw path: a label may hold an encoded "/" (an ARN in /v2/tags/{resource-arn}).
    found = match(request.method, request.raw_path.split("?", 1)[0])
    try:
        if found is None:
            raise NotFound(f"No {SERVICE} operation is {request.method} {request.path}")
        op, labels = found
        handler = HANDLERS.get(op.name)
        if handler is None:
            raise UnsupportedOperation(
                f"{op.name}: operation not supported by the local gateway (it serves "
                f"{', '.join(supported_operations())})."
            )
        params = parse_input(op, labels, request.query, request.headers, body)
        with store.lock:
            result = handler(Context(store, op, request.headers), params)
    except StoreError as error:
        return error_response(error)
    shape = op.model.output_shape
    if result is None or shape is None:
        return web.Response(status=op.status)
    return web.json_response(serialise(shape, result), status=op.status)


STORE_KEY: web.AppKey[GatewayStore] = web.AppKey("control_plane_store", GatewayStore)


def add_routes(app: web.Application, store: GatewayStore) -> None:
    """Serve the control plane under ``/v2/`` of ``app``, backed by ``store``."""
    app[STORE_KEY] = store
    route_table()  # build it now, not on the first request
    app.router.add_route("*", PREFIX + "{tail:.*}", dispatch)
