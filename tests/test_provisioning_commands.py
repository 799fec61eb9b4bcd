"""The provisioning commands, the CloudFormation export and the IAM policies."""

from __future__ import annotations

import json
from io import StringIO

import botocore.session
import pytest
from cfnlint.api import lint
from cfnlint.config import ManualArgs
from django.core.management import call_command
from django.core.management.base import CommandError

from django_aws_api_gateway_websockets import contract
from django_aws_api_gateway_websockets.models import ApiGateway, ApiGatewayAdditionalRoute
from django_aws_api_gateway_websockets.provisioning import clients, desired_api
from django_aws_api_gateway_websockets.provisioning.cloudformation import (
    SECRET_PARAMETER,
    template,
)
from django_aws_api_gateway_websockets.provisioning.iam import (
    IMPLIED_BY,
    OPERATIONS,
    policy_actions,
    provisioning_policy,
    runtime_policy,
)
from tests.aws_control_plane import REGION, provisioner
from tests.helpers import ws_settings
from tests.settings import GATEWAY_SECRET

NEW_SECRET = "the-new-gateway-secret-0123456789abcdefgh"


def command(name: str, *args: str) -> str:
    out = StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


def test_plan_command_prints_each_call_and_makes_none(plane, record):
    out = command("plan_websocket_api", "chat")
    lines = out.splitlines()
    assert lines[0] == "Apply would make 10 call(s):"
    assert lines[1].startswith('  apigatewayv2.create_api(Name="chat", ProtocolType="WEBSOCKET"')
    assert GATEWAY_SECRET not in out and "********" in out
    assert plane.mutating() == []


def test_apply_command_reports_progress_then_the_url(plane, record):
    out = command("apply_websocket_api", "chat")
    record.refresh_from_db()
    calls = [line for line in out.splitlines() if line.startswith("apigatewayv2.")]
    assert len(calls) == 10  # one progress line per mutating call
    assert out.splitlines()[-1] == (
        f"chat is provisioned (10 change(s)): wss://{record.api_id}.execute-api.eu-west-1."
        "amazonaws.com/production"
    )
    assert "AWS matches the records" in command("plan_websocket_api", record.api_id)


def test_verbose_commands_print_every_aws_call_reads_included(plane, record):
    command("apply_websocket_api", "chat")
    out = StringIO()
    call_command("check_websocket_api", "chat", verbosity=2, stdout=out)
    traced = [line.strip() for line in out.getvalue().splitlines() if "AWS call:" in line]
    assert traced[:3] == [
        "AWS call: apigatewayv2.GetApi",
        "AWS call: apigatewayv2.GetIntegrations",
        "AWS call: apigatewayv2.GetRoutes",
    ]
    assert "AWS call: apigatewayv2.GetStage" in traced


def test_apply_command_fails_with_the_aws_message(plane, record):
    plane.fail_at = 2
    with pytest.raises(CommandError, match="CreateRoute: InternalFailure: injected failure"):
        command("apply_websocket_api", "chat")


def test_unknown_record_is_a_command_error(plane, db):
    with pytest.raises(CommandError, match="No ApiGateway record is named 'nope'"):
        command("apply_websocket_api", "nope")


def test_check_command_exits_non_zero_on_drift(plane, record):
    command("apply_websocket_api", "chat")
    record.refresh_from_db()
    assert "chat: AWS matches the records." in command("check_websocket_api")
    client = plane.raw("apigatewayv2")
    routes = client.get_routes(ApiId=record.api_id)["Items"]
    connect = next(r for r in routes if r["RouteKey"] == "$connect")
    client.update_integration(
        ApiId=record.api_id,
        IntegrationId=connect["Target"].removeprefix("integrations/"),
        RequestParameters={},
    )
    out = StringIO()
    with pytest.raises(CommandError, match="1 API\\(s\\) differ"):
        call_command("check_websocket_api", "chat", stdout=out)
    assert "integration:$connect: differs: RequestParameters" in out.getvalue()


def test_adopt_by_id_plans_then_converges(plane, record):
    api = plane.raw("apigatewayv2").create_api(
        Name="old", ProtocolType="WEBSOCKET", RouteSelectionExpression="$request.body.action"
    )
    out = command("plan_websocket_api", "chat", "--adopt", api["ApiId"])
    assert 'update_api(ApiId="' + api["ApiId"] + '", Name="chat")' in out
    record.refresh_from_db()
    assert record.api_id is None  # plan changes nothing
    command("apply_websocket_api", "chat", "--adopt", api["ApiId"])
    record.refresh_from_db()
    assert record.api_id == api["ApiId"]
    assert "CreateApi" not in plane.operations
    assert len(plane.raw("apigatewayv2").get_apis()["Items"]) == 1


