"""Provisioning against moto (and Stubber for what moto lacks): plan, apply, resume, drift,
teardown, in-place updates."""

from __future__ import annotations

from collections import Counter

import moto.settings
import pytest

from django_aws_api_gateway_websockets import contract
from django_aws_api_gateway_websockets.models import ApiGateway, ApiGatewayAdditionalRoute
from django_aws_api_gateway_websockets.provisioning import ProvisioningError
from tests.aws_control_plane import REGION, ControlPlane, provisioner
from tests.helpers import ws_settings


def aws_state(plane: ControlPlane, api_id: str) -> dict:
    client = plane.raw("apigatewayv2", REGION)
    integrations = {i["IntegrationId"]: i for i in client.get_integrations(ApiId=api_id)["Items"]}
    routes = {r["RouteKey"]: r for r in client.get_routes(ApiId=api_id)["Items"]}
    return {"integrations": integrations, "routes": routes}


FRESH_APPLY = [
    "CreateApi",
    "CreateIntegration",
    "CreateRoute",
    "CreateIntegration",
    "CreateRoute",
    "CreateIntegration",
    "CreateRoute",
    "CreateRouteResponse",
    "CreateStage",
    "CreateDeployment",
]


def test_fresh_apply_creates_the_api_in_order(plane, record):
    lines: list[str] = []
    provisioner(plane, record, lines).apply()
    assert plane.mutating() == FRESH_APPLY
    record.refresh_from_db()
    assert record.provisioning_status == ApiGateway.ProvisioningStatus.PROVISIONED
    assert record.api_id and record.deployment_id and record.api_endpoint
    state = aws_state(plane, record.api_id)
    assert set(state["routes"]) == {"$connect", "$disconnect", "$default"}
    secret = "test-gateway-secret-0123456789abcdef"
    for key, route in state["routes"].items():
        integration = state["integrations"][route["Target"].removeprefix("integrations/")]
        assert integration["IntegrationUri"] == record.integration_uri(key)
        assert integration["IntegrationType"] == "HTTP_PROXY"
        assert integration["IntegrationMethod"] == "POST"
        assert integration["TimeoutInMillis"] == contract.INTEGRATION_TIMEOUT_MILLIS
        assert integration["RequestParameters"] == contract.integration_request_parameters(secret)
    assert state["routes"]["$default"]["RouteResponseSelectionExpression"] == "$default"
    assert not state["routes"]["$connect"].get("RouteResponseSelectionExpression")
    assert any("create_api" in line for line in lines)
    assert all(secret not in line for line in lines)


def test_second_apply_makes_no_mutating_call(plane, record):
    provisioner(plane, record).apply()
    plane.reset()
    plan = provisioner(plane, record).apply()
    assert plan.in_sync
    assert plane.mutating() == []
    # Reads of a no-change run: API, integrations, routes, $default's route responses, stage.
    assert plane.operations == [
        "GetApi",
        "GetIntegrations",
        "GetRoutes",
        "GetRouteResponses",
        "GetStage",
    ]


def test_plan_prints_each_call_without_making_it(plane, record):
    plan = provisioner(plane, record).plan()
    assert [s.operation for s in plan.steps if s.mutating][:2] == [
        "create_api",
        "create_integration",
    ]
    assert plane.mutating() == []
    lines = plan.describe(("test-gateway-secret-0123456789abcdef",))
    assert lines[1].startswith("apigatewayv2.create_integration(ApiId=<api>, IntegrationType=")
    assert "********" in lines[1] and "0123456789abcdef" not in "".join(lines)


