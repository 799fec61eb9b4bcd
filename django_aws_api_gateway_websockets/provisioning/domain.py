"""Custom domain: ACM certificate with DNS validation, the API Gateway domain name, the API
mapping and the Route 53 alias records, read and planned like the API itself."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from .api import not_found
from .desired import DESCRIPTION_PREFIX, ENDPOINT_TYPE, SECURITY_POLICY, DesiredApi, DesiredDomain
from .plan import Difference, Plan, Ref, Step

ALIAS_TYPES = ("A", "AAAA")
VALIDATION_TTL = 300


def fqdn(name: str) -> str:
    return name.lower().rstrip(".") + "."


@dataclass
class ActualDomain:
    certificate: dict[str, Any] | None = None
    domain: dict[str, Any] | None = None
    mappings: list[dict[str, Any]] = field(default_factory=list)
    #: record type -> the Route 53 record set named like the domain
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    validation_record: dict[str, Any] | None = None

    @property
    def target(self) -> tuple[str, str] | None:
        """``(ApiGatewayDomainName, HostedZoneId)`` of the existing domain name."""
        if not self.domain:
            return None
        for config in self.domain.get("DomainNameConfigurations", []):
            if config.get("ApiGatewayDomainName") and config.get("HostedZoneId"):
                return config["ApiGatewayDomainName"], config["HostedZoneId"]
        return None

    @property
    def validation(self) -> dict[str, str] | None:
        """The DNS validation record ACM asks for, once it has made one up."""
        for option in (self.certificate or {}).get("DomainValidationOptions", []):
            if option.get("ResourceRecord"):
                record: dict[str, str] = option["ResourceRecord"]
                return record
        return None


def read_record_sets(route53: Any, zone: str, name: str, types: tuple[str, ...]) -> dict[str, Any]:
    """The record sets named ``name`` of the given types in ``zone`` (one list call)."""
    found = route53.list_resource_record_sets(
        HostedZoneId=zone, StartRecordName=name, StartRecordType=types[0], MaxItems=str(len(types))
    )
    return {
        r["Type"]: r
        for r in found.get("ResourceRecordSets", [])
        if fqdn(r["Name"]) == fqdn(name) and r["Type"] in types
    }


def read_domain(
    clients: dict[str, Any],
    desired: DesiredDomain,
    resources: dict[str, str],
    *,
    teardown: bool = False,
) -> ActualDomain:
    """Read the domain's resources; the validation record only while it matters (the
    certificate is not issued yet, or it is about to be deleted)."""
    actual = ActualDomain()
    arn = desired.certificate_arn or resources.get("certificate")
    if arn:
        try:
            actual.certificate = clients["acm"].describe_certificate(CertificateArn=arn)[
                "Certificate"
            ]
        except ClientError as exc:
            if not not_found(exc):
                raise
    try:
        actual.domain = clients["apigatewayv2"].get_domain_name(DomainName=desired.domain_name)
    except ClientError as exc:
        if not not_found(exc):
            raise
    if actual.domain:
        actual.mappings = (
            clients["apigatewayv2"]
            .get_api_mappings(DomainName=desired.domain_name)
            .get("Items", [])
        )
    if desired.hosted_zone_id:
        actual.records = read_record_sets(
            clients["route53"], desired.hosted_zone_id, desired.domain_name, ALIAS_TYPES
        )
        recorded = resources.get("validation_record")
        issued = (actual.certificate or {}).get("Status") == "ISSUED"
        if recorded and (teardown or not issued):
            name, rtype = recorded.rsplit("|", 1)
            actual.validation_record = read_record_sets(
                clients["route53"], desired.hosted_zone_id, name, (rtype,)
            ).get(rtype)
    return actual


def _mapping_matches(mapping: dict[str, Any], api_id: Any, desired: DesiredApi) -> bool:
    assert desired.domain is not None
    return (
        mapping.get("ApiId") == api_id
        and mapping.get("Stage") == desired.stage
        and (mapping.get("ApiMappingKey") or "") == desired.domain.mapping_key
    )


def plan_domain(
    plan: Plan,
    desired: DesiredApi,
    actual: ActualDomain,
    resources: dict[str, str],
    api_ref: Any,
    refs: dict[str, Any],
) -> None:
    """Append the domain calls to ``plan``; ``refs`` receives the values already known."""
    domain = desired.domain
    assert domain is not None
    name = domain.domain_name
    zone = domain.hosted_zone_id

    arn = domain.certificate_arn or resources.get("certificate")
    if arn and actual.certificate is None:
        raise LookupError(f"Certificate {arn} was not found in {desired.region}.")
    if arn:
        refs["certificate"] = arn
        cert_ref: Any = arn
    else:
        plan.add(
            Step(
                "acm",
                "request_certificate",
                {
                    "DomainName": name,
                    "ValidationMethod": "DNS",
                    # Recorded before the call: a retried run sends the same token, and ACM
                    # answers a repeated token (within an hour) with the same certificate.
                    "IdempotencyToken": resources.get("certificate_token") or secrets.token_hex(16),
                },
                f"certificate for {name} in {desired.region}",
                key="certificate",
            ),
            "missing",
        )
        cert_ref = Ref("certificate")
    status = (actual.certificate or {}).get("Status")
    if status != "ISSUED":
        known = actual.validation
        if known:
            refs.update(
                validation_name=known["Name"],
                validation_type=known["Type"],
                validation_value=known["Value"],
            )
        else:
            plan.add(
                Step(
                    "acm",
                    "describe_certificate",
                    {"CertificateArn": cert_ref},
                    "wait for ACM to give the DNS validation record",
                    key="certificate",
                    wait="validation",
                )
            )
        if zone:
            has = actual.validation_record
            if not (known and has and fqdn(has["Name"]) == fqdn(known["Name"])):
                plan.add(
                    _change_records(
                        zone,
                        "UPSERT",
                        [
                            {
                                "Name": Ref("validation_name"),
                                "Type": Ref("validation_type"),
                                "TTL": VALIDATION_TTL,
                                "ResourceRecords": [{"Value": Ref("validation_value")}],
                            }
                        ],
                        comment=f"validate {name}",
                        reason="certificate validation record",
                        key="validation_record",
                    ),
                    "certificate not validated",
                )
        else:
            plan.notes.append(
                "No Route 53 zone is set: create the certificate's validation CNAME yourself "
                "(printed while waiting), then run apply again."
            )
        plan.add(
            Step(
                "acm",
                "describe_certificate",
                {"CertificateArn": cert_ref},
                "wait until the certificate is ISSUED",
                key="certificate",
                wait="issued",
            )
        )

    target = actual.target
    if actual.domain is None:
        plan.add(
            Step(
                "apigatewayv2",
                "create_domain_name",
                {
                    "DomainName": name,
                    "DomainNameConfigurations": [
                        {
                            "CertificateArn": cert_ref,
                            "EndpointType": ENDPOINT_TYPE,
                            "SecurityPolicy": SECURITY_POLICY,
                        }
                    ],
                },
                f"custom domain {name}",
                key="domain",
            ),
            "missing",
        )
    elif target:
        refs["domain_target"], refs["domain_zone"] = target
        config = actual.domain.get("DomainNameConfigurations", [{}])[0]
        if config.get("CertificateArn") not in (None, arn) and arn:
            plan.differences.append(
                Difference("domain", f"uses certificate {config.get('CertificateArn')}")
            )

    mapped = [m for m in actual.mappings if _mapping_matches(m, api_ref, desired)]
    if not mapped:
        recorded = resources.get("api_mapping")
        for mapping in actual.mappings:
            if mapping.get("ApiMappingId") == recorded:
                plan.add(
                    Step(
                        "apigatewayv2",
                        "delete_api_mapping",
                        {"DomainName": name, "ApiMappingId": recorded},
                        "the mapping changed",
                        key="api_mapping",
                    )
                )
        params: dict[str, Any] = {"DomainName": name, "ApiId": api_ref, "Stage": desired.stage}
        if domain.mapping_key:
            params["ApiMappingKey"] = domain.mapping_key
        plan.add(
            Step("apigatewayv2", "create_api_mapping", params, "map the API", key="api_mapping"),
            "missing",
        )

    if not zone:
        shown = target[0] if target else "the domain's API Gateway domain name"
        plan.notes.append(
            f"No Route 53 zone is set: point {name} at {shown} (CNAME or alias) in your DNS."
        )
        return
    want_target = fqdn(target[0]) if target else None
    aligned = (
        target is not None
        and bool(want_target)
        and all(
            fqdn(actual.records.get(t, {}).get("AliasTarget", {}).get("DNSName", "")) == want_target
            and actual.records[t]["AliasTarget"].get("HostedZoneId") == target[1]
            for t in ALIAS_TYPES
        )
    )
    if not aligned:
        alias = {
            "HostedZoneId": Ref("domain_zone"),
            "DNSName": Ref("domain_target"),
            "EvaluateTargetHealth": False,
        }
        plan.add(
            _change_records(
                zone,
                "UPSERT",
                [{"Name": name, "Type": rtype, "AliasTarget": alias} for rtype in ALIAS_TYPES],
                comment=f"alias {name}",
                reason=f"alias {name} to the API Gateway domain",
                key="alias_records",
            ),
            "DNS alias missing or pointing elsewhere",
        )
        plan.add(
            Step(
                "route53",
                "get_change",
                {"Id": Ref("change")},
                "wait until Route 53 has the records everywhere",
                wait="insync",
            )
        )


def plan_domain_teardown(
    plan: Plan, domain: DesiredDomain, actual: ActualDomain, resources: dict[str, str]
) -> None:
    """Delete, in dependency order, only the domain resources this layer created."""
    name = domain.domain_name
    recorded = resources.get("api_mapping")
    if recorded and any(m.get("ApiMappingId") == recorded for m in actual.mappings):
        plan.add(
            Step(
                "apigatewayv2",
                "delete_api_mapping",
                {"DomainName": name, "ApiMappingId": recorded},
                "remove the API mapping",
                key="api_mapping",
            )
        )
    zone = domain.hosted_zone_id
    if resources.get("alias_records") and actual.records and zone:
        plan.add(_delete_records(zone, list(actual.records.values()), "alias_records"))
    if resources.get("domain") and actual.domain:
        plan.add(
            Step(
                "apigatewayv2",
                "delete_domain_name",
                {"DomainName": name},
                "remove the custom domain",
                key="domain",
            )
        )
    if resources.get("validation_record") and actual.validation_record and zone:
        plan.add(_delete_records(zone, [actual.validation_record], "validation_record"))
    if resources.get("certificate") and actual.certificate:
        plan.add(
            Step(
                "acm",
                "delete_certificate",
                {"CertificateArn": resources["certificate"]},
                "remove the certificate",
                key="certificate",
            )
        )


def _delete_records(zone: str, records: list[dict[str, Any]], key: str) -> Step:
    # A DELETE must repeat the record set exactly as it is.
    return _change_records(
        zone, "DELETE", records, comment="teardown", reason="remove DNS records", key=key
    )


def _change_records(
    zone: str,
    action: str,
    records: list[dict[str, Any]],
    *,
    comment: str,
    reason: str,
    key: str,
) -> Step:
    return Step(
        "route53",
        "change_resource_record_sets",
        {
            "HostedZoneId": zone,
            "ChangeBatch": {
                "Comment": f"{DESCRIPTION_PREFIX}: {comment}",
                "Changes": [{"Action": action, "ResourceRecordSet": r} for r in records],
            },
        },
        reason,
        key=key,
    )
