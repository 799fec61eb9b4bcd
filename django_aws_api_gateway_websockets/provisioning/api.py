"""Read the WebSocket API's actual state from ``apigatewayv2`` and plan the calls that converge
it on the desired state: API, integrations, routes, route responses, stage, deployment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from .desired import DESCRIPTION_PREFIX, ROUTE_RESPONSE_KEY, DesiredApi, DesiredRoute
from .plan import Plan, Ref, Step

SERVICE = "apigatewayv2"


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def not_found(exc: ClientError) -> bool:
    return error_code(exc) in ("NotFoundException", "ResourceNotFoundException")


def paged(call: Any, **params: Any) -> list[dict[str, Any]]:
    """Every ``Items`` of an ``apigatewayv2`` list call, following ``NextToken``."""
    items: list[dict[str, Any]] = []
    while True:
        page = call(**params)
        items += page.get("Items", [])
        token = page.get("NextToken")
        if not token:
            return items
        params["NextToken"] = token


@dataclass
class ActualApi:
    """What ``apigatewayv2`` GET calls report for one API (``api`` is None if it does not exist)."""

    api: dict[str, Any] | None = None
    integrations: dict[str, dict[str, Any]] = field(default_factory=dict)
    routes: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: route id -> its route responses
    route_responses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    stage: dict[str, Any] | None = None


def read_api(client: Any, api_id: str | None, desired: DesiredApi) -> ActualApi:
    """Read only what the plan needs; route responses only for routes that may have one."""
    actual = ActualApi()
    if not api_id:
        return actual
    try:
        actual.api = client.get_api(ApiId=api_id)
    except ClientError as exc:
        if not_found(exc):
            return actual
        raise
    actual.integrations = {
        i["IntegrationId"]: i for i in paged(client.get_integrations, ApiId=api_id)
    }
    actual.routes = {r["RouteKey"]: r for r in paged(client.get_routes, ApiId=api_id)}
    two_way = {r.route_key for r in desired.routes if r.two_way}
    for key, route in actual.routes.items():
        if key in two_way or route.get("RouteResponseSelectionExpression"):
            actual.route_responses[route["RouteId"]] = paged(
                client.get_route_responses, ApiId=api_id, RouteId=route["RouteId"]
            )
    try:
        actual.stage = client.get_stage(ApiId=api_id, StageName=desired.stage)
    except ClientError as exc:
        if not not_found(exc):
            raise
    return actual


def _integration_differences(route: DesiredRoute, actual: dict[str, Any]) -> list[str]:
    """Names of the fields that differ (values are not shown: they may carry the secret)."""
    wanted = route.integration.params()
    return [
        name
        for name, value in wanted.items()
        if (actual.get(name) or ({} if name == "RequestParameters" else None)) != value
    ]


def plan_api(
    desired: DesiredApi,
    actual: ActualApi,
    resources: dict[str, str],
    *,
    api_id: str | None,
    needs_deployment: bool,
) -> Plan:
    """The calls converging the API on ``desired``. ``resources`` maps resource keys to the ids
    of what this layer created before (its bookkeeping), so a resumed run reuses them."""
    plan = Plan()
    if actual.api is None:
        if api_id and "api" not in resources:
            raise LookupError(f"API {api_id} was not found in {desired.region}.")
        params: dict[str, Any] = {
            "Name": desired.name,
            "ProtocolType": "WEBSOCKET",
            "RouteSelectionExpression": desired.route_selection_expression,
        }
        if desired.description:
            params["Description"] = desired.description
        plan.add(Step(SERVICE, "create_api", params, "create the API", key="api"), "missing")
        api_ref: Any = Ref("api")
    else:
        api_ref = actual.api["ApiId"]
        changes: dict[str, Any] = {}
        if actual.api.get("RouteSelectionExpression") != desired.route_selection_expression:
            changes["RouteSelectionExpression"] = desired.route_selection_expression
        if actual.api.get("Name") != desired.name:
            changes["Name"] = desired.name
        if (actual.api.get("Description") or "") != desired.description:
            changes["Description"] = desired.description
        if changes:
            plan.add(
                Step(SERVICE, "update_api", {"ApiId": api_ref, **changes}, "update the API", "api"),
                "differs: " + ", ".join(sorted(changes)),
            )

    for route in desired.routes:
        _plan_route(plan, route, actual, resources, api_ref)
    _plan_removed_routes(plan, desired, actual, resources, api_ref)

    if actual.stage is None:
        plan.add(
            Step(
                SERVICE,
                "create_stage",
                {"ApiId": api_ref, "StageName": desired.stage},
                "create the stage",
                key="stage",
            ),
            "missing",
        )
    changed = any(s.service == SERVICE for s in plan.mutating_steps)
    if changed or needs_deployment:
        plan.add(
            Step(
                SERVICE,
                "create_deployment",
                {
                    "ApiId": api_ref,
                    "StageName": desired.stage,
                    "Description": f"{DESCRIPTION_PREFIX}: deploy the records",
                },
                "deploy: an undeployed change has no effect",
                key="deployment",
            ),
            "" if changed else "the last change was never deployed",
        )
    return plan


def _plan_route(
    plan: Plan, route: DesiredRoute, actual: ActualApi, resources: dict[str, str], api_ref: Any
) -> None:
    key = route.route_key
    existing = actual.routes.get(key)
    integration_id = None
    if existing and str(existing.get("Target", "")).startswith("integrations/"):
        integration_id = existing["Target"].removeprefix("integrations/")
    if integration_id not in actual.integrations:
        integration_id = None
    recorded = resources.get(f"integration:{key}")
    if integration_id is None and recorded in actual.integrations:
        integration_id = recorded  # created by a run that failed before it made the route
    ikey = f"integration:{key}"
    if integration_id is None:
        plan.add(
            Step(
                SERVICE,
                "create_integration",
                {"ApiId": api_ref, **route.integration.params(), "Description": route.description},
                f"integration for {key}",
                key=ikey,
            ),
            "missing",
        )
        target: Any = Ref(ikey, "integrations/{}")
    else:
        target = f"integrations/{integration_id}"
        diffs = _integration_differences(route, actual.integrations[integration_id])
        if diffs:
            plan.add(
                Step(
                    SERVICE,
                    "update_integration",
                    {
                        "ApiId": api_ref,
                        "IntegrationId": integration_id,
                        **route.integration.params(),
                    },
                    f"integration for {key}",
                    key=ikey,
                ),
                "differs: " + ", ".join(diffs),
            )

    rkey = f"route:{key}"
    selection = route.response_selection
    if existing is None:
        params: dict[str, Any] = {"ApiId": api_ref, "RouteKey": key, "Target": target}
        if selection:
            params["RouteResponseSelectionExpression"] = selection
        plan.add(Step(SERVICE, "create_route", params, f"route {key}", key=rkey), "missing")
        route_ref: Any = Ref(rkey)
        responses: list[dict[str, Any]] = []
    else:
        route_ref = existing["RouteId"]
        responses = actual.route_responses.get(route_ref, [])
        changes: dict[str, Any] = {}
        if existing.get("Target") != target:
            changes["Target"] = target
        if (existing.get("RouteResponseSelectionExpression") or None) != selection:
            changes["RouteResponseSelectionExpression"] = selection or ""
        if changes:
            plan.add(
                Step(
                    SERVICE,
                    "update_route",
                    {"ApiId": api_ref, "RouteId": route_ref, **changes},
                    f"route {key}",
                    key=rkey,
                ),
                "differs: " + ", ".join(sorted(changes)),
            )

    has_response = [r for r in responses if r.get("RouteResponseKey") == ROUTE_RESPONSE_KEY]
    if route.two_way and not has_response:
        plan.add(
            Step(
                SERVICE,
                "create_route_response",
                {"ApiId": api_ref, "RouteId": route_ref, "RouteResponseKey": ROUTE_RESPONSE_KEY},
                f"send {key}'s handler result to the client",
                key=f"route_response:{key}",
            ),
            "two-way route without a route response",
        )
    if not route.two_way:
        for response in has_response:
            plan.add(
                _delete_response(api_ref, route_ref, response, key, f"{key} is one-way"),
                "one-way route with a route response",
            )


def _plan_removed_routes(
    plan: Plan, desired: DesiredApi, actual: ActualApi, resources: dict[str, str], api_ref: Any
) -> None:
    """Delete what the layer created for routes no longer in the records; report the rest."""
    wanted = {r.route_key for r in desired.routes}
    for key, route in sorted(actual.routes.items()):
        if key not in wanted and resources.get(f"route:{key}") != route["RouteId"]:
            plan.notes.append(f"Route {key} is not in the records and was not created here: kept.")
    _delete_created_routes(plan, actual, resources, api_ref, keep=wanted, reason="was removed")


def plan_api_teardown(
    plan: Plan, desired: DesiredApi, actual: ActualApi, resources: dict[str, str], api_id: str
) -> None:
    """Delete the API if this layer created it; otherwise only the parts it added, then
    redeploy so the removal takes effect."""
    if resources.get("api") == api_id:
        plan.add(Step(SERVICE, "delete_api", {"ApiId": api_id}, "remove the API", key="api"))
        return
    _delete_created_routes(plan, actual, resources, api_id, keep=set(), reason="is torn down")
    if resources.get("stage") and actual.stage:
        plan.add(
            Step(
                SERVICE,
                "delete_stage",
                {"ApiId": api_id, "StageName": desired.stage},
                "remove the stage",
                key="stage",
            )
        )
    elif plan.steps and actual.stage:
        plan.add(
            Step(
                SERVICE,
                "create_deployment",
                {"ApiId": api_id, "StageName": desired.stage},
                "deploy the removal",
                key="deployment",
            )
        )


def _delete_created_routes(
    plan: Plan,
    actual: ActualApi,
    resources: dict[str, str],
    api_ref: Any,
    *,
    keep: set[str],
    reason: str,
) -> None:
    """Delete the routes (with their route responses) and integrations this layer created,
    except those for the route keys in ``keep``."""
    for key, route in sorted(actual.routes.items()):
        if key in keep or resources.get(f"route:{key}") != route["RouteId"]:
            continue
        for response in actual.route_responses.get(route["RouteId"], []):
            plan.add(_delete_response(api_ref, route["RouteId"], response, key, f"{key} {reason}"))
        plan.add(
            Step(
                SERVICE,
                "delete_route",
                {"ApiId": api_ref, "RouteId": route["RouteId"]},
                f"route {key} {reason}",
                key=f"route:{key}",
            ),
            "no longer in the records",
        )
    for rkey, integration_id in sorted(resources.items()):
        route_key = rkey.split(":", 1)[1] if rkey.startswith("integration:") else None
        if route_key is None or route_key in keep or integration_id not in actual.integrations:
            continue
        plan.add(
            Step(
                SERVICE,
                "delete_integration",
                {"ApiId": api_ref, "IntegrationId": integration_id},
                f"route {route_key} {reason}",
                key=rkey,
            ),
            "no longer in the records",
        )


def _delete_response(
    api_ref: Any, route_id: Any, response: dict[str, Any], key: str, reason: str
) -> Step:
    return Step(
        SERVICE,
        "delete_route_response",
        {"ApiId": api_ref, "RouteId": route_id, "RouteResponseId": response["RouteResponseId"]},
        reason,
        key=f"route_response:{key}",
    )