@pytest.mark.parametrize("fail_at", range(len(FRESH_APPLY)), ids=FRESH_APPLY.__getitem__)
def test_a_failed_run_is_resumed_without_duplicates(plane, record, fail_at):
    plane.fail_at = fail_at
    with pytest.raises(ProvisioningError, match="injected failure"):
        provisioner(plane, record).apply()
    record.refresh_from_db()
    assert record.provisioning_status == ApiGateway.ProvisioningStatus.FAILED
    assert "injected failure" in record.provisioning_error

    provisioner(plane, record).apply()
    record.refresh_from_db()
    assert record.provisioning_status == ApiGateway.ProvisioningStatus.PROVISIONED
    creates = Counter(op for op in plane.mutating() if op.startswith("Create"))
    assert creates["CreateApi"] == 1
    assert creates["CreateIntegration"] == 3
    assert creates["CreateRoute"] == 3
    assert creates["CreateRouteResponse"] == 1
    assert creates["CreateStage"] == 1
    apis = plane.raw("apigatewayv2", REGION).get_apis()["Items"]
    assert [a["ApiId"] for a in apis] == [record.api_id]
    state = aws_state(plane, record.api_id)
    assert len(state["integrations"]) == 3 and len(state["routes"]) == 3
    # The last deployment came after the last change.
    assert plane.mutating()[-1] == "CreateDeployment"
    plane.reset()
    assert provisioner(plane, record).apply().in_sync


def test_drift_is_reported_and_apply_fixes_it(plane, record):
    provisioner(plane, record).apply()
    record.refresh_from_db()
    assert provisioner(plane, record).drift() == []
    client = plane.raw("apigatewayv2", REGION)
    route = aws_state(plane, record.api_id)["routes"]["$default"]
    integration_id = route["Target"].removeprefix("integrations/")
    client.update_integration(
        ApiId=record.api_id, IntegrationId=integration_id, IntegrationUri="https://evil.test/x"
    )
    drift = provisioner(plane, record).drift()
    assert [str(d) for d in drift] == ["integration:$default: differs: IntegrationUri"]
    plane.reset()
    provisioner(plane, record).apply()
    assert plane.mutating() == ["UpdateIntegration", "CreateDeployment"]
    fixed = aws_state(plane, record.api_id)["integrations"][integration_id]
    assert fixed["IntegrationUri"] == "https://www.example.com/ws/default"
    assert provisioner(plane, record).drift() == []


def test_unprovisioned_record_is_drift(plane, record):
    assert [str(d) for d in provisioner(plane, record).drift()] == ["api: not provisioned"]


def test_changes_to_the_records_update_aws_in_place(plane, record):
    provisioner(plane, record).apply()
    record.refresh_from_db()
    api_id = record.api_id
    record.target_base_endpoint = "https://new.example.com/socket/"
    record.route_selection_expression = "$request.body.type"
    record.save()
    plane.reset()
    with ws_settings(GATEWAY_SECRETS=["a-brand-new-secret-abcdefghijklmnopqrstu"]):
        provisioner(plane, record).apply()
    assert Counter(plane.mutating()) == Counter(
        {"UpdateApi": 1, "UpdateIntegration": 3, "CreateDeployment": 1}
    )
    record.refresh_from_db()
    assert record.api_id == api_id
    api = plane.raw("apigatewayv2", REGION).get_api(ApiId=api_id)
    assert api["RouteSelectionExpression"] == "$request.body.type"
    params = contract.integration_request_parameters("a-brand-new-secret-abcdefghijklmnopqrstu")
    for integration in aws_state(plane, api_id)["integrations"].values():
        assert integration["IntegrationUri"].startswith("https://new.example.com/socket/")
        assert integration["RequestParameters"] == params


