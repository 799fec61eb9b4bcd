"""System checks: every misconfiguration is reported with a stable id, and no check ever raises."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core import checks as django_checks
from django.test import override_settings

from django_aws_api_gateway_websockets import checks
from tests import urls_bad

GOOD_SECRET = "s" * 40
URL_IDS = {"dagw.E010", "dagw.E011", "dagw.E012", "dagw.E013", "dagw.W011", "dagw.W012"}


def _ids(messages) -> list[str]:
    return [message.id for message in messages]


def _with(**values: object) -> override_settings:
    return override_settings(
        AWS_API_GATEWAY_WEBSOCKETS={"GATEWAY_SECRETS": [GOOD_SECRET], **values}
    )


def _settings_ids(value: object) -> list[str]:
    with override_settings(AWS_API_GATEWAY_WEBSOCKETS=value):
        return _ids(checks.check_settings()) + _ids(checks.check_gateway_secret())


# Settings ----------------------------------------------------------------------------------------


def test_good_configuration_has_no_messages():
    with _with(TOKEN_LIFETIME=30, CHANNEL_NAME_PATTERN=r"^[a-z]+$", GATEWAY_CACHE_SECONDS=0):
        assert checks.check_settings() == []
        assert checks.check_gateway_secret() == []


def test_the_test_settings_are_clean():
    assert checks.check_settings() == []
    assert checks.check_gateway_secret() == []


def test_checks_are_registered():
    registered = django_checks.registry.registry.get_checks(include_deployment_checks=True)
    for check in (checks.check_settings, checks.check_gateway_secret, checks.check_websocket_urls):
        assert check in registered


@pytest.mark.parametrize("value", ["not a dict", ["GATEWAY_SECRETS"], 5, None])
def test_e001_settings_not_a_dict(value):
    ids = _settings_ids(value)
    assert "dagw.E001" in ids


def test_e001_not_for_a_dict():
    assert "dagw.E001" not in _settings_ids({"GATEWAY_SECRETS": [GOOD_SECRET]})


def test_e002_unknown_key():
    with _with(TOKEN_LIFETIME=30, TOKEN_LIFETME=30):
        messages = checks.check_settings()
    assert _ids(messages) == ["dagw.E002"]
    assert "TOKEN_LIFETME" in messages[0].msg


@pytest.mark.parametrize("value", ["60", None, True, [60], {"s": 1}])
@pytest.mark.parametrize("key", ["TOKEN_LIFETIME", "CONNECT_LIMIT_PER_IP", "GATEWAY_CACHE_SECONDS"])
def test_e003_not_a_number(key, value):
    with _with(**{key: value}):
        messages = checks.check_settings()
    assert _ids(messages) == ["dagw.E003"]
    assert key in messages[0].msg


@pytest.mark.parametrize("value", [0, 1, 2.5, 10**6])
def test_e003_e004_not_for_valid_numbers(value):
    with _with(CONNECT_LIMIT_PER_IP=value, LAST_SEEN_UPDATE_INTERVAL=value):
        assert checks.check_settings() == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("CONNECT_LIMIT_PER_IP", -1),
        ("LAST_SEEN_UPDATE_INTERVAL", -0.5),
        ("TOKEN_LIFETIME", 0),
        ("TOKEN_MINT_WINDOW", 0),
        ("CONNECT_WINDOW", 0),
        ("SEND_CHUNK_SIZE", 0),
        ("TASK_BATCH_SIZE", -3),
    ],
)
def test_e004_out_of_range(key, value):
    with _with(**{key: value}):
        messages = checks.check_settings()
    assert _ids(messages) == ["dagw.E004"]
    assert key in messages[0].msg


@pytest.mark.parametrize("value", ["one-secret-" + "x" * 32, 5, None, {"a": "b"}, [""], [None]])
def test_e005_secrets_must_be_a_list_of_non_empty_strings(value):
    with _with(GATEWAY_SECRETS=value):
        assert "dagw.E005" in _ids(checks.check_settings())


@pytest.mark.parametrize("value", [[], [GOOD_SECRET], (GOOD_SECRET, "t" * 40)])
def test_e005_not_for_a_list_of_strings(value):
    with _with(GATEWAY_SECRETS=value):
        assert "dagw.E005" not in _ids(checks.check_settings())


@pytest.mark.parametrize("secret", ["it's-" + "x" * 40, "x" * 511])
def test_e008_secret_unusable_as_a_static_mapping(secret):
    with _with(GATEWAY_SECRETS=[secret]):
        assert _ids(checks.check_settings()) == ["dagw.E008"]


def test_e008_not_for_the_longest_usable_secret():
    with _with(GATEWAY_SECRETS=["x" * 510]):
        assert checks.check_settings() == []


@pytest.mark.parametrize("pattern", ["[unclosed", "(?P<", 5, None, [r"^a$"]])
def test_e006_bad_channel_pattern(pattern):
    with _with(CHANNEL_NAME_PATTERN=pattern):
        assert _ids(checks.check_settings()) == ["dagw.E006"]


def test_e006_not_for_a_valid_pattern():
    with _with(CHANNEL_NAME_PATTERN=r"^room-\d+$"):
        assert checks.check_settings() == []


@pytest.mark.parametrize("value", ["yes", 1, 0, "False"])
def test_e007_allow_unauthenticated_not_a_bool(value):
    with _with(ALLOW_UNAUTHENTICATED_GATEWAY=value):
        assert _ids(checks.check_settings()) == ["dagw.E007"]


@pytest.mark.parametrize("value", [True, False, None])
def test_e007_not_for_true_false_none(value):
    with _with(ALLOW_UNAUTHENTICATED_GATEWAY=value):
        assert checks.check_settings() == []


@pytest.mark.parametrize("settings_value", [{}, {"GATEWAY_SECRETS": []}, "not a dict"])
def test_w001_no_secret(settings_value):
    with override_settings(AWS_API_GATEWAY_WEBSOCKETS=settings_value):
        assert _ids(checks.check_gateway_secret()) == ["dagw.W001"]


def test_w001_is_shown_outside_deploy_checks_too():
    """A tunnelled development server is as reachable as production: ``manage.py check``
    (and runserver) must say so, not only ``check --deploy``."""
    registered = django_checks.registry.registry.get_checks(include_deployment_checks=False)
    assert checks.check_gateway_secret in registered


def test_w013_explicit_unauthenticated_opt_in_is_warned_about():
    with override_settings(AWS_API_GATEWAY_WEBSOCKETS={"ALLOW_UNAUTHENTICATED_GATEWAY": True}):
        assert _ids(checks.check_gateway_secret()) == ["dagw.W013"]


@pytest.mark.parametrize(
    "secret",
    [
        "sécret-" + "x" * 40,  # non-ASCII: arrives latin-1 decoded under WSGI, never matches
        " " + "x" * 40,  # surrounding whitespace is stripped by proxies
        "x" * 40 + "\t",
        "x" * 20 + "\n" + "x" * 20,
        "x" * 20 + "'" + "x" * 20,
    ],
)
def test_e008_secret_must_be_printable_ascii(secret):
    with _with(GATEWAY_SECRETS=[secret]):
        assert _ids(checks.check_settings()) == ["dagw.E008"]


@pytest.mark.parametrize(
    ("key", "value", "check_id"),
    [
        ("GATEWAY_AUTHENTICATORS", "not.a.list", "dagw.E016"),
        ("THROTTLE_CLASSES", ["no.such.Throttle"], "dagw.E017"),
        ("PERMISSION_CLASSES", ["django_aws_api_gateway_websockets.permissions.Nope"], "dagw.E017"),
        ("CLIENT_IP_FUNCTION", "no.such.function", "dagw.E017"),
        ("IPV6_RATE_LIMIT_PREFIX", 129, "dagw.E018"),
        ("IPV6_RATE_LIMIT_PREFIX", 0, "dagw.E018"),
        ("CLIENT_IP_HEADER", 5, "dagw.E019"),
    ],
)
def test_pipeline_settings_are_checked(key, value, check_id):
    with _with(**{key: value}):
        assert check_id in _ids(checks.check_settings())


def test_pipeline_settings_defaults_pass():
    with _with(
        PERMISSION_CLASSES=["django_aws_api_gateway_websockets.permissions.IsAuthenticated"],
        TRUSTED_PROXY_COUNT=1,
        IPV6_RATE_LIMIT_PREFIX=56,
        CLIENT_IP_HEADER="CloudFront-Viewer-Address",
    ):
        assert checks.check_settings() == []


def test_w001_when_the_setting_is_absent():
    with override_settings():
        del settings.AWS_API_GATEWAY_WEBSOCKETS
        assert _ids(checks.check_gateway_secret()) == ["dagw.W001"]
        assert checks.check_settings() == []


@pytest.mark.parametrize("secrets", [["short"], [GOOD_SECRET, "x" * 31]])
def test_w002_short_secret(secrets):
    with _with(GATEWAY_SECRETS=secrets):
        assert _ids(checks.check_gateway_secret()) == ["dagw.W002"]


def test_w002_not_for_a_32_character_secret():
    with _with(GATEWAY_SECRETS=["x" * 32]):
        assert checks.check_gateway_secret() == []


@pytest.mark.parametrize(
    ("settings_value", "expected"),
    [
        ({"GATEWAY_SECRETS": 5}, "dagw.E005"),
        ({"GATEWAY_SECRETS": 3.5}, "dagw.E005"),
        ({"GATEWAY_SECRETS": True}, "dagw.E005"),
        ({"GATEWAY_SECRETS": object()}, "dagw.E005"),
        ({"GATEWAY_SECRETS": [5, None]}, "dagw.E005"),
        ({"GATEWAY_SECRETS": {"a": 1}}, "dagw.E005"),
        ({"GATEWAY_SECRETS": [GOOD_SECRET], "CHANNEL_NAME_PATTERN": b"^a$"}, "dagw.E006"),
        ({"GATEWAY_SECRETS": [GOOD_SECRET], 1: "x", "FOO": 2}, "dagw.E002"),
    ],
)
def test_wrong_types_are_reported_never_raised(settings_value, expected):
    with override_settings(AWS_API_GATEWAY_WEBSOCKETS=settings_value):
        messages = checks.check_settings() + checks.check_gateway_secret()
    assert expected in _ids(messages)


# URLs --------------------------------------------------------------------------------------------


def _url_messages(urlconf: str = "tests.urls_bad") -> list:
    with override_settings(ROOT_URLCONF=urlconf):
        return checks.check_websocket_urls()


def _by_view(messages, view) -> list[str]:
    return sorted(message.id for message in messages if message.obj is view)


def test_the_test_urlconf_is_clean():
    assert checks.check_websocket_urls() == []


def test_good_views_have_no_messages():
    assert _by_view(_url_messages(), urls_bad.GoodView) == []


def test_e010_route_without_a_route_slug():
    messages = _url_messages()
    assert _by_view(messages, urls_bad.NoSlugView) == ["dagw.E010", "dagw.E010"]
    # The good routes (path converter, regex group, slug in an include prefix) are not flagged.
    assert [m.obj for m in messages if m.id == "dagw.E010"] == [urls_bad.NoSlugView] * 2


def test_w011_dispatch_override():
    messages = _url_messages()
    assert _by_view(messages, urls_bad.DispatchView) == ["dagw.W011"]
    assert [m.obj for m in messages if m.id == "dagw.W011"] == [urls_bad.DispatchView]


def test_e011_reserved_handler_names():
    messages = _url_messages()
    assert _by_view(messages, urls_bad.ReservedHandlersView) == ["dagw.E011"]
    message = next(m for m in messages if m.id == "dagw.E011")
    assert "_connect" in message.msg and "dispatch" in message.msg
    assert [m.obj for m in messages if m.id == "dagw.E011"] == [urls_bad.ReservedHandlersView]


def test_e012_missing_handler():
    messages = _url_messages()
    assert _by_view(messages, urls_bad.MissingHandlersView) == ["dagw.E012"]
    assert "nonexistent" in next(m for m in messages if m.id == "dagw.E012").msg
    assert [m.obj for m in messages if m.id == "dagw.E012"] == [urls_bad.MissingHandlersView]


def test_w012_no_default_handler():
    messages = _url_messages()
    assert _by_view(messages, urls_bad.NoDefaultView) == ["dagw.W012"]
    assert [m.obj for m in messages if m.id == "dagw.W012"] == [urls_bad.NoDefaultView]


def test_e013_permissions_without_tokens():
    messages = _url_messages()
    assert _by_view(messages, urls_bad.PermissionsWithoutTokenView) == ["dagw.E013"]
    assert _by_view(messages, urls_bad.AllPermissionsWithoutTokenView) == ["dagw.E013"]
    e013 = {m.obj for m in messages if m.id == "dagw.E013"}
    assert e013 == {urls_bad.PermissionsWithoutTokenView, urls_bad.AllPermissionsWithoutTokenView}


def test_url_check_ids_are_errors_and_warnings():
    levels = {m.id: m.level for m in _url_messages()}
    assert set(levels) == URL_IDS
    for message_id, level in levels.items():
        expected = django_checks.WARNING if message_id.startswith("dagw.W") else django_checks.ERROR
        assert level == expected, message_id


def test_wrong_type_handler_names_are_reported_never_raised():
    messages = _url_messages("tests.urls_bad_types")
    assert {"dagw.E011", "dagw.E012"} & set(_ids(messages))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"TRANSPORT": "no.such.module.Transport"}, "dagw.E009"),
        ({"TRANSPORT": "django_aws_api_gateway_websockets.models.WebSocketSession"}, "dagw.E009"),
        ({"TRANSPORT": 42}, "dagw.E009"),
        ({"TRANSPORT_OPTIONS": ["endpoint_url"]}, "dagw.E014"),
        ({"TASK_BACKEND": None}, "dagw.E015"),
    ],
)
def test_transport_and_task_settings_are_checked(overrides, expected):
    with override_settings(
        AWS_API_GATEWAY_WEBSOCKETS={**settings.AWS_API_GATEWAY_WEBSOCKETS, **overrides}
    ):
        assert expected in [message.id for message in checks.check_settings()]


def test_valid_transport_settings_pass():
    valid = {
        "TRANSPORT": "django_aws_api_gateway_websockets.transports.outbox.OutboxTransport",
        "TRANSPORT_OPTIONS": {"max_attempts": 2},
        "TASK_BACKEND": "default",
    }
    with override_settings(
        AWS_API_GATEWAY_WEBSOCKETS={**settings.AWS_API_GATEWAY_WEBSOCKETS, **valid}
    ):
        assert checks.check_settings() == []


@pytest.mark.parametrize(
    "value",
    [
        "http://127.0.0.1:4510",
        {"apigatewayv2": "127.0.0.1:4510"},
        {"apigatewayv2": "ftp://host"},
        {"acm": 5},
        {"route53": "http://"},
    ],
)
def test_e016_malformed_endpoint_urls(value):
    with _with(AWS_ENDPOINT_URLS=value):
        assert "dagw.E021" in _ids(checks.check_settings())


def test_e016_not_for_endpoint_urls_of_moto_or_the_local_gateway():
    urls = {"apigatewayv2": "http://127.0.0.1:4510", "acm": "https://acm.internal"}
    with _with(AWS_ENDPOINT_URLS=urls):
        assert checks.check_settings() == []