def test_domain_command_and_teardown_command(plane, record):
    zone = plane.raw("route53").create_hosted_zone(Name="example.com", CallerReference="c")
    with pytest.raises(CommandError, match="has no custom domain"):
        command("provision_websocket_domain", "chat")
    command("apply_websocket_api", "chat")
    record.refresh_from_db()
    record.custom_domain_name = "ws.example.com"
    record.hosted_zone_id = zone["HostedZone"]["Id"]
    record.save()
    out = command("provision_websocket_domain", "chat")
    assert out.splitlines()[-1] == "Custom domain ready: wss://ws.example.com"
    assert "acm.request_certificate(" in out
    assert "CreateApi" not in plane.operations[1:]

    teardown_plan = command("plan_websocket_api", "chat", "--teardown")
    assert "delete_api_mapping" in teardown_plan and plane.operations.count("DeleteApi") == 0
    out = command("teardown_websocket_api", "chat", "--no-input")
    assert out.splitlines()[-1] == "chat: torn down."
    assert plane.raw("apigatewayv2").get_apis()["Items"] == []
    assert "Nothing created by provisioning" in command("teardown_websocket_api", "chat")


def test_secret_rotation(plane, record):
    command("apply_websocket_api", "chat")
    with pytest.raises(CommandError, match="List the new secret first"):
        command("rotate_websocket_secret", "chat")
    with ws_settings(GATEWAY_SECRETS=[NEW_SECRET, GATEWAY_SECRET]):
        plane.reset()
        out = command("rotate_websocket_secret", "chat")
    assert "every integration sends the new secret" in out
    assert NEW_SECRET not in out and GATEWAY_SECRET not in out
    assert plane.mutating() == ["UpdateIntegration"] * 3 + ["CreateDeployment"]
    record.refresh_from_db()
    for integration in plane.raw("apigatewayv2").get_integrations(ApiId=record.api_id)["Items"]:
        assert integration["RequestParameters"] == contract.integration_request_parameters(
            NEW_SECRET
        )


def test_client_factory_honours_endpoint_urls(db):
    with ws_settings(AWS_ENDPOINT_URLS={"apigatewayv2": "http://127.0.0.1:4510"}):
        assert clients.make_client("apigatewayv2", REGION).meta.endpoint_url == (
            "http://127.0.0.1:4510"
        )
        assert clients.make_client("acm", REGION).meta.endpoint_url == (
            "https://acm.eu-west-1.amazonaws.com"
        )
        route53 = clients.make_client("route53", REGION)
        assert route53.meta.endpoint_url == "https://route53.amazonaws.com"


# -- CloudFormation --------------------------------------------------------------------------


@pytest.fixture
def full_record(record):
    record.custom_domain_name = "ws.example.com"
    record.hosted_zone_id = "Z0123456789ABCDEFGHIJ"
    record.api_mapping_key = "chat"
    record.save()
    ApiGatewayAdditionalRoute.objects.create(gateway=record, route_key="shout")
    ApiGatewayAdditionalRoute.objects.create(
        gateway=record, route_key="chat.send", route_slug="chat-send", two_way=False
    )
    return record


def test_exported_template_passes_cfn_lint(full_record, tmp_path):
    path = tmp_path / "api.json"
    command("export_websocket_cloudformation", "chat", "-o", str(path))
    body = path.read_text()
    assert GATEWAY_SECRET not in body
    types = {r["Type"] for r in json.loads(body)["Resources"].values()}
    assert types >= {
        "AWS::ApiGatewayV2::Api",
        "AWS::ApiGatewayV2::Integration",
        "AWS::ApiGatewayV2::Route",
        "AWS::ApiGatewayV2::RouteResponse",
        "AWS::ApiGatewayV2::Stage",
        "AWS::ApiGatewayV2::Deployment",
        "AWS::ApiGatewayV2::DomainName",
        "AWS::ApiGatewayV2::ApiMapping",
        "AWS::Route53::RecordSet",
    }
    matches = lint(body, config=ManualArgs(regions=[REGION]))
    assert [str(m) for m in matches] == []


