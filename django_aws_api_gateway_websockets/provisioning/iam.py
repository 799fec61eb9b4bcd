"""Least-privilege IAM policies: the runtime role's and the provisioning (deploy) role's.

The provisioning policy lists the IAM action behind every AWS operation the layer calls
(:data:`OPERATIONS`), each on the narrowest resource AWS lets a policy name.
"""

from __future__ import annotations

from typing import Any

from ..models import ApiGateway
from .desired import desired_api

POLICY_VERSION = "2012-10-17"
MANAGEMENT_METHODS = ("POST", "GET", "DELETE")
SERVICE_LINKED_ROLE = "ops.apigateway.amazonaws.com"

#: Every operation the layer calls -> the IAM action it needs (apigatewayv2 is authorised by
#: HTTP method on the resource path).
OPERATIONS: dict[str, str] = {
    **{
        op: "apigateway:GET"
        for op in (
            "GetApi",
            "GetIntegrations",
            "GetRoutes",
            "GetRouteResponses",
            "GetStage",
            "GetDomainName",
            "GetApiMappings",
        )
    },
    **{
        op: "apigateway:POST"
        for op in (
            "CreateApi",
            "CreateIntegration",
            "CreateRoute",
            "CreateRouteResponse",
            "CreateStage",
            "CreateDeployment",
            "CreateDomainName",
            "CreateApiMapping",
        )
    },
    **{op: "apigateway:PATCH" for op in ("UpdateApi", "UpdateIntegration", "UpdateRoute")},
    **{
        op: "apigateway:DELETE"
        for op in (
            "DeleteApi",
            "DeleteIntegration",
            "DeleteRoute",
            "DeleteRouteResponse",
            "DeleteStage",
            "DeleteDomainName",
            "DeleteApiMapping",
        )
    },
    "RequestCertificate": "acm:RequestCertificate",
    "DescribeCertificate": "acm:DescribeCertificate",
    "DeleteCertificate": "acm:DeleteCertificate",
    "ChangeResourceRecordSets": "route53:ChangeResourceRecordSets",
    "ListResourceRecordSets": "route53:ListResourceRecordSets",
    "GetChange": "route53:GetChange",
}
#: Not called by the layer: API Gateway calls it on the caller's behalf for the first custom
#: domain in an account (CreateDomainName).
IMPLIED_BY = {"CreateDomainName": "iam:CreateServiceLinkedRole"}


def runtime_policy(gateway: ApiGateway, account: str = "*") -> dict[str, Any]:
    """``execute-api:ManageConnections`` on exactly this API and stage's ``@connections``."""
    if not gateway.api_id:
        raise ValueError("The API has no id yet: apply it first, or enter the id of an API.")
    base = f"arn:aws:execute-api:{gateway.region}:{account}:{gateway.api_id}/{gateway.stage}"
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "ManageWebSocketConnections",
                "Effect": "Allow",
                "Action": "execute-api:ManageConnections",
                "Resource": [f"{base}/{method}/@connections/*" for method in MANAGEMENT_METHODS],
            }
        ],
    }


def provisioning_policy(gateway: ApiGateway, account: str = "*") -> dict[str, Any]:
    """What plan, apply, drift, rotation and teardown need for this record, and nothing else."""
    region = gateway.region
    apigw = f"arn:aws:apigateway:{region}::"
    api = f"{apigw}/apis/{gateway.api_id}" if gateway.api_id else f"{apigw}/apis/*"
    statements: list[dict[str, Any]] = [
        _allow("CreateWebSocketApi", ["apigateway:POST"], [f"{apigw}/apis"]),
        _allow(
            "ManageWebSocketApi",
            ["apigateway:DELETE", "apigateway:GET", "apigateway:PATCH", "apigateway:POST"],
            sorted({api, f"{api}/*"}),
        ),
    ]
    desired = desired_api(gateway)
    domain = desired.domain
    if domain:
        name = domain.domain_name
        statements += [
            _allow("CreateCustomDomain", ["apigateway:POST"], [f"{apigw}/domainnames"]),
            _allow(
                "ManageCustomDomain",
                ["apigateway:DELETE", "apigateway:GET", "apigateway:POST"],
                [f"{apigw}/domainnames/{name}", f"{apigw}/domainnames/{name}/*"],
            ),
            {
                **_allow(
                    "ApiGatewayServiceLinkedRole",
                    ["iam:CreateServiceLinkedRole"],
                    [
                        f"arn:aws:iam::{account}:role/aws-service-role/{SERVICE_LINKED_ROLE}/"
                        "AWSServiceRoleForAPIGateway"
                    ],
                ),
                "Condition": {"StringEquals": {"iam:AWSServiceName": SERVICE_LINKED_ROLE}},
            },
            # ACM cannot scope a request to a resource; the certificate ARN is not known yet.
            _allow("RequestCertificate", ["acm:RequestCertificate"], ["*"]),
            _allow(
                "ReadAndDeleteCertificate",
                ["acm:DeleteCertificate", "acm:DescribeCertificate"],
                [domain.certificate_arn or f"arn:aws:acm:{region}:{account}:certificate/*"],
            ),
        ]
        if domain.hosted_zone_id:
            zone = f"arn:aws:route53:::hostedzone/{domain.hosted_zone_id}"
            statements += [
                _allow("ReadZoneRecords", ["route53:ListResourceRecordSets"], [zone]),
                {
                    **_allow("WriteDomainRecords", ["route53:ChangeResourceRecordSets"], [zone]),
                    "Condition": {
                        "ForAllValues:StringLike": {
                            "route53:ChangeResourceRecordSetsNormalizedRecordNames": [
                                name,
                                f"*.{name}",
                            ]
                        },
                        "ForAllValues:StringEquals": {
                            "route53:ChangeResourceRecordSetsRecordTypes": ["A", "AAAA", "CNAME"]
                        },
                    },
                },
                _allow("WaitForDnsChanges", ["route53:GetChange"], ["arn:aws:route53:::change/*"]),
            ]
    return {"Version": POLICY_VERSION, "Statement": statements}


def policy_actions(policy: dict[str, Any]) -> set[str]:
    actions: set[str] = set()
    for statement in policy["Statement"]:
        value = statement["Action"]
        actions.update([value] if isinstance(value, str) else value)
    return actions


def _allow(sid: str, actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
