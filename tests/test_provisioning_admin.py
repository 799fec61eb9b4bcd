"""The admin's provisioning actions and change page call the same layer as the commands."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from django_aws_api_gateway_websockets.models import ApiGateway

CHANGELIST = "admin:django_aws_api_gateway_websockets_apigateway_changelist"


def act(client, action: str, record: ApiGateway, **extra: str):
    data = {"action": action, "_selected_action": [record.pk], **extra}
    return client.post(reverse(CHANGELIST), data, follow=True)


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_show_plan_apply_check_and_tear_down(admin_client, plane, record):
    shown = texts(act(admin_client, "show_plan", record))
    assert shown[0].startswith("chat: apigatewayv2.create_api(")
    assert plane.mutating() == []

    applied = texts(act(admin_client, "apply_plan", record))
    record.refresh_from_db()
    assert applied == [f"chat: provisioned (10 change(s)): {record.websocket_url}"]
    assert texts(act(admin_client, "check_drift", record)) == ["chat: AWS matches the records."]
    assert texts(act(admin_client, "show_plan", record)) == [
        "chat: AWS matches the records: nothing to do."
    ]

    page = act(admin_client, "tear_down", record)
    assert b"apigatewayv2.delete_api" in page.content
    assert plane.operations.count("DeleteApi") == 0  # asking is not doing
    done = texts(act(admin_client, "tear_down", record, confirmed="yes"))
    assert done == ["chat: torn down."]
    assert plane.raw("apigatewayv2").get_apis()["Items"] == []


def test_actions_report_the_aws_error(admin_client, plane, record):
    plane.fail_at = 0
    assert texts(act(admin_client, "apply_plan", record)) == [
        "chat: CreateApi: InternalFailure: injected failure"
    ]
    record.refresh_from_db()
    assert record.provisioning_status == ApiGateway.ProvisioningStatus.FAILED
    response = admin_client.get(
        reverse("admin:django_aws_api_gateway_websockets_apigateway_change", args=[record.pk])
    )
    assert b"injected failure" in response.content
    assert b"Failed" in response.content


def test_change_page_shows_the_websocket_url(admin_client, plane, record):
    act(admin_client, "apply_plan", record)
    record.refresh_from_db()
    response = admin_client.get(
        reverse("admin:django_aws_api_gateway_websockets_apigateway_change", args=[record.pk])
    )
    assert record.websocket_url.encode() in response.content
    assert b"Provisioned" in response.content


@pytest.mark.parametrize("action", ["apply_plan", "tear_down"])
def test_view_only_staff_cannot_apply_or_tear_down(client, django_user_model, record, action):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_apigateway"))
    client.force_login(user)
    response = act(client, action, record)
    assert texts(response) == ["No action selected."]
    record.refresh_from_db()
    assert record.provisioning_status == ApiGateway.ProvisioningStatus.NOT_PROVISIONED
