"""Route selection and RequestParameters evaluated as API Gateway evaluates them (reference §1.3,
§2.3), without sockets."""

from __future__ import annotations

import pytest

from django_aws_api_gateway_websockets.local_gateway.mapping import (
    MappingSources,
    apply_request_parameters,
    json_path,
    resolve,
    select_route,
    stringify,
    substitute_stage_variables,
)

KEYS = {"$connect", "$disconnect", "$default", "sendmessage", "5", "true", "[a, b]"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"action": "sendmessage"}', "sendmessage"),
        ('{"action": "SendMessage"}', "$default"),  # exact, case-sensitive
        ('{"other": 1}', "$default"),  # missing key -> "" -> no match
        ("not json", "$default"),
        ("", "$default"),
        ('{"action": 5}', "5"),  # numbers are stringified
        ('{"action": true}', "true"),
        ('{"action": ["a", "b"]}', "[a, b]"),
        ('{"action": "$connect"}', "$default"),  # reserved keys are never selected by messages
        ('["sendmessage"]', "$default"),
        ('{"action": "nope"}', "$default"),
    ],
)
def test_route_selection(body, expected):
    assert select_route("$request.body.action", body, KEYS) == expected


def test_no_match_without_default_is_none():
    assert select_route("$request.body.action", '{"action": "x"}', {"sendmessage"}) is None
    assert select_route("$request.body.action", "garbage", {"sendmessage"}) is None


def test_nested_and_composite_expressions():
    keys = {"chat/send", "deep"}
    body = '{"service": "chat", "action": "send", "a": {"b": [{"c": "deep"}]}}'
    assert select_route("${request.body.service}/${request.body.action}", body, keys) == (
        "chat/send"
    )
    assert select_route("$request.body.a.b[0].c", body, keys) == "deep"


def test_json_path_and_stringify():
    doc = {"a": {"b": [1, {"c": None}]}, "k.x": 1}
    assert json_path(doc, "a.b[0]") == 1
    assert json_path(doc, "$.a.b[1].c") is None
    assert json_path(doc, "a.z") is not None and stringify({"x": 1}) == "{x=1}"
    assert stringify(1.5) == "1.5" and stringify(None) == ""


def test_stage_variables_substitution():
    assert (
        substitute_stage_variables(
            "http://${stageVariables.host}/ws/${stageVariables.x}", {"host": "h:1"}
        )
        == "http://h:1/ws/"
    )


def test_request_parameters_sources():
    sources = MappingSources(
        context={"connectionId": "abc=", "identity.sourceIp": "1.2.3.4"},
        stage_variables={"env": "dev"},
        headers=[("Origin", "https://x"), ("X-Multi", "1"), ("x-multi", "2")],
        query=[("token", "t1"), ("token", "t2")],
        body='{"user": {"id": 7}}',
    )
    mapped = apply_request_parameters(
        {
            "integration.request.header.connectionId": "context.connectionId",
            "integration.request.header.X-Ip": "context.identity.sourceIp",
            "integration.request.header.X-Env": "stageVariables.env",
            "integration.request.header.X-Static": "'a static value'",
            "integration.request.header.X-Origin": "route.request.header.origin",
            "integration.request.header.X-Multi": "route.request.multivalueheader.X-Multi",
            "integration.request.querystring.token": "route.request.querystring.token",
            "integration.request.header.X-User": "route.request.body.user.id",
            "integration.request.header.X-Missing": "route.request.header.Nope",
            "integration.request.header.X-Unknown": "context.authorizer.principalId",
        },
        sources,
    )
    assert mapped.headers == {
        "connectionId": "abc=",
        "X-Ip": "1.2.3.4",
        "X-Env": "dev",
        "X-Static": "a static value",
        "X-Origin": "https://x",
        "X-Multi": "1,2",
        "X-User": "7",
    }
    assert mapped.query == {"token": "t2"}
    assert resolve("route.request.body.user", sources) == "{id=7}"
    assert resolve("nonsense", sources) is None