def test_exported_template_describes_what_the_plan_creates(plane, full_record):
    zone = plane.raw("route53").create_hosted_zone(Name="example.com", CallerReference="x")
    full_record.hosted_zone_id = zone["HostedZone"]["Id"]
    full_record.save()
    plan = provisioner(plane, full_record).plan()
    steps = plan.steps
    planned_routes = {}
    for index, step in enumerate(steps):
        if step.operation == "create_route":
            integration = next(
                s for s in steps[:index] if s.key == f"integration:{step.params['RouteKey']}"
            )
            integration_params = dict(integration.params)
            del integration_params["ApiId"]
            planned_routes[step.params["RouteKey"]] = (
                step.params.get("RouteResponseSelectionExpression"),
                integration_params,
            )
    responses = {s.key.split(":", 1)[1] for s in steps if s.operation == "create_route_response"}

    resources = template(desired_api(full_record))["Resources"]
    exported_routes = {}
    for route in (r["Properties"] for r in resources.values() if r["Type"].endswith("::Route")):
        integration_id = route["Target"]["Fn::Join"][1][1]["Ref"]
        props = dict(resources[integration_id]["Properties"])
        del props["ApiId"]
        header = f"integration.request.header.{contract.GATEWAY_SECRET_HEADER}"
        sub = props["RequestParameters"][header]["Fn::Sub"]
        props["RequestParameters"] = {
            **props["RequestParameters"],
            header: sub.replace("${" + SECRET_PARAMETER + "}", GATEWAY_SECRET),
        }
        exported_routes[route["RouteKey"]] = (route.get("RouteResponseSelectionExpression"), props)
    exported_responses = {
        resources[r["Properties"]["RouteId"]["Ref"]]["Properties"]["RouteKey"]
        for r in resources.values()
        if r["Type"].endswith("::RouteResponse")
    }
    assert exported_routes == planned_routes
    assert set(planned_routes) == {"$connect", "$disconnect", "$default", "shout", "chat.send"}
    assert exported_responses == responses == {"$default", "shout"}
    domain = next(s for s in steps if s.operation == "create_domain_name").params
    exported = resources["DomainName"]["Properties"]
    assert exported["DomainName"] == domain["DomainName"]
    assert {
        k: v for k, v in exported["DomainNameConfigurations"][0].items() if k != "CertificateArn"
    } == {k: v for k, v in domain["DomainNameConfigurations"][0].items() if k != "CertificateArn"}


# -- IAM ---------------------------------------------------------------------------------------


def test_runtime_policy_is_exactly_this_api_and_stage(plane, record):
    with pytest.raises(ValueError, match="no id yet"):
        runtime_policy(record)
    record.api_id = "abc123"
    policy = runtime_policy(record, "123456789012")
    [statement] = policy["Statement"]
    assert statement["Action"] == "execute-api:ManageConnections"
    assert statement["Resource"] == [
        f"arn:aws:execute-api:eu-west-1:123456789012:abc123/production/{m}/@connections/*"
        for m in ("POST", "GET", "DELETE")
    ]


def _iam_action(service: str, operation: str) -> str:
    """The IAM action for an operation, from botocore's model (apigateway: by HTTP method)."""
    model = botocore.session.get_session().get_service_model(service)
    if service == "apigatewayv2":
        return "apigateway:" + model.operation_model(operation).http["method"]
    return f"{service}:{operation}"


def test_provisioning_policy_actions_equal_the_operations_of_a_full_run(plane, record):
    zone = plane.raw("route53").create_hosted_zone(Name="example.com", CallerReference="i")
    record.custom_domain_name = "ws.example.com"
    record.hosted_zone_id = zone["HostedZone"]["Id"]
    record.save()
    ApiGatewayAdditionalRoute.objects.create(gateway=record, route_key="shout")
    provisioner(plane, record).apply()
    # change everything that can change in place, and remove a route
    record.refresh_from_db()
    record.target_base_endpoint = "https://other.example.com/ws/"
    record.route_selection_expression = "$request.body.type"
    record.save()
    ApiGatewayAdditionalRoute.objects.filter(route_key="shout").update(two_way=False)
    provisioner(plane, record).apply()
    ApiGatewayAdditionalRoute.objects.all().delete()
    provisioner(plane, record).apply()
    provisioner(plane, record).drift()
    provisioner(plane, record).teardown()

    record.refresh_from_db()
    called = set(plane.calls)
    expected = {_iam_action(service, op) for service, op in called}
    expected |= {IMPLIED_BY[op] for _s, op in called if op in IMPLIED_BY}
    assert {op for _s, op in called} == set(OPERATIONS) - {"DeleteStage"}
    record.custom_domain_name = "ws.example.com"
    policy = provisioning_policy(record, "123456789012")
    assert policy_actions(policy) == expected
    assert {OPERATIONS[op] for _s, op in called} | set(IMPLIED_BY.values()) == expected


def test_provisioning_policy_scopes_resources(record):
    record.api_id = "abc123"
    record.custom_domain_name = "ws.example.com"
    record.hosted_zone_id = "/hostedzone/Z1"
    policy = provisioning_policy(record, "123456789012")
    resources = {s["Sid"]: s["Resource"] for s in policy["Statement"]}
    assert resources["ManageWebSocketApi"] == [
        "arn:aws:apigateway:eu-west-1::/apis/abc123",
        "arn:aws:apigateway:eu-west-1::/apis/abc123/*",
    ]
    assert resources["WriteDomainRecords"] == ["arn:aws:route53:::hostedzone/Z1"]
    assert resources["ManageCustomDomain"] == [
        "arn:aws:apigateway:eu-west-1::/domainnames/ws.example.com",
        "arn:aws:apigateway:eu-west-1::/domainnames/ws.example.com/*",
    ]


def test_iam_command_prints_both_policies(plane, record):
    command("apply_websocket_api", "chat")
    output = json.loads(command("websocket_iam_policies", "chat", "--account-id", "111122223333"))
    assert set(output) == {"runtime", "provisioning"}
    ApiGateway.objects.update(api_id=None)
    with pytest.raises(CommandError, match="no id yet"):
        command("websocket_iam_policies", "chat", "--policy", "runtime")
