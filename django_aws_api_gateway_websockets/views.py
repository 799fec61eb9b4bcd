"""The views: :class:`WebSocketView` for API Gateway's integrations and the token endpoint.

Reading order of one event, all in :meth:`WebSocketView.dispatch`: the request is parsed and the
gateway authenticated (:mod:`.events`), the gateway record is found (:mod:`.gateways`), then one
of three pipelines runs: ``$connect`` (:meth:`~WebSocketView._connect`), a message
(:meth:`~WebSocketView._message`) or ``$disconnect`` (:meth:`~WebSocketView._disconnect`). Every
refusal is a :class:`~.exceptions.WebSocketRefusal` raised where it is detected and turned into a
response in ``dispatch``. Subclasses add handler methods and hooks; the checks run regardless of
what a subclass overrides, because ``dispatch`` calls them itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from functools import cache
from typing import Any, ClassVar

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.db import connections
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from . import contract, ratelimits, routing, signals
from .channels import validate_channel_name
from .conf import ws_settings
from .discovery import anonymous_tokens_allowed
from .events import GatewayEvent, parse_event
from .exceptions import BadEvent, Forbidden, NotAuthenticated, UnknownRoute, WebSocketRefusal
from .gateways import GatewayInfo, gateway_cache
from .models import WebSocketSession
from .permissions import check_permissions
from .tokens import TokenRejected, consume_token, mint_token

logger = logging.getLogger("django_aws_api_gateway_websockets")

#: Session columns a repeated ``$connect`` for the same connection id overwrites.
_SESSION_UPSERT_FIELDS = [
    "gateway",
    "channel_name",
    "state",
    "connected",
    "user",
    "source_ip",
    "user_agent",
    "connected_at",
    "last_seen_at",
    "disconnected_at",
]


@cache
def _allowed_handlers(view_class: type) -> frozenset[str]:
    return routing.allowed_handler_names(view_class)


def _lazy_user(pk: int | None) -> Any:
    """The token's owner, loaded only if something (a permission check, a handler) reads it."""
    if pk is None:
        return AnonymousUser()

    def load() -> Any:
        user_model = get_user_model()
        return user_model._default_manager.filter(pk=pk).first() or AnonymousUser()

    return SimpleLazyObject(load)


def _upsert_session(session: WebSocketSession) -> None:
    """One statement: a repeated ``$connect`` for the same id updates the row, never fails."""
    features = connections[WebSocketSession.objects.db].features
    WebSocketSession.objects.bulk_create(
        [session],
        update_conflicts=True,
        # MySQL/MariaDB infer the conflict target and refuse an explicit one.
        unique_fields=["connection_id"] if features.supports_update_conflicts_with_target else None,
        update_fields=_SESSION_UPSERT_FIELDS,
    )


def render_reply(result: Any) -> HttpResponseBase:
    """A handler's return value as the integration response (sent back on two-way routes)."""
    if isinstance(result, HttpResponseBase):
        return result
    if result is None:
        return HttpResponse(b"", content_type="text/plain; charset=utf-8")
    if isinstance(result, (dict, list)):
        return JsonResponse(result, safe=False)
    if isinstance(result, (str, bytes)):
        return HttpResponse(result, content_type="text/plain; charset=utf-8")
    raise TypeError(
        f"A WebSocket handler must return a dict, list, str, bytes, HttpResponse or None, "
        f"not {type(result).__name__}."
    )