def test_additional_routes_are_added_changed_and_removed(plane, record):
    provisioner(plane, record).apply()
    shout = ApiGatewayAdditionalRoute.objects.create(gateway=record, route_key="shout")
    ApiGatewayAdditionalRoute.objects.create(
        gateway=record, route_key="notify", route_slug="notify", two_way=False
    )
    plane.reset()
    provisioner(plane, record).apply()
    assert Counter(plane.mutating()) == Counter(
        {
            "CreateIntegration": 2,
            "CreateRoute": 2,
            "CreateRouteResponse": 1,
            "CreateDeployment": 1,
        }
    )
    record.refresh_from_db()
    state = aws_state(plane, record.api_id)
    shout.refresh_from_db()
    assert shout.deployed and shout.route_id == state["routes"]["shout"]["RouteId"]
    assert state["routes"]["shout"]["RouteResponseSelectionExpression"] == "$default"
    assert not state["routes"]["notify"].get("RouteResponseSelectionExpression")
    assert (
        state["integrations"][shout.integration_id]["IntegrationUri"]
        == "https://www.example.com/ws/shout"
    )

    # two-way -> one-way, and a route removed
    shout.two_way = False
    shout.save()
    ApiGatewayAdditionalRoute.objects.filter(route_key="notify").delete()
    plane.reset()
    provisioner(plane, record).apply()
    assert Counter(plane.mutating()) == Counter(
        {
            "UpdateRoute": 1,
            "DeleteRouteResponse": 1,
            "DeleteRoute": 1,
            "DeleteIntegration": 1,
            "CreateDeployment": 1,
        }
    )
    state = aws_state(plane, record.api_id)
    assert set(state["routes"]) == {"$connect", "$disconnect", "$default", "shout"}
    assert len(state["integrations"]) == 4
    assert not state["routes"]["shout"].get("RouteResponseSelectionExpression")
    plane.reset()
    assert provisioner(plane, record).apply().in_sync


def test_teardown_removes_everything_it_created(plane, record):
    ApiGatewayAdditionalRoute.objects.create(gateway=record, route_key="shout")
    provisioner(plane, record).apply()
    plane.reset()
    provisioner(plane, record).teardown()
    assert plane.mutating() == ["DeleteApi"]
    assert plane.raw("apigatewayv2", REGION).get_apis()["Items"] == []
    record.refresh_from_db()
    assert record.api_id is None and record.aws_resources == {}
    assert record.provisioning_status == ApiGateway.ProvisioningStatus.NOT_PROVISIONED
    assert not ApiGatewayAdditionalRoute.objects.filter(deployed=True).exists()


def test_adopting_an_existing_api_converges_it_and_teardown_keeps_it(plane, record):
    client = plane.raw("apigatewayv2", REGION)
    api = client.create_api(
        Name="handmade", ProtocolType="WEBSOCKET", RouteSelectionExpression="$request.body.op"
    )
    integration = client.create_integration(
        ApiId=api["ApiId"],
        IntegrationType="HTTP_PROXY",
        IntegrationMethod="POST",
        IntegrationUri="https://old.example.com/ws/connect",
    )
    client.create_route(
        ApiId=api["ApiId"],
        RouteKey="$connect",
        Target=f"integrations/{integration['IntegrationId']}",
    )
    client.create_route(ApiId=api["ApiId"], RouteKey="legacy")
    client.create_stage(ApiId=api["ApiId"], StageName="production")
    record.api_id = api["ApiId"]
    record.save()

    plan = provisioner(plane, record).plan()
    assert [s.operation for s in plan.mutating_steps] == [
        "update_api",
        "update_integration",
        "create_integration",
        "create_route",
        "create_integration",
        "create_route",
        "create_route_response",
        "create_deployment",
    ]
    assert plan.notes == ["Route legacy is not in the records and was not created here: kept."]
    provisioner(plane, record).apply()
    plane.reset()
    assert provisioner(plane, record).apply().in_sync

    provisioner(plane, record).teardown()
    state = aws_state(plane, api["ApiId"])
    assert set(state["routes"]) == {"$connect", "legacy"}
    assert list(state["integrations"]) == [integration["IntegrationId"]]
    assert plane.mutating()[-1] == "CreateDeployment"


def test_adopting_an_unknown_api_id_fails_clearly(plane, record):
    record.api_id = "nope123"
    record.save()
    with pytest.raises(ProvisioningError, match="API nope123 was not found"):
        provisioner(plane, record).plan()


