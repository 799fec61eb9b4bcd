"""A CloudFormation template describing the same API the provisioning layer builds.

It is made from :func:`.desired.desired_api`, the code the planner reads, so the two cannot
disagree about routes, integrations or request parameters. The gateway secret is a ``NoEcho``
parameter, never written into the template.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from .. import contract
from .desired import ENDPOINT_TYPE, ROUTE_RESPONSE_KEY, SECURITY_POLICY, DesiredApi, DesiredRoute
from .domain import ALIAS_TYPES

SECRET_PARAMETER = "GatewaySecret"
SECRET_TARGET = f"integration.request.header.{contract.GATEWAY_SECRET_HEADER}"
TEMPLATE_VERSION = "2010-09-09"


def logical_id(route_key: str) -> str:
    """A stable CloudFormation id for a route key (``$connect`` -> ``Connect``)."""
    if route_key in contract.SYSTEM_ROUTE_SLUGS:
        return contract.SYSTEM_ROUTE_SLUGS[route_key].capitalize()
    alnum = re.sub(r"[^A-Za-z0-9]", "", route_key)[:40]
    digest = hashlib.sha256(route_key.encode()).hexdigest()[:6]
    return f"Custom{alnum}{digest}"


def _integration(route: DesiredRoute, secret: bool) -> dict[str, Any]:
    params: dict[str, Any] = dict(route.integration.request_parameters)
    if secret and SECRET_TARGET in params:
        params[SECRET_TARGET] = {"Fn::Sub": "'${" + SECRET_PARAMETER + "}'"}
    return {
        "Type": "AWS::ApiGatewayV2::Integration",
        "Properties": {
            "ApiId": {"Ref": "Api"},
            "IntegrationType": route.integration.integration_type,
            "IntegrationMethod": route.integration.method,
            "IntegrationUri": route.integration.uri,
            "RequestParameters": params,
            "TimeoutInMillis": route.integration.timeout_millis,
            "PayloadFormatVersion": route.integration.payload_format_version,
            "Description": route.description,
        },
    }


def template(desired: DesiredApi) -> dict[str, Any]:
    """The template as a dict (``json.dumps`` it, or load it in your IaC tool)."""
    secret = any(SECRET_TARGET in r.integration.request_parameters for r in desired.routes)
    resources: dict[str, Any] = {
        "Api": {
            "Type": "AWS::ApiGatewayV2::Api",
            "Properties": {
                "Name": desired.name,
                "ProtocolType": "WEBSOCKET",
                "RouteSelectionExpression": desired.route_selection_expression,
                **({"Description": desired.description} if desired.description else {}),
            },
        }
    }
    route_ids = []
    for route in desired.routes:
        base = logical_id(route.route_key)
        resources[f"{base}Integration"] = _integration(route, secret)
        properties: dict[str, Any] = {
            "ApiId": {"Ref": "Api"},
            "RouteKey": route.route_key,
            "Target": {"Fn::Join": ["/", ["integrations", {"Ref": f"{base}Integration"}]]},
        }
        if route.two_way:
            properties["RouteResponseSelectionExpression"] = ROUTE_RESPONSE_KEY
        resources[f"{base}Route"] = {"Type": "AWS::ApiGatewayV2::Route", "Properties": properties}
        route_ids.append(f"{base}Route")
        if route.two_way:
            resources[f"{base}RouteResponse"] = {
                "Type": "AWS::ApiGatewayV2::RouteResponse",
                "Properties": {
                    "ApiId": {"Ref": "Api"},
                    "RouteId": {"Ref": f"{base}Route"},
                    "RouteResponseKey": ROUTE_RESPONSE_KEY,
                },
            }
            route_ids.append(f"{base}RouteResponse")
    # CloudFormation only redeploys when the Deployment's logical id changes: derive it from
    # the routes and integrations so any change to them makes a new deployment.
    fingerprint = hashlib.sha256(
        json.dumps([resources[r] for r in sorted(resources)], sort_keys=True).encode()
    ).hexdigest()[:10]
    deployment = f"Deployment{fingerprint}"
    resources[deployment] = {
        "Type": "AWS::ApiGatewayV2::Deployment",
        "DependsOn": route_ids,
        "Properties": {"ApiId": {"Ref": "Api"}},
    }
    resources["Stage"] = {
        "Type": "AWS::ApiGatewayV2::Stage",
        "Properties": {
            "ApiId": {"Ref": "Api"},
            "StageName": desired.stage,
            "DeploymentId": {"Ref": deployment},
        },
    }
    parameters: dict[str, Any] = {}
    if secret:
        parameters[SECRET_PARAMETER] = {
            "Type": "String",
            "NoEcho": True,
            "Description": "The first of AWS_API_GATEWAY_WEBSOCKETS['GATEWAY_SECRETS'].",
        }
    outputs: dict[str, Any] = {
        "ApiId": {"Value": {"Ref": "Api"}},
        "WebSocketUrl": {
            "Value": {
                "Fn::Sub": "wss://${Api}.execute-api.${AWS::Region}.amazonaws.com/" + desired.stage
            }
        },
    }
    if desired.domain:
        _domain(desired, resources, parameters, outputs)
    result: dict[str, Any] = {
        "AWSTemplateFormatVersion": TEMPLATE_VERSION,
        "Description": f"WebSocket API {desired.name} for django-aws-api-gateway-websockets",
    }
    if parameters:
        result["Parameters"] = parameters
    result["Resources"] = resources
    result["Outputs"] = outputs
    return result


def _domain(
    desired: DesiredApi,
    resources: dict[str, Any],
    parameters: dict[str, Any],
    outputs: dict[str, Any],
) -> None:
    domain = desired.domain
    assert domain is not None
    if domain.certificate_arn:
        certificate: Any = domain.certificate_arn
    else:
        validation: dict[str, Any] = {"DomainName": domain.domain_name}
        if domain.hosted_zone_id:
            validation["HostedZoneId"] = domain.hosted_zone_id
        resources["Certificate"] = {
            "Type": "AWS::CertificateManager::Certificate",
            "Properties": {
                "DomainName": domain.domain_name,
                "ValidationMethod": "DNS",
                "DomainValidationOptions": [validation],
            },
        }
        certificate = {"Ref": "Certificate"}
    resources["DomainName"] = {
        "Type": "AWS::ApiGatewayV2::DomainName",
        "Properties": {
            "DomainName": domain.domain_name,
            "DomainNameConfigurations": [
                {
                    "CertificateArn": certificate,
                    "EndpointType": ENDPOINT_TYPE,
                    "SecurityPolicy": SECURITY_POLICY,
                }
            ],
        },
    }
    mapping: dict[str, Any] = {
        "ApiId": {"Ref": "Api"},
        "DomainName": {"Ref": "DomainName"},
        "Stage": {"Ref": "Stage"},
    }
    if domain.mapping_key:
        mapping["ApiMappingKey"] = domain.mapping_key
    resources["ApiMapping"] = {"Type": "AWS::ApiGatewayV2::ApiMapping", "Properties": mapping}
    if domain.hosted_zone_id:
        for rtype in ALIAS_TYPES:
            resources[f"DomainRecord{rtype}"] = {
                "Type": "AWS::Route53::RecordSet",
                "Properties": {
                    "HostedZoneId": domain.hosted_zone_id,
                    "Name": domain.domain_name + ".",
                    "Type": rtype,
                    "AliasTarget": {
                        "DNSName": {"Fn::GetAtt": ["DomainName", "RegionalDomainName"]},
                        "HostedZoneId": {"Fn::GetAtt": ["DomainName", "RegionalHostedZoneId"]},
                        "EvaluateTargetHealth": False,
                    },
                },
            }
    path = f"/{domain.mapping_key}" if domain.mapping_key else ""
    outputs["CustomDomainUrl"] = {"Value": f"wss://{domain.domain_name}{path}"}
