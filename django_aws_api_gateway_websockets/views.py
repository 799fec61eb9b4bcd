"""The views: :class:`WebSocketView` for API Gateway's integrations and the token endpoint.

Reading order of one event, all in :meth:`WebSocketView.dispatch`: the gateway authenticators
admit the request (:mod:`.authentication`), it is parsed (:mod:`.events`), the gateway record is
found (:mod:`.gateways`), then one of three pipelines runs: ``$connect``
(:meth:`~WebSocketView._connect`: token, throttles, permissions, session), a message
(:meth:`~WebSocketView._message`: session, optional permissions, handler) or ``$disconnect``.
Each stage is a list of small classes named in settings or on the view, like DRF's
``authentication_classes``; ``dispatch`` runs every one itself, so a subclass never has to call
``super()`` for a check to happen. Every refusal is a :class:`~.exceptions.WebSocketRefusal`
raised where it is detected and turned into a response in ``dispatch``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from functools import cache
from typing import Any, ClassVar

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import AnonymousUser
from django.db import router
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.functional import SimpleLazyObject
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from . import contract, ratelimits, replies, routing, signals, statements
from .authentication import BaseGatewayAuthenticator, authenticate_gateway
from .channels import validate_channel_name
from .client_ip import get_client_ip
from .conf import ws_settings
from .discovery import anonymous_tokens_allowed
from .events import GatewayEvent, parse_event, redact_token
from .exceptions import BadEvent, Forbidden, NotAuthenticated, UnknownRoute, WebSocketRefusal
from .gateways import GatewayInfo, gateway_cache
from .models import WebSocketSession
from .permissions import BasePermission, RequiredPermissions, enforce
from .routing import websocket_handler
from .throttling import BaseThrottle, ip_key
from .tokens import (
    Audience,
    TokenRejected,
    consume_token,
    mint_token,
    record_refusal,
    token_status,
)

logger = logging.getLogger("django_aws_api_gateway_websockets")


_HANDLER_NAMES: dict[type[Any], frozenset[str]] = {}


def _allowed_handlers(view_class: type[Any]) -> frozenset[str]:
    """Cached per view class (a dict: ``functools.cache`` cannot be typed for ``type(self)``)."""
    names = _HANDLER_NAMES.get(view_class)
    if names is None:
        names = _HANDLER_NAMES[view_class] = routing.allowed_handler_names(view_class)
    return names


@cache
def _import(path: str) -> Any:
    return import_string(path)


def _instances(configured: Sequence[Any] | None, setting: str) -> list[Any]:
    """A stage's objects: the view's own list, else the setting's; dotted paths are imported."""
    entries = getattr(ws_settings, setting) if configured is None else configured
    return [(_import(entry) if isinstance(entry, str) else entry)() for entry in entries]


def _no_login_required(view: Any) -> Any:
    """Exempt from Django's ``LoginRequiredMiddleware``: API Gateway has no login session, and
    the token endpoint must answer JSON 401, never redirect (with the token in ``next``)."""
    return login_not_required(view)


def _lazy_user(pk: int | None) -> Any:
    """The token's owner, loaded only if something (a permission check, a handler) reads it."""
    if pk is None:
        return AnonymousUser()

    def load() -> Any:
        user_model = get_user_model()
        return user_model._default_manager.filter(pk=pk).first() or AnonymousUser()

    return SimpleLazyObject(load)


_NO_REPLY_CONTENT_TYPE = "text/plain; charset=utf-8"


def _empty_response() -> HttpResponse:
    return HttpResponse(b"", content_type=_NO_REPLY_CONTENT_TYPE)