def test_a_second_run_cannot_claim_a_record_in_progress(plane, record):
    ApiGateway.objects.filter(pk=record.pk).update(
        provisioning_status=ApiGateway.ProvisioningStatus.IN_PROGRESS
    )
    from django_aws_api_gateway_websockets.provisioning import Busy

    with pytest.raises(Busy):
        provisioner(plane, record).apply()
    assert plane.operations == []
    with ws_settings(PROVISIONING_LOCK_SECONDS=0):
        provisioner(plane, record).apply()  # a stale claim is taken over
    assert plane.mutating()[0] == "CreateApi"


@pytest.fixture
def zone_id(plane) -> str:
    zone = plane.raw("route53").create_hosted_zone(Name="example.com", CallerReference="t")
    return zone["HostedZone"]["Id"]


def record_sets(plane, zone_id: str) -> dict:
    sets = plane.raw("route53").list_resource_record_sets(HostedZoneId=zone_id)
    return {(r["Name"], r["Type"]): r for r in sets["ResourceRecordSets"]}


def with_domain(record: ApiGateway, zone_id: str) -> ApiGateway:
    record.custom_domain_name = "ws.example.com"
    record.api_mapping_key = "chat"
    record.hosted_zone_id = zone_id
    record.save()
    return record


FULL_APPLY_WITH_DOMAIN = [
    *FRESH_APPLY,
    "RequestCertificate",
    "ChangeResourceRecordSets",
    "CreateDomainName",
    "CreateApiMapping",
    "ChangeResourceRecordSets",
]


def test_custom_domain_certificate_dns_mapping_and_teardown(plane, record, zone_id):
    with_domain(record, zone_id)
    lines: list[str] = []
    provisioner(plane, record, lines).apply()
    assert plane.mutating() == FULL_APPLY_WITH_DOMAIN
    record.refresh_from_db()
    assert record.certificate_arn.startswith("arn:aws:acm:eu-west-1:")
    assert any("validation record" in line for line in lines)

    cert = plane.raw("acm", REGION).describe_certificate(CertificateArn=record.certificate_arn)
    assert cert["Certificate"]["Status"] == "ISSUED"
    validation = cert["Certificate"]["DomainValidationOptions"][0]["ResourceRecord"]
    sets = record_sets(plane, zone_id)
    assert sets[(validation["Name"], "CNAME")]["ResourceRecords"] == [
        {"Value": validation["Value"]}
    ]
    domain = plane.domains["ws.example.com"]["DomainNameConfigurations"][0]
    assert {k: domain[k] for k in ("CertificateArn", "EndpointType", "SecurityPolicy")} == {
        "CertificateArn": record.certificate_arn,
        "EndpointType": "REGIONAL",
        "SecurityPolicy": "TLS_1_2",
    }
    for rtype in ("A", "AAAA"):
        alias = sets[("ws.example.com.", rtype)]["AliasTarget"]
        assert alias["DNSName"].rstrip(".") == domain["ApiGatewayDomainName"]
        assert alias["HostedZoneId"] == domain["HostedZoneId"]
    [mapping] = plane.mappings["ws.example.com"].values()
    assert mapping == {
        "ApiMappingId": mapping["ApiMappingId"],
        "ApiId": record.api_id,
        "Stage": "production",
        "ApiMappingKey": "chat",
    }
    assert record.websocket_url == "wss://ws.example.com/chat"

    plane.reset()
    assert provisioner(plane, record).apply().in_sync
    assert plane.operations == [
        "GetApi",
        "GetIntegrations",
        "GetRoutes",
        "GetRouteResponses",
        "GetStage",
        "DescribeCertificate",
        "GetDomainName",
        "GetApiMappings",
        "ListResourceRecordSets",
    ]

    plane.reset()
    provisioner(plane, record).teardown()
    assert plane.mutating() == [
        "DeleteApiMapping",
        "ChangeResourceRecordSets",
        "DeleteDomainName",
        "ChangeResourceRecordSets",
        "DeleteCertificate",
        "DeleteApi",
    ]
    assert plane.domains == {}
    assert plane.raw("apigatewayv2", REGION).get_apis()["Items"] == []
    assert plane.raw("acm", REGION).list_certificates()["CertificateSummaryList"] == []
    assert {t for _n, t in record_sets(plane, zone_id)} == {"NS", "SOA"}
    record.refresh_from_db()
    assert record.aws_resources == {} and record.certificate_arn == ""


