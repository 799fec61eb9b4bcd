"""Admin for every model. Tokens show only their hash; system-written records are read-only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

from .conf import ws_settings
from .endpoints import LOCAL_WRITES_REFUSED, local_gateway_url
from .models import (
    ApiGateway,
    ApiGatewayAdditionalRoute,
    RateLimitWindow,
    WebSocketSession,
    WebSocketToken,
)
from .provisioning import Provisioner, ProvisioningError

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin
    TabularInline = admin.TabularInline
else:
    # Django's admin classes are generic only in django-stubs: at runtime ``ModelAdmin[Model]``
    # works only in projects that call ``django_stubs_ext.monkeypatch()``.

    class _Subscriptable:
        def __class_getitem__(cls, item: Any) -> type:
            return cls

    class ModelAdmin(_Subscriptable, admin.ModelAdmin):
        pass

    class TabularInline(_Subscriptable, admin.TabularInline):
        pass


class ReadOnlyAdmin(ModelAdmin[Any]):
    """Rows only the package writes: viewable and deletable, never added or edited by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AdditionalRouteInline(TabularInline[ApiGatewayAdditionalRoute, ApiGateway]):
    model = ApiGatewayAdditionalRoute
    extra = 0
    fields = ["route_key", "route_slug", "integration_uri", "two_way", "deployed"]
    readonly_fields = ["deployed"]


@admin.register(ApiGateway)
class ApiGatewayAdmin(ModelAdmin[ApiGateway]):
    list_display = [
        "name",
        "api_id",
        "region",
        "stage",
        "custom_domain_name",
        "provisioning_status",
    ]
    list_filter = ["provisioning_status", "region", "stage"]
    search_fields = ["name", "api_id", "custom_domain_name", "target_base_endpoint"]
    readonly_fields = [
        "websocket_url",
        "provisioning_status",
        "provisioning_error",
        "provisioned_at",
        "api_endpoint",
        "deployment_id",
        "created_at",
        "updated_at",
    ]
    inlines = [AdditionalRouteInline]
    actions = ["show_plan", "apply_plan", "check_drift", "tear_down"]
    fieldsets = [
        (None, {"fields": ["name", "description", "target_base_endpoint", "default_channel_name"]}),
        (_("AWS"), {"fields": ["api_id", "region", "stage", "route_selection_expression"]}),
        (
            _("Custom domain"),
            {
                "fields": [
                    "custom_domain_name",
                    "api_mapping_key",
                    "certificate_arn",
                    "hosted_zone_id",
                ]
            },
        ),
        (_("Provisioning"), {"fields": tuple(readonly_fields)}),
    ]

    @admin.display(description=_("WebSocket URL"))
    def websocket_url(self, obj: ApiGateway) -> str:
        return obj.websocket_url or "-"

    # Provisioning actions: the same layer as the commands; AWS errors become messages.

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[ApiGateway],
        action: Any,
        *,
        writes: bool = False,
    ) -> None:
        if writes and local_gateway_url():
            self.message_user(request, str(LOCAL_WRITES_REFUSED), messages.ERROR)
            return
        for gateway in queryset:
            try:
                level, text = action(Provisioner(gateway))
            except ProvisioningError as exc:
                level, text = messages.ERROR, str(exc)
            self.message_user(request, f"{gateway.name}: {text}", level)

    @admin.action(description=_("Show the AWS provisioning plan"), permissions=["view"])
    def show_plan(self, request: HttpRequest, queryset: QuerySet[ApiGateway]) -> None:
        def show(provisioner: Provisioner) -> tuple[int, str]:
            plan = provisioner.plan()
            if plan.in_sync:
                return messages.SUCCESS, str(_("AWS matches the records: nothing to do."))
            lines = plan.describe(tuple(ws_settings.gateway_secrets)) + plan.notes
            return messages.INFO, "; ".join(lines)

        self._each(request, queryset, show)

    @admin.action(
        description=_("Apply: create or update the AWS resources"), permissions=["change"]
    )
    def apply_plan(self, request: HttpRequest, queryset: QuerySet[ApiGateway]) -> None:
        def apply(provisioner: Provisioner) -> tuple[int, str]:
            plan = provisioner.apply()
            count = len(plan.mutating_steps)
            url = provisioner.gateway.websocket_url
            return messages.SUCCESS, str(_("provisioned (%(count)d change(s)): %(url)s")) % {
                "count": count,
                "url": url,
            }

        self._each(request, queryset, apply, writes=True)

    @admin.action(
        description=_("Check for drift between AWS and the records"), permissions=["view"]
    )
    def check_drift(self, request: HttpRequest, queryset: QuerySet[ApiGateway]) -> None:
        def check(provisioner: Provisioner) -> tuple[int, str]:
            differences = provisioner.drift()
            if not differences:
                return messages.SUCCESS, str(_("AWS matches the records."))
            return messages.WARNING, str(_("AWS differs: ")) + "; ".join(map(str, differences))

        self._each(request, queryset, check)

    @admin.action(description=_("Tear down the AWS resources"), permissions=["change"])
    def tear_down(self, request: HttpRequest, queryset: QuerySet[ApiGateway]) -> Any:
        if request.POST.get("confirmed") != "yes":
            plans = []
            for gateway in queryset:
                try:
                    plan = Provisioner(gateway).teardown_plan()
                    lines = plan.describe(tuple(ws_settings.gateway_secrets))
                except ProvisioningError as exc:
                    lines = [str(exc)]
                plans.append((gateway, lines))
            context = {
                **self.admin_site.each_context(request),
                "title": _("Tear down AWS resources?"),
                "plans": plans,
                "queryset": queryset,
                "opts": self.model._meta,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(
                request, "admin/django_aws_api_gateway_websockets/teardown.html", context
            )

        def teardown(provisioner: Provisioner) -> tuple[int, str]:
            provisioner.teardown()
            return messages.SUCCESS, str(_("torn down."))

        self._each(request, queryset, teardown, writes=True)
        return None


@admin.register(ApiGatewayAdditionalRoute)
class ApiGatewayAdditionalRouteAdmin(ModelAdmin[ApiGatewayAdditionalRoute]):
    list_display = ["route_key", "gateway", "route_slug", "two_way", "deployed"]
    list_filter = ["deployed", "two_way", "gateway"]
    search_fields = ["route_key", "route_slug", "gateway__name"]
    readonly_fields = ["deployed", "route_id", "integration_id", "created_at"]


@admin.register(WebSocketSession)
class WebSocketSessionAdmin(ReadOnlyAdmin):
    list_display = [
        "connection_id",
        "channel_name",
        "user",
        "connected",
        "gateway",
        "connected_at",
        "last_seen_at",
        "disconnected_at",
    ]
    list_filter = ["connected", "gateway", "connected_at"]
    search_fields = ["connection_id", "channel_name", "source_ip"]
    list_select_related = ["user", "gateway"]
    date_hierarchy = "connected_at"
    raw_id_fields = ["user"]


@admin.register(WebSocketToken)
class WebSocketTokenAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "user", "created_at", "expires_at", "used_at"]
    list_filter = ["created_at", ("used_at", admin.EmptyFieldListFilter)]
    list_select_related = ["user"]
    raw_id_fields = ["user"]


@admin.register(RateLimitWindow)
class RateLimitWindowAdmin(ReadOnlyAdmin):
    list_display = ["key", "window_start", "window_end", "count"]
    list_filter = ["window_start"]
    search_fields = ["key"]