def render_reply(result: Any) -> HttpResponseBase:
    """A handler's return value as the integration response (sent back on two-way routes)."""
    if isinstance(result, HttpResponseBase):
        return result
    if result is None:
        return _empty_response()
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
    #: Accept only tokens minted for this audience (``audience=`` on the token endpoint); the
    #: default ``""`` accepts only tokens minted for no particular view.
    token_audience: ClassVar[str] = ""
    #: The pipeline's stages; ``None`` uses ``GATEWAY_AUTHENTICATORS``, ``THROTTLE_CLASSES`` and
    #: ``PERMISSION_CLASSES`` from settings. Classes or dotted paths.
    gateway_authenticators: ClassVar[Sequence[type[BaseGatewayAuthenticator] | str] | None] = None
    throttle_classes: ClassVar[Sequence[type[BaseThrottle] | str] | None] = None
    permission_classes: ClassVar[Sequence[type[BasePermission] | str] | None] = None
    #: Ask the permission classes again on every message, not only on ``$connect``.
    check_permissions_on_message: ClassVar[bool] = False

    http_method_names: ClassVar[list[str]] = [contract.INTEGRATION_METHOD.lower()]  # type: ignore[misc]

    #: Set for messages (and on ``$connect`` once the session exists).
    websocket_session: WebSocketSession | None = None
    event: GatewayEvent
    gateway: GatewayInfo

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        # API Gateway cannot send a CSRF token; the gateway secret authenticates it instead.
        return _no_login_required(csrf_exempt(super().as_view(**initkwargs)))

    # Stages ------------------------------------------------------------------------------------

    def get_gateway_authenticators(self) -> list[BaseGatewayAuthenticator]:
        return _instances(self.gateway_authenticators, "GATEWAY_AUTHENTICATORS")

    def get_throttles(self) -> list[BaseThrottle]:
        return _instances(self.throttle_classes, "THROTTLE_CLASSES")

    def get_permissions(self) -> list[BasePermission]:
        """The configured permission classes, then the view's required permissions."""
        return [*_instances(self.permission_classes, "PERMISSION_CLASSES"), RequiredPermissions()]

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
        redacted = False
        try:
            route = kwargs.get("route")
            if not isinstance(route, str) or not route:
                raise UnknownRoute()
            authenticate_gateway(request, self.get_gateway_authenticators())
            self.event = parse_event(request, route)
            redact_token(request)  # from here on, nothing that logs the request can leak it
            redacted = True
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
            event = getattr(self, "event", None)
            request_id = replies.request_id_of(event.json) if event is not None else None
            if request_id is not None and event is not None and not event.is_connect:
                return replies.refusal_reply(request_id, refusal.status_code, refusal.reason)
            return refusal.as_response()
        finally:
            if not redacted:  # also when refused before parsing: Django logs 4xx requests
                redact_token(request)

    def _connect(self, request: HttpRequest) -> HttpResponseBase:
        event, now = self.event, timezone.now()
        if event.source_ip is None:
            raise BadEvent(_("Missing source IP."))
        # Every check that needs no query runs before the token is spent: a typo in ?channel=
        # must not burn it.
        channel = validate_channel_name(
            event.query.get(contract.CHANNEL_QUERY_PARAM) or self.gateway.default_channel_name
        )
        throttles = self.get_throttles()
        token = event.query.get(contract.TOKEN_QUERY_PARAM, "") if self.USE_WS_TOKEN else ""
        try:
            with statements.connect_transaction(router.db_for_write(WebSocketSession)):
                session = self._open_session(request, channel, throttles, token, now)
        except WebSocketRefusal as refusal:
            # The page that minted the token asks the token status endpoint why (a browser
            # cannot read a refused handshake's status).
            spent = getattr(refusal, "token_spent", False)
            record_refusal(token, refusal.status_code, refusal.reason, spent=spent)
            raise
        self.websocket_session = session
        signals.connected.send(sender=type(self), session=session, request=request)
        return _empty_response()

    def _open_session(
        self,
        request: HttpRequest,
        channel: str,
        throttles: list[BaseThrottle],
        token: str,
        now: Any,
    ) -> WebSocketSession:
        """Spend the token, count the attempt, check permissions, write the session: every
        refusal raised here is recorded on the token."""
        event = self.event
        owner_id: int | None = None
        if self.USE_WS_TOKEN:
            try:
                owner_id = consume_token(
                    token,
                    now,
                    view=self.token_audience,
                    gateway_id=self.gateway.pk,
                    channel_name=channel,
                )
            except TokenRejected:
                self._throttle(throttles, None, now, refused=True)
                raise NotAuthenticated(_("Missing, used or expired token.")) from None
        try:
            if self.USE_WS_TOKEN and owner_id is None and not self.ALLOW_ANONYMOUS:
                self._throttle(throttles, None, now, refused=True)
                raise NotAuthenticated(_("This endpoint requires a signed-in user."))
            self._throttle(throttles, owner_id, now)
            request.user = _lazy_user(owner_id)
            enforce(self.get_permissions(), request, self)
            if not self.has_channel_permission(request, channel):
                raise Forbidden(_("You may not join this channel."))
        except WebSocketRefusal as refusal:
            refusal.token_spent = self.USE_WS_TOKEN  # type: ignore[attr-defined]
            raise

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
        statements.upsert_session(session)
        return session

    def _throttle(
        self, throttles: list[BaseThrottle], user_id: Any, now: Any, *, refused: bool = False
    ) -> None:
        """Count this attempt against every throttle's limit in one upsert (429 when over).

        A refused attempt has no user yet: it counts against the throttles that run before
        authentication, so that guessing tokens is throttled too.
        """
        limits = []
        for throttle in throttles:
            if refused and not throttle.before_authentication:
                continue
            limit = throttle.get_limit(self, user_id)
            if limit is not None:
                limits.append(limit)
        ratelimits.hit(limits, now)

    def _message(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        event = self.event
        route_keys = self.gateway.message_routes.get(event.route)
        if route_keys is None:
            raise UnknownRoute()
        if event.route_key not in route_keys:
            raise BadEvent(_("The route key does not match the route."))
        session = statements.find_connected_session(event.connection_id, self.gateway.pk)
        if session is None:
            raise Forbidden(_("Unknown or closed connection."))
        user = session.user
        if user is not None and not user.is_active:
            raise Forbidden(_("This account is inactive."))
        self._touch(session)
        request.user = user or AnonymousUser()
        self.websocket_session = session
        if self.check_permissions_on_message:
            enforce(self.get_permissions(), request, self)

        name = routing.choose_handler(type(self), _allowed_handlers(type(self)), event.json)
        if name is None:
            raise UnknownRoute(_("No handler for this message."))
        signals.message_received.send(
            sender=type(self), session=session, request=request, handler=name, data=event.json
        )
        result = getattr(self, name)(request, *args, **kwargs)
        request_id = replies.request_id_of(event.json)
        if request_id is not None:
            return replies.reply(request_id, result)
        return render_reply(result)

    @websocket_handler
    def ping(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        """Keep-alive: ``{"action": "ping"}`` resets API Gateway's 10-minute idle timer (and
        refreshes ``last_seen_at``); the answer is empty, so nothing is sent back."""
        return None

    def _touch(self, session: WebSocketSession) -> None:
        """Record activity at most once per ``LAST_SEEN_UPDATE_INTERVAL``, not on every message.

        The same UPDATE records that the socket is open (a message proves API Gateway opened
        it); a send that reaches the socket records it sooner, and until either happens a
        ``connecting`` session is only treated as such within ``CONNECT_GRACE_SECONDS``.
        """
        now = timezone.now()
        interval = timedelta(seconds=float(ws_settings.LAST_SEEN_UPDATE_INTERVAL))
        if now - session.last_seen_at >= interval:
            WebSocketSession.objects.filter(pk=session.pk).update(
                last_seen_at=now, state=WebSocketSession.State.OPEN
            )
            session.last_seen_at, session.state = now, WebSocketSession.State.OPEN

    def _disconnect(self, request: HttpRequest) -> HttpResponseBase:
        event = self.event
        statements.close_session(event.connection_id, self.gateway.pk, timezone.now())
        signals.disconnected.send(
            sender=type(self),
            connection_id=event.connection_id,
            gateway_id=self.gateway.pk,
            request=request,
        )
        return _empty_response()


#: What ``audience=`` on the token endpoint may be (a view's ``token_audience``).
_AUDIENCE_MAX_LENGTH = 200


@method_decorator([csrf_protect, never_cache], name="dispatch")
class WebSocketTokenView(View):
    """POST (with Django's CSRF token) for ``{"token": ..., "expires_in": ...}``.

    Optional form fields bind the token to where it may be used: ``channel``, ``api_id`` (one
    API Gateway) and ``audience`` (a view's ``token_audience``).
    """

    http_method_names: ClassVar[list[str]] = ["post"]  # type: ignore[misc]

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        return _no_login_required(super().as_view(**initkwargs))

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return self._mint(request)
        except WebSocketRefusal as refusal:
            return refusal.as_response()

    def _audience(self, request: HttpRequest) -> Audience:
        channel = request.POST.get("channel", "")
        if channel:
            validate_channel_name(channel)
        gateway_id = None
        api_id = request.POST.get("api_id", "")
        if api_id:
            try:
                gateway_id = gateway_cache.get(api_id).pk
            except Forbidden:
                raise BadEvent(_("Unknown API.")) from None
        view = request.POST.get("audience", "")
        if len(view) > _AUDIENCE_MAX_LENGTH or not view.isprintable():
            raise BadEvent(_("Invalid audience."))
        return Audience(view=view, gateway_id=gateway_id, channel_name=channel)

    def _mint(self, request: HttpRequest) -> HttpResponseBase:
        audience = self._audience(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            if not user.is_active:
                raise NotAuthenticated()
            key = f"token:user:{user.pk}"
        elif anonymous_tokens_allowed():
            user = None
            address = get_client_ip(request)
            if address is None:
                raise BadEvent(_("Cannot tell the client's address."))
            key = f"token:ip:{ip_key(address)}"
        else:
            raise NotAuthenticated(_("Sign in to open a WebSocket connection."))
        ratelimits.hit(
            [
                ratelimits.Limit(
                    key, int(ws_settings.TOKEN_MINT_LIMIT), int(ws_settings.TOKEN_MINT_WINDOW)
                )
            ]
        )
        minted = mint_token(user, audience)
        return JsonResponse({"token": minted.token, "expires_in": minted.expires_in})


@method_decorator([csrf_protect, never_cache], name="dispatch")
class WebSocketTokenStatusView(View):
    """POST ``token`` (with Django's CSRF token) for what became of it: ``{"state": ...}``.

    After a failed handshake the page asks here why: ``refused`` comes with the ``status`` and
    ``reason`` that ``$connect`` answered (401 and 403 will not heal by retrying);
    ``unused`` means Django never saw the attempt. Only the token's owner gets an answer.
    """

    http_method_names: ClassVar[list[str]] = ["post"]  # type: ignore[misc]

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        return _no_login_required(super().as_view(**initkwargs))

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        user = getattr(request, "user", None)
        owner = user if user is not None and user.is_authenticated else None
        status = token_status(request.POST.get("token", ""), owner)
        return JsonResponse(status.as_dict(), status=404 if status.state == "unknown" else 200)