def test_domain_without_a_zone_prints_the_records_to_create(plane, record):
    record.custom_domain_name = "ws.example.com"
    record.save()
    lines: list[str] = []
    plan = provisioner(plane, record, lines).apply()
    assert "ChangeResourceRecordSets" not in plane.operations
    assert any("validation CNAME yourself" in note for note in plan.notes)
    assert any("point ws.example.com at" in note for note in plan.notes)


def test_teardown_keeps_a_certificate_it_did_not_request(plane, record, zone_id):
    acm = plane.raw("acm", REGION)
    arn = acm.request_certificate(DomainName="ws.example.com", ValidationMethod="DNS")[
        "CertificateArn"
    ]
    with_domain(record, zone_id)
    record.certificate_arn = arn
    record.save()
    provisioner(plane, record).apply()
    assert "RequestCertificate" not in plane.operations
    provisioner(plane, record).teardown()
    assert [c["CertificateArn"] for c in acm.list_certificates()["CertificateSummaryList"]] == [arn]
    record.refresh_from_db()
    assert record.certificate_arn == arn


def test_waiting_for_the_certificate_gives_up_with_a_clear_error(plane, record, monkeypatch):
    monkeypatch.setattr(moto.settings, "ACM_VALIDATION_WAIT", 3600)
    record.custom_domain_name = "ws.example.com"
    record.save()
    lines: list[str] = []
    with (
        ws_settings(CERTIFICATE_WAIT_SECONDS=0, CERTIFICATE_POLL_SECONDS=0),
        pytest.raises(ProvisioningError, match="Gave up waiting"),
    ):
        provisioner(plane, record, lines).apply()
    assert any("PENDING_VALIDATION" in line for line in lines)
    record.refresh_from_db()
    assert record.provisioning_status == ApiGateway.ProvisioningStatus.FAILED
    assert record.certificate_arn  # recorded: the next run waits for the same certificate


@pytest.mark.concurrent
@pytest.mark.django_db(transaction=True)
def test_concurrent_applies_create_one_api(plane):
    from django_aws_api_gateway_websockets.provisioning import Busy
    from tests.concurrency import race

    gateway = ApiGateway.objects.create(
        name="raced", region=REGION, target_base_endpoint="https://www.example.com/ws/"
    )

    def task(index: int, prepared: object) -> str:
        try:
            provisioner(plane, ApiGateway.objects.get(pk=gateway.pk)).apply()
        except Busy:
            return "busy"
        return "applied"

    result = race(6, task)
    assert not result.errors, "\n".join(result.errors)
    # Every run either did the work or found the record claimed; later runs find nothing to do.
    assert "applied" in result.results
    assert plane.operations.count("CreateApi") == 1
    assert len(plane.raw("apigatewayv2", REGION).get_apis()["Items"]) == 1


def test_a_retried_certificate_request_sends_the_same_idempotency_token(plane, record, zone_id):
    with_domain(record, zone_id)
    plane.fail_at = len(FRESH_APPLY)  # the request itself fails (e.g. the answer was lost)
    with pytest.raises(ProvisioningError):
        provisioner(plane, record).apply()
    record.refresh_from_db()
    token = record.aws_resources["certificate_token"]
    sent: list[str] = []
    acm = plane.factory("acm", REGION)
    acm.meta.events.register(
        "provide-client-params.acm.RequestCertificate",
        lambda params, **kwargs: sent.append(params["IdempotencyToken"]),
    )
    provisioner(plane, record).apply()
    assert sent == [token]
    record.refresh_from_db()
    assert "certificate_token" in record.aws_resources
    provisioner(plane, record).teardown()
    record.refresh_from_db()
    assert record.aws_resources == {}


