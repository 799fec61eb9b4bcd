"""Plan, apply, check and tear down one ``ApiGateway`` record's AWS resources.

Apply claims the record (one atomic UPDATE, so it works on SQLite as well as PostgreSQL), runs the
plan's calls in order and writes every id it gets back to the database straight away: a run that
fails part-way leaves the ids of what it made, and the next run picks up from there instead of
creating anything twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.db.models import Q
from django.utils import timezone

from ..conf import ws_settings
from ..models import ApiGateway, ApiGatewayAdditionalRoute
from . import clients
from .api import SERVICE, plan_api, plan_api_teardown, read_api
from .clients import ClientFactory
from .desired import DesiredApi, desired_api
from .domain import plan_domain, plan_domain_teardown, read_domain
from .plan import Difference, Plan, Step, resolve

Progress = Callable[[str], None]
Status = ApiGateway.ProvisioningStatus
#: Changes that take effect without a deployment (the deployment itself, the custom domain).
NOT_DEPLOYED = {"deployment", "domain", "api_mapping"}
#: Bookkeeping that outlives the API (the domain part is torn down on its own).
DOMAIN_RESOURCES = {"certificate", "certificate_token", "domain", "validation_record"}


class ProvisioningError(Exception):
    """An AWS call or a precondition failed; the message is meant for the user."""


class Busy(ProvisioningError):
    """Another run holds the record."""


def aws_message(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        op = exc.operation_name
        return f"{op}: {error.get('Code', 'Error')}: {error.get('Message', '')}".rstrip(": ")
    return str(exc)


class Provisioner:
    """The plan/apply layer for one record. No AWS call happens until a method is called."""

    def __init__(
        self,
        gateway: ApiGateway,
        *,
        client_factory: ClientFactory | None = None,
        progress: Progress | None = None,
        sleep: Callable[[float], None] = time.sleep,
        trace: Progress | None = None,
    ) -> None:
        self.gateway = gateway
        # Looked up at call time so one place (clients.make_client) decides for every caller.
        self.client_factory = client_factory or clients.make_client
        self.progress = progress or (lambda line: None)
        self.sleep = sleep
        #: Called with ``service.Operation`` before every AWS call, reads included.
        self.trace = trace
        self._clients: dict[str, Any] = {}
        self.refs: dict[str, Any] = {}

    # -- clients -------------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        if service not in self._clients:
            client = self.client_factory(service, self.gateway.region)
            if self.trace:
                trace = self.trace
                client.meta.events.register(
                    f"before-call.{client.meta.service_model.service_name}",
                    lambda model, **kwargs: trace(f"  AWS call: {service}.{model.name}"),
                )
            self._clients[service] = client
        return self._clients[service]

    @property
    def all_clients(self) -> dict[str, Any]:
        return {name: self.client(name) for name in ("apigatewayv2", "acm", "route53")}

    @property
    def resources(self) -> dict[str, str]:
        resources: dict[str, str] = self.gateway.aws_resources
        return resources

    # -- planning ------------------------------------------------------------------------------

    def plan(self, *, scope: str = "all") -> Plan:
        """Read AWS and return the calls that would make it match the records (none if it does).

        ``scope`` is ``"all"``, ``"api"`` (skip the custom domain) or ``"domain"``.
        """
        try:
            return self._plan(scope)
        except (ClientError, BotoCoreError, LookupError) as exc:
            raise ProvisioningError(aws_message(exc)) from exc

    def _plan(self, scope: str) -> Plan:
        desired = desired_api(self.gateway)
        self.refs = {}
        api_id = self.gateway.api_id
        if scope == "domain" and not api_id:
            raise LookupError("The API does not exist yet: run apply first.")
        actual = read_api(self.client(SERVICE), api_id, desired)
        plan = plan_api(
            desired,
            actual,
            self.resources,
            api_id=api_id,
            needs_deployment=bool(actual.api) and not self.gateway.deployment_id,
        )
        if actual.api:
            self.refs["api"] = actual.api["ApiId"]
        if scope == "domain":
            plan = Plan(notes=plan.notes)
        if desired.domain and scope != "api":
            domain = read_domain(self.all_clients, desired.domain, self.resources)
            plan_domain(plan, desired, domain, self.resources, self.refs.get("api"), self.refs)
            if plan.steps and self.refs.get("api") is None:
                _replace_api_refs(plan)
        return plan

    def drift(self) -> list[Difference]:
        """How AWS differs from the records; empty when they match."""
        if not self.gateway.api_id:
            return [Difference("api", "not provisioned")]
        return self.plan().differences

    # -- applying ------------------------------------------------------------------------------

    def apply(self, *, scope: str = "all") -> Plan:
        """Converge AWS on the records and return the plan that was run."""
        self._claim()
        try:
            plan = self._plan(scope)
            for step in plan.steps:
                self._run(step)
        except (ClientError, BotoCoreError, LookupError, KeyError, ProvisioningError) as exc:
            self._finish(Status.FAILED, aws_message(exc))
            raise ProvisioningError(aws_message(exc)) from exc
        except BaseException as exc:
            self._finish(Status.FAILED, str(exc) or exc.__class__.__name__)
            raise
        self._finish(Status.PROVISIONED, "")
        return plan

    def teardown(self) -> Plan:
        """Delete everything this layer created for the record, in dependency order."""
        self._claim()
        try:
            plan = self._teardown_plan()
            for step in plan.steps:
                self._run(step)
        except (ClientError, BotoCoreError, LookupError, KeyError) as exc:
            self._finish(Status.FAILED, aws_message(exc))
            raise ProvisioningError(aws_message(exc)) from exc
        self._finish(Status.NOT_PROVISIONED, "")
        return plan

    def teardown_plan(self) -> Plan:
        try:
            return self._teardown_plan()
        except (ClientError, BotoCoreError) as exc:
            raise ProvisioningError(aws_message(exc)) from exc

    def _teardown_plan(self) -> Plan:
        desired = desired_api(self.gateway)
        plan = Plan()
        if desired.domain:
            actual_domain = read_domain(
                self.all_clients, desired.domain, self.resources, teardown=True
            )
            plan_domain_teardown(plan, desired.domain, actual_domain, self.resources)
        api_id = self.gateway.api_id
        actual = read_api(self.client(SERVICE), api_id, _all_two_way(desired))
        if actual.api is None or not api_id:
            return plan
        plan_api_teardown(plan, desired, actual, self.resources, api_id)
        return plan

    # -- one step ------------------------------------------------------------------------------

    def _run(self, step: Step) -> None:
        params = resolve(step.params, self.refs)
        if step.wait:
            self._wait(step, params)
            return
        if step.mutating and step.service == SERVICE and step.key not in NOT_DEPLOYED:
            self._save(deployment_id="")  # undeployed from now until the deployment succeeds
        if step.operation == "request_certificate":
            resources = {**self.resources, "certificate_token": params["IdempotencyToken"]}
            self._save(aws_resources=resources)
        self.progress(step.describe(_secrets()))
        response = getattr(self.client(step.service), step.operation)(**params)
        self._record(step, params, response)

    def _wait(self, step: Step, params: dict[str, Any]) -> None:
        limit = float(ws_settings.CERTIFICATE_WAIT_SECONDS)
        interval = float(ws_settings.CERTIFICATE_POLL_SECONDS)
        deadline = time.monotonic() + limit
        shown = False
        while True:
            self.progress(f"{step.service}.{step.operation}({params})  # {step.reason}")
            response = getattr(self.client(step.service), step.operation)(**params)
            self._save()  # heartbeat: the claim stays fresh during long waits
            if step.wait == "insync":
                if response["ChangeInfo"]["Status"] == "INSYNC":
                    return
            else:
                cert = response["Certificate"]
                record = next(
                    (
                        o["ResourceRecord"]
                        for o in cert.get("DomainValidationOptions", [])
                        if o.get("ResourceRecord")
                    ),
                    None,
                )
                if record:
                    self.refs.update(
                        validation_name=record["Name"],
                        validation_type=record["Type"],
                        validation_value=record["Value"],
                    )
                    if not shown and step.wait == "issued":
                        shown = True
                        self.progress(
                            f"  validation record: {record['Name']} {record['Type']} "
                            f"{record['Value']}"
                        )
                status = cert.get("Status")
                if status in ("FAILED", "REVOKED", "EXPIRED", "VALIDATION_TIMED_OUT"):
                    raise ProvisioningError(f"Certificate {cert['CertificateArn']} is {status}.")
                if step.wait == "validation" and record:
                    return
                if step.wait == "issued" and status == "ISSUED":
                    return
                self.progress(f"  certificate status: {status}")
            if time.monotonic() >= deadline:
                raise ProvisioningError(
                    f"Gave up waiting after {limit:.0f} s ({step.reason}); run apply again later."
                )
            self.sleep(interval)

    def _record(self, step: Step, params: dict[str, Any], response: dict[str, Any]) -> None:
        """Write what a call created or removed to the database before the next call."""
        op, key = step.operation, step.key
        resources = dict(self.resources)
        fields: dict[str, Any] = {}
        route_key = key.split(":", 1)[1] if ":" in key else ""
        if op == "create_api":
            self.refs["api"] = response["ApiId"]
            resources["api"] = response["ApiId"]
            fields.update(api_id=response["ApiId"], api_endpoint=response.get("ApiEndpoint", ""))
        elif op == "update_api":
            fields["api_endpoint"] = response.get("ApiEndpoint", self.gateway.api_endpoint)
        elif op == "create_integration":
            self.refs[key] = response["IntegrationId"]
            resources[key] = response["IntegrationId"]
            self._mirror(route_key, integration_id=response["IntegrationId"], deployed=False)
        elif op == "create_route":
            self.refs[key] = response["RouteId"]
            resources[key] = response["RouteId"]
            self._mirror(route_key, route_id=response["RouteId"], deployed=False)
        elif op == "create_route_response":
            resources[key] = response["RouteResponseId"]
        elif op == "create_stage":
            resources["stage"] = params["StageName"]
        elif op == "create_deployment":
            fields["deployment_id"] = response["DeploymentId"]
            ApiGatewayAdditionalRoute.objects.filter(gateway=self.gateway).update(deployed=True)
        elif op == "request_certificate":
            self.refs["certificate"] = response["CertificateArn"]
            resources["certificate"] = response["CertificateArn"]
            fields["certificate_arn"] = response["CertificateArn"]
        elif op == "create_domain_name":
            resources["domain"] = response["DomainName"]
            config = response["DomainNameConfigurations"][0]
            self.refs["domain_target"] = config["ApiGatewayDomainName"]
            self.refs["domain_zone"] = config["HostedZoneId"]
        elif op == "create_api_mapping":
            resources[key] = response["ApiMappingId"]
        elif op == "change_resource_record_sets":
            self.refs["change"] = response["ChangeInfo"]["Id"]
            change = params["ChangeBatch"]["Changes"][0]
            record = change["ResourceRecordSet"]
            if change["Action"] == "DELETE":
                resources.pop(key, None)
            else:
                resources[key] = f"{record['Name']}|{record['Type']}"
        elif op.startswith("delete_"):
            if resources.get(key) is not None:
                resources.pop(key)
            if op == "delete_api":
                for name in list(resources):
                    if name not in DOMAIN_RESOURCES:
                        resources.pop(name)
                fields.update(api_id=None, api_endpoint="", deployment_id="")
                self._mirror_all(route_id="", integration_id="", deployed=False)
            elif op == "delete_route":
                self._mirror(route_key, route_id="", deployed=False)
            elif op == "delete_integration":
                self._mirror(route_key, integration_id="")
            elif op == "delete_certificate":
                resources.pop("certificate_token", None)
                if self.gateway.certificate_arn == params.get("CertificateArn"):
                    fields["certificate_arn"] = ""
            elif op == "delete_stage":
                fields["deployment_id"] = ""
        fields["aws_resources"] = resources
        self._save(**fields)

    def _mirror(self, route_key: str, **values: Any) -> None:
        """Show the ids on the additional route's record (the admin displays them)."""
        ApiGatewayAdditionalRoute.objects.filter(gateway=self.gateway, route_key=route_key).update(
            **values
        )

    def _mirror_all(self, **values: Any) -> None:
        ApiGatewayAdditionalRoute.objects.filter(gateway=self.gateway).update(**values)

    # -- the claim on the record ---------------------------------------------------------------

    def _claim(self) -> None:
        now = timezone.now()
        stale = now - timedelta(seconds=float(ws_settings.PROVISIONING_LOCK_SECONDS))
        claimed = (
            ApiGateway.objects.filter(pk=self.gateway.pk)
            .filter(~Q(provisioning_status=Status.IN_PROGRESS) | Q(updated_at__lt=stale))
            .update(provisioning_status=Status.IN_PROGRESS, provisioning_error="", updated_at=now)
        )
        if not claimed:
            raise Busy(
                f"Another run is provisioning {self.gateway.name!r}; try again when it has "
                "finished."
            )
        self.gateway.refresh_from_db()

    def _save(self, **fields: Any) -> None:
        fields["updated_at"] = timezone.now()
        ApiGateway.objects.filter(pk=self.gateway.pk).update(**fields)
        for name, value in fields.items():
            setattr(self.gateway, name, value)

    def _finish(self, status: str, error: str) -> None:
        fields: dict[str, Any] = {"provisioning_status": status, "provisioning_error": error}
        if status == Status.PROVISIONED:
            fields["provisioned_at"] = timezone.now()
        elif status == Status.NOT_PROVISIONED:
            fields["provisioned_at"] = None
        self._save(**fields)


def _secrets() -> tuple[str, ...]:
    return tuple(ws_settings.gateway_secrets)


def _replace_api_refs(plan: Plan) -> None:
    """Domain steps planned before the API exists refer to the API created earlier in the plan."""
    from .plan import Ref

    for step in plan.steps:
        if "ApiId" in step.params and step.params["ApiId"] is None:
            step.params["ApiId"] = Ref("api")


def _all_two_way(desired: DesiredApi) -> DesiredApi:
    """For teardown every route's responses are read, whatever the records say now."""
    from dataclasses import replace

    return replace(desired, routes=tuple(replace(r, two_way=True) for r in desired.routes))
