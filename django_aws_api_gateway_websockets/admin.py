"""Admin for every model. Tokens show only their hash; system-written records are read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from .models import (
    ApiGateway,
    ApiGatewayAdditionalRoute,
    RateLimitWindow,
    WebSocketSession,
    WebSocketToken,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows only the package writes: viewable and deletable, never added or edited by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AdditionalRouteInline(admin.TabularInline):
    model = ApiGatewayAdditionalRoute
    extra = 0
    fields = ["route_key", "route_slug", "integration_uri", "two_way", "deployed"]
    readonly_fields = ["deployed"]


@admin.register(ApiGateway)
class ApiGatewayAdmin(admin.ModelAdmin):
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
        "api_endpoint",
        "deployment_id",
        "provisioning_status",
        "provisioning_error",
        "provisioned_at",
        "created_at",
        "updated_at",
    ]
    inlines = [AdditionalRouteInline]
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
        (_("Provisioning"), {"fields": readonly_fields}),
    ]


@admin.register(ApiGatewayAdditionalRoute)
class ApiGatewayAdditionalRouteAdmin(admin.ModelAdmin):
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