DOMAIN_STEPS = range(len(FRESH_APPLY), len(FULL_APPLY_WITH_DOMAIN))


@pytest.mark.parametrize("fail_at", DOMAIN_STEPS, ids=FULL_APPLY_WITH_DOMAIN.__getitem__)
def test_a_failed_domain_step_is_resumed_without_duplicates(plane, record, zone_id, fail_at):
    with_domain(record, zone_id)
    plane.fail_at = fail_at
    with pytest.raises(ProvisioningError, match="injected failure"):
        provisioner(plane, record).apply()
    provisioner(plane, record).apply()
    record.refresh_from_db()
    assert record.provisioning_status == ApiGateway.ProvisioningStatus.PROVISIONED
    creates = Counter(plane.mutating())
    # (the injected failure stops a call before it reaches AWS, so it is not counted)
    assert creates["RequestCertificate"] == creates["CreateDomainName"] == 1
    assert creates["CreateApiMapping"] == 1
    certificates = plane.raw("acm", REGION).list_certificates()["CertificateSummaryList"]
    assert [c["CertificateArn"] for c in certificates] == [record.certificate_arn]
    assert list(plane.domains) == ["ws.example.com"]
    assert len(plane.mappings["ws.example.com"]) == 1
    types = Counter(t for _name, t in record_sets(plane, zone_id))
    # moto issues certificates without looking at DNS, so after a failed validation-record write
    # the next run finds the certificate issued and needs no record.
    assert types["A"] == types["AAAA"] == 1 and types["CNAME"] <= 1
    plane.reset()
    assert provisioner(plane, record).apply().in_sync


def test_a_dns_alias_removed_behind_the_layers_back_is_drift(plane, record, zone_id):
    with_domain(record, zone_id)
    provisioner(plane, record).apply()
    record.refresh_from_db()
    a_record = record_sets(plane, zone_id)[("ws.example.com.", "A")]
    plane.raw("route53").change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": a_record}]},
    )
    drift = [str(d) for d in provisioner(plane, record).drift()]
    assert drift == ["alias_records: DNS alias missing or pointing elsewhere"]
    plane.reset()
    provisioner(plane, record).apply()
    assert plane.mutating() == ["ChangeResourceRecordSets"]
    assert ("ws.example.com.", "A") in record_sets(plane, zone_id)
    assert provisioner(plane, record).drift() == []


def test_teardown_of_an_adopted_api_deletes_the_stage_it_created(plane, record):
    client = plane.raw("apigatewayv2", REGION)
    api = client.create_api(
        Name="chat", ProtocolType="WEBSOCKET", RouteSelectionExpression="$request.body.action"
    )
    record.api_id = api["ApiId"]
    record.save()
    provisioner(plane, record).apply()
    assert "CreateStage" in plane.mutating()
    plane.reset()
    provisioner(plane, record).teardown()
    assert Counter(plane.mutating()) == Counter(
        {"DeleteRouteResponse": 1, "DeleteRoute": 3, "DeleteIntegration": 3, "DeleteStage": 1}
    )
    assert client.get_api(ApiId=api["ApiId"])["Name"] == "chat"  # the API itself stays
    assert client.get_routes(ApiId=api["ApiId"])["Items"] == []
    assert client.get_stages(ApiId=api["ApiId"])["Items"] == []
    record.refresh_from_db()
    assert record.aws_resources == {}
    assert record.provisioning_status == ApiGateway.ProvisioningStatus.NOT_PROVISIONED