class WebSocketView(View):
    """Base class for the view API Gateway calls; route it with ``path("ws/<slug:route>", ...)``.

    Write handler methods ``def name(self, request, *args, **kwargs)`` and allow them with
    :func:`~.routing.websocket_handler` or ``allowed_handlers``; ``default`` is always allowed.
    """

    #: Require a single-use token (``?ws_token=``) on ``$connect``.
    USE_WS_TOKEN: ClassVar[bool] = True
    #: With tokens on, also accept tokens minted for anonymous visitors.
    ALLOW_ANONYMOUS: ClassVar[bool] = False
    #: The user needs at least one of these permissions to connect.
    permissions_required: ClassVar[Sequence[str]] = ()
    #: The user needs all of these permissions to connect.
    all_permissions_required: ClassVar[Sequence[str]] = ()
    #: Handler names clients may select, in addition to methods marked ``@websocket_handler``.
    allowed_handlers: ClassVar[Sequence[str]] = ()

    http_method_names: ClassVar[list[str]] = [contract.INTEGRATION_METHOD.lower()]  # type: ignore[misc]

    #: Set for messages (and on ``$connect`` once the session exists).
    websocket_session: WebSocketSession | None = None
    event: GatewayEvent
    gateway: GatewayInfo

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        # API Gateway cannot send a CSRF token; the gateway secret authenticates it instead.
        return csrf_exempt(super().as_view(**initkwargs))

    # Hooks -------------------------------------------------------------------------------------

    def has_channel_permission(self, request: HttpRequest, channel_name: str) -> bool:
        """May ``request.user`` join ``channel_name``? Override for private channels."""
        return True

    @property
    def message(self) -> Any:
        """The parsed JSON body of the current message (``None`` if it is not JSON)."""
        return self.event.json

    # Pipeline ----------------------------------------------------------------------------------

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        method = (request.method or "").lower()
        if method not in self.http_method_names:
            return self.http_method_not_allowed(request, *args, **kwargs)
        try:
            route = kwargs.get("route")
            if not isinstance(route, str) or not route:
                raise UnknownRoute()
            self.event = parse_event(request, route)
            self.gateway = gateway_cache.get(self.event.api_id)
            if self.event.is_connect:
                return self._connect(request)
            if self.event.is_disconnect:
                return self._disconnect(request)
            return self._message(request, *args, **kwargs)
        except WebSocketRefusal as refusal:
            logger.info(
                "Refused %s event: %s %s",
                kwargs.get("route"),
                refusal.status_code,
                refusal.reason,
            )
            return refusal.as_response()

    def _connect(self, request: HttpRequest) -> HttpResponseBase:
        event, now = self.event, timezone.now()
        if event.source_ip is None:
            raise BadEvent(_("Missing source IP."))
        # Checked before the token is spent: a typo in ?channel= must not burn it.
        channel = validate_channel_name(
            event.query.get(contract.CHANNEL_QUERY_PARAM) or self.gateway.default_channel_name
        )
        ip_limit = ratelimits.Limit(
            f"connect:ip:{event.source_ip}",
            int(ws_settings.CONNECT_LIMIT_PER_IP),
            int(ws_settings.CONNECT_WINDOW),
        )
        owner_id: int | None = None
        if self.USE_WS_TOKEN:
            try:
                owner_id = consume_token(event.query.get(contract.TOKEN_QUERY_PARAM, ""), now)
            except TokenRejected:
                ratelimits.hit([ip_limit], now)  # failed attempts count against the IP too
                raise NotAuthenticated(_("Missing, used or expired token.")) from None
            if owner_id is None and not self.ALLOW_ANONYMOUS:
                ratelimits.hit([ip_limit], now)
                raise NotAuthenticated(_("This endpoint requires a signed-in user."))
        limits = [ip_limit]
        if owner_id is not None:
            limits.append(
                ratelimits.Limit(
                    f"connect:user:{owner_id}",
                    int(ws_settings.CONNECT_LIMIT_PER_USER),
                    int(ws_settings.CONNECT_WINDOW),
                )
            )
        ratelimits.hit(limits, now)

        request.user = _lazy_user(owner_id)
        check_permissions(request.user, self.permissions_required, self.all_permissions_required)
        if not self.has_channel_permission(request, channel):
            raise Forbidden(_("You may not join this channel."))

        session = WebSocketSession(
            connection_id=event.connection_id,
            gateway_id=self.gateway.pk,
            channel_name=channel,
            state=WebSocketSession.State.CONNECTING,
            connected=True,
            user_id=owner_id,
            source_ip=event.source_ip,
            user_agent=event.user_agent,
            connected_at=now,
            last_seen_at=now,
            disconnected_at=None,
        )
        _upsert_session(session)
        self.websocket_session = session
        signals.connected.send(sender=type(self), session=session, request=request)
        return HttpResponse(b"", content_type="text/plain; charset=utf-8")

    def _message(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        event = self.event
        if event.route not in self.gateway.message_routes:
            raise UnknownRoute()
        try:
            session = WebSocketSession.objects.select_related("user").get(
                connection_id=event.connection_id, gateway_id=self.gateway.pk, connected=True
            )
        except WebSocketSession.DoesNotExist:
            raise Forbidden(_("Unknown or closed connection.")) from None
        user = session.user
        if user is not None and not user.is_active:
            raise Forbidden(_("This account is inactive."))
        self._touch(session)
        request.user = user or AnonymousUser()
        self.websocket_session = session

        name = routing.choose_handler(type(self), _allowed_handlers(type(self)), event.json)
        if name is None:
            raise UnknownRoute(_("No handler for this message."))
        signals.message_received.send(
            sender=type(self), session=session, request=request, handler=name, data=event.json
        )
        return render_reply(getattr(self, name)(request, *args, **kwargs))

    def _touch(self, session: WebSocketSession) -> None:
        """Record activity at most once per ``LAST_SEEN_UPDATE_INTERVAL``, not on every message."""
        now = timezone.now()
        interval = timedelta(seconds=float(ws_settings.LAST_SEEN_UPDATE_INTERVAL))
        if now - session.last_seen_at >= interval:
            WebSocketSession.objects.filter(pk=session.pk).update(last_seen_at=now)
            session.last_seen_at = now

    def _disconnect(self, request: HttpRequest) -> HttpResponseBase:
        event = self.event
        WebSocketSession.objects.filter(
            connection_id=event.connection_id, gateway_id=self.gateway.pk
        ).mark_closed()
        signals.disconnected.send(
            sender=type(self),
            connection_id=event.connection_id,
            gateway_id=self.gateway.pk,
            request=request,
        )
        return HttpResponse(b"", content_type="text/plain; charset=utf-8")


@method_decorator([csrf_protect, never_cache], name="dispatch")
class WebSocketTokenView(View):
    """POST (with Django's CSRF token) for ``{"token": ..., "expires_in": ...}``."""

    http_method_names: ClassVar[list[str]] = ["post"]  # type: ignore[misc]

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return self._mint(request)
        except WebSocketRefusal as refusal:
            return refusal.as_response()

    def _mint(self, request: HttpRequest) -> HttpResponseBase:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            if not user.is_active:
                raise NotAuthenticated()
            key = f"token:user:{user.pk}"
        elif anonymous_tokens_allowed():
            user = None
            key = f"token:ip:{request.META.get('REMOTE_ADDR', '')}"
        else:
            raise NotAuthenticated(_("Sign in to open a WebSocket connection."))
        ratelimits.hit(
            [
                ratelimits.Limit(
                    key, int(ws_settings.TOKEN_MINT_LIMIT), int(ws_settings.TOKEN_MINT_WINDOW)
                )
            ]
        )
        minted = mint_token(user)
        return JsonResponse({"token": minted.token, "expires_in": minted.expires_in})
