"""Database records: API Gateway APIs, their custom routes, WebSocket sessions, tokens, rate limits.

Nothing here talks to AWS on ``save()``: creating or changing AWS resources is always an explicit
step, never a side effect of saving a record.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import DomainNameValidator, RegexValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import contract


def normalise_target_base_endpoint(value: str) -> str:
    """The endpoint with exactly one trailing slash (API Gateway appends the route slug)."""
    value = (value or "").strip()
    return value.rstrip("/") + "/" if value else value


def validate_target_base_endpoint(value: str) -> None:
    """A full HTTPS URL (plain HTTP only for a loopback host, as the local gateway uses)."""
    parts = urlsplit(value)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValidationError(_("The target base endpoint must be an https:// URL."), code="scheme")
    if not parts.hostname:
        raise ValidationError(_("The target base endpoint needs a host name."), code="host")
    if parts.query or parts.fragment:
        raise ValidationError(
            _("The target base endpoint cannot have a query string or fragment."), code="query"
        )
    if "<" in value or "{" in value:
        raise ValidationError(
            _("Leave the route slug out: API Gateway appends it to this URL."), code="slug"
        )


slug_re = re.compile(r"[-a-zA-Z0-9_]+")
#: URL slugs with a fixed meaning: no custom route may be answered by one of them.
RESERVED_SLUGS = tuple(contract.SYSTEM_ROUTE_SLUGS.values())
route_key_validator = RegexValidator(
    r"^[A-Za-z0-9_.:-]{1,128}$",
    _("A custom route key uses letters, digits, '_', '-', '.', ':' and cannot start with '$'."),
)
stage_validator = RegexValidator(
    r"^[A-Za-z0-9_-]{1,128}$", _("A stage name uses letters, digits, '-' and '_'.")
)


class ApiGateway(models.Model):
    """One API Gateway WebSocket API whose integrations call this Django site."""

    class ProvisioningStatus(models.TextChoices):
        NOT_PROVISIONED = "not_provisioned", _("Not provisioned")
        IN_PROGRESS = "in_progress", _("In progress")
        PROVISIONED = "provisioned", _("Provisioned")
        FAILED = "failed", _("Failed")

    name = models.CharField(_("name"), max_length=128, unique=True)
    description = models.TextField(_("description"), blank=True)
    api_id = models.CharField(
        _("API id"),
        max_length=32,
        unique=True,
        null=True,
        blank=True,
        help_text=_("Filled in by provisioning, or enter the id of an existing API."),
    )
    region = models.CharField(_("AWS region"), max_length=32, default="us-east-1")
    stage = models.CharField(
        _("stage"), max_length=128, default="production", validators=[stage_validator]
    )
    target_base_endpoint = models.CharField(
        _("target base endpoint"),
        max_length=512,
        validators=[validate_target_base_endpoint],
        help_text=_(
            "Full HTTPS URL of the WebSocket view without the route slug, "
            "e.g. https://www.example.com/ws/ (a trailing slash is added)."
        ),
    )
    route_selection_expression = models.CharField(
        _("route selection expression"), max_length=255, default="$request.body.action"
    )
    default_channel_name = models.CharField(
        _("default channel name"),
        max_length=100,
        default="default",
        help_text=_("Channel given to connections that do not ask for one with ?channel=."),
    )
    custom_domain_name = models.CharField(
        _("custom domain name"),
        max_length=255,
        blank=True,
        validators=[DomainNameValidator(accept_idna=False)],
    )
    api_mapping_key = models.CharField(
        _("API mapping key"),
        max_length=300,
        blank=True,
        help_text=_("Path under the custom domain; empty maps the API at the domain root."),
    )
    certificate_arn = models.CharField(_("ACM certificate ARN"), max_length=2048, blank=True)
    hosted_zone_id = models.CharField(
        _("Route 53 hosted zone id"),
        max_length=64,
        blank=True,
        help_text=_("Your zone, where the DNS record for the custom domain is created."),
    )
    # Written by provisioning only.
    api_endpoint = models.CharField(_("API endpoint"), max_length=255, blank=True, editable=False)
    deployment_id = models.CharField(_("deployment id"), max_length=64, blank=True, editable=False)
    provisioning_status = models.CharField(
        _("provisioning status"),
        max_length=20,
        choices=ProvisioningStatus.choices,
        default=ProvisioningStatus.NOT_PROVISIONED,
        editable=False,
    )
    provisioning_error = models.TextField(_("provisioning error"), blank=True, editable=False)
    provisioned_at = models.DateTimeField(_("provisioned at"), null=True, editable=False)
    aws_resources = models.JSONField(
        _("AWS resources"),
        default=dict,
        blank=True,
        editable=False,
        help_text=_(
            "Ids of what provisioning created, by resource (teardown removes exactly these)."
        ),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("API Gateway")
        verbose_name_plural = _("API Gateways")
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.api_id})" if self.api_id else self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Normalising is local bookkeeping, not an AWS side effect.
        self._normalise()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        self._normalise()

    def _normalise(self) -> None:
        self.target_base_endpoint = normalise_target_base_endpoint(self.target_base_endpoint)
        if self.api_id == "":
            self.api_id = None

    def integration_uri(self, route_key: str) -> str:
        return contract.integration_uri(self.target_base_endpoint, contract.route_slug(route_key))

    @property
    def management_endpoint_url(self) -> str:
        """Base URL of this API's Management API (``…/@connections/{id}`` is appended)."""
        return contract.management_endpoint_url(
            api_id=self.api_id or "",
            region=self.region,
            stage=self.stage,
            custom_domain=self.custom_domain_name,
            mapping_key=self.api_mapping_key,
        )

    @property
    def websocket_url(self) -> str:
        """The ``wss://`` URL browsers connect to: the Management API's host and path (custom
        domain when there is one), empty until the API has an id or a domain; the local
        gateway's ``ws://`` URL when ``LOCAL_GATEWAY_URL`` is set."""
        from .endpoints import websocket_url

        return websocket_url(self)


class ApiGatewayAdditionalRoute(models.Model):
    """A custom route key (beyond ``$connect``, ``$disconnect`` and ``$default``)."""

    gateway = models.ForeignKey(
        ApiGateway,
        on_delete=models.CASCADE,
        related_name="additional_routes",
        verbose_name=_("API Gateway"),
    )
    route_key = models.CharField(
        _("route key"),
        max_length=128,
        validators=[route_key_validator],
        help_text=_("The value of the route selection expression that selects this route."),
    )
    route_slug = models.SlugField(
        _("route slug"),
        max_length=128,
        blank=True,
        help_text=_(
            "The slug the WebSocket view receives for this route; empty uses the route key."
        ),
    )
    integration_uri = models.CharField(
        _("integration URI"),
        max_length=2048,
        blank=True,
        help_text=_("Send this route somewhere else than the gateway's WebSocket view."),
    )
    two_way = models.BooleanField(
        _("two-way"),
        default=True,
        help_text=_("Create a route response so the handler's return value reaches the client."),
    )
    deployed = models.BooleanField(_("deployed"), default=False, editable=False)
    route_id = models.CharField(_("route id"), max_length=64, blank=True, editable=False)
    integration_id = models.CharField(
        _("integration id"), max_length=64, blank=True, editable=False
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("additional route")
        verbose_name_plural = _("additional routes")
        constraints = [
            models.UniqueConstraint(
                fields=["gateway", "route_key"], name="dagw_route_key_unique_per_gateway"
            ),
            # Enforced by the database, not only by clean(): objects.create() skips clean(), and
            # a custom route answered by the "connect" slug would turn messages into $connects.
            models.CheckConstraint(
                condition=~models.Q(route_key__startswith="$"),
                name="dagw_route_key_not_reserved",
                violation_error_message=_("Route keys starting with '$' are reserved."),
            ),
            models.CheckConstraint(
                condition=~models.Q(route_slug__in=RESERVED_SLUGS)
                & ~(models.Q(route_slug="") & models.Q(route_key__in=RESERVED_SLUGS)),
                name="dagw_route_slug_not_reserved",
                violation_error_message=_(
                    "'connect', 'disconnect' and 'default' are reserved slugs."
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.route_key} on {self.gateway.name}"

    def clean(self) -> None:
        if self.route_key.startswith("$"):
            raise ValidationError({"route_key": _("Route keys starting with '$' are reserved.")})
        if self.integration_uri:
            return
        if not self.route_slug:
            if not slug_re.fullmatch(self.route_key):
                raise ValidationError(
                    {"route_slug": _("This route key is not a valid slug: enter a route slug.")}
                )
            self.route_slug = self.route_key
        if self.route_slug in RESERVED_SLUGS:
            raise ValidationError(
                {"route_slug": _("'connect', 'disconnect' and 'default' are reserved slugs.")}
            )

    @property
    def slug(self) -> str:
        return self.route_slug or self.route_key

    def get_integration_uri(self) -> str:
        if self.integration_uri:
            return self.integration_uri
        return contract.integration_uri(self.gateway.target_base_endpoint, self.slug)


class WebSocketSessionQuerySet(models.QuerySet["WebSocketSession"]):
    """Sessions, with the calls that act on their connections through API Gateway."""

    def connected(self) -> WebSocketSessionQuerySet:
        return self.filter(connected=True)

    def mark_closed(self, when: Any = None) -> int:
        """Record that these sessions' sockets are gone (one UPDATE); returns how many were open."""
        return self.filter(connected=True).update(
            connected=False,
            state=WebSocketSession.State.CLOSED,
            disconnected_at=when or timezone.now(),
        )

    def mark_open(self) -> int:
        """Record that these sessions' sockets are known to be open (they were connecting)."""
        return self.filter(state=WebSocketSession.State.CONNECTING).update(
            state=WebSocketSession.State.OPEN
        )

    def in_channel(self, channel_name: str) -> WebSocketSessionQuerySet:
        return self.filter(channel_name=channel_name)

    def for_user(self, user: Any) -> WebSocketSessionQuerySet:
        return self.filter(user=user)

    def send_message(self, data: Any, *, background: bool = False) -> Any:
        """Send ``data`` to every connected session here; returns a delivery report.

        With ``background=True`` the broadcast is enqueued on Django's tasks framework instead
        and the enqueued task results are returned. In async code use :meth:`asend_message`.
        """
        from .sending import refuse_in_event_loop

        refuse_in_event_loop("send_message", "asend_message")
        if background:
            from .tasks import enqueue_send

            return enqueue_send(self, data)
        from .sending import send_message

        return send_message(self, data)

    async def asend_message(self, data: Any, *, background: bool = False) -> Any:
        """:meth:`send_message` for async code: awaitable, never blocks the event loop."""
        if background:
            from asgiref.sync import sync_to_async

            from .tasks import enqueue_send

            return await sync_to_async(enqueue_send)(self, data)
        from .sending import asend_message

        return await asend_message(self, data)

    def close(self) -> Any:
        """Close every connected session's socket (DeleteConnection) and mark it disconnected."""
        from .sending import close_connections

        return close_connections(self)

    async def aclose(self) -> Any:
        """:meth:`close` for async code."""
        from .sending import aclose_connections

        return await aclose_connections(self)

    def send_to_channel(self, channel_name: str, data: Any, **options: Any) -> Any:
        return self.in_channel(channel_name).send_message(data, **options)

    def send_to_user(self, user: Any, data: Any, **options: Any) -> Any:
        return self.for_user(user).send_message(data, **options)

    def broadcast(self, data: Any, **options: Any) -> Any:
        """Send ``data`` to everyone connected."""
        return self.connected().send_message(data, **options)


class WebSocketSession(models.Model):
    """One WebSocket connection held by API Gateway."""

    class State(models.TextChoices):
        #: ``$connect`` accepted it; API Gateway opens the socket only after that answer, and
        #: answers 410 to sends until then.
        CONNECTING = "connecting", _("Connecting")
        #: The socket is known to be open: a message arrived or a send was delivered.
        OPEN = "open", _("Open")
        CLOSED = "closed", _("Closed")

    connection_id = models.CharField(_("connection id"), max_length=128, unique=True)
    gateway = models.ForeignKey(
        ApiGateway,
        on_delete=models.CASCADE,
        related_name="sessions",
        verbose_name=_("API Gateway"),
    )
    channel_name = models.CharField(_("channel name"), max_length=100)
    state = models.CharField(
        _("state"), max_length=10, choices=State.choices, default=State.CONNECTING
    )
    #: ``state != "closed"``, kept as its own indexed column because every query filters on it
    #: (a check constraint keeps the two in step).
    connected = models.BooleanField(_("connected"), default=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        # A deleted user's sessions go with it: they must not carry on as anonymous ones.
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="websocket_sessions",
        verbose_name=_("user"),
    )
    source_ip = models.GenericIPAddressField(_("source IP"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=512, blank=True)
    connected_at = models.DateTimeField(_("connected at"))
    last_seen_at = models.DateTimeField(_("last seen at"))
    disconnected_at = models.DateTimeField(_("disconnected at"), null=True, blank=True)

    objects = WebSocketSessionQuerySet.as_manager()

    class Meta:
        verbose_name = _("WebSocket session")
        verbose_name_plural = _("WebSocket sessions")
        indexes = [
            # Fan-out to a channel: filter(channel_name=..., connected=True).
            models.Index(fields=["channel_name", "connected"], name="dagw_session_channel"),
            # Cleanup: sessions still marked connected past API Gateway's 2-hour maximum.
            models.Index(fields=["connected", "connected_at"], name="dagw_session_age"),
            # Cleanup: disconnected sessions past the retention period.
            models.Index(fields=["connected", "disconnected_at"], name="dagw_session_gone"),
            # A user's open connections.
            models.Index(fields=["user", "connected"], name="dagw_session_user"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(connected=True) & ~models.Q(state="closed"))
                | (models.Q(connected=False) & models.Q(state="closed")),
                name="dagw_session_state_matches_connected",
            )
        ]

    def __str__(self) -> str:
        return f"{self.connection_id} [{self.channel_name}] ({self.get_state_display()})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Whichever of the two a caller set to "gone" wins, so they never disagree.
        if not self.connected or self.state == self.State.CLOSED:
            self.connected, self.state = False, self.State.CLOSED
        super().save(*args, **kwargs)

    def send_message(self, data: Any) -> Any:
        """Send ``data`` to this connection; returns a delivery report."""
        from .sending import send_message

        return send_message([self], data)

    async def asend_message(self, data: Any) -> Any:
        """:meth:`send_message` for async code."""
        from .sending import asend_message

        return await asend_message([self], data)

    def close(self) -> Any:
        """Close the socket through API Gateway (DeleteConnection) and mark it disconnected."""
        from .sending import close_connections

        return self._after_close(close_connections([self]))

    async def aclose(self) -> Any:
        """:meth:`close` for async code."""
        from .sending import aclose_connections

        return self._after_close(await aclose_connections([self]))

    def _after_close(self, report: Any) -> Any:
        # Pending: still opening; the row is closed now and the socket once it opens.
        cid = self.connection_id
        if cid in report.sent or cid in report.gone or cid in report.pending:
            self._closed_locally()
        return report

    def _closed_locally(self) -> None:
        """Mirror :meth:`WebSocketSessionQuerySet.mark_closed` on this instance."""
        self.connected = False
        self.state = self.State.CLOSED
        self.disconnected_at = timezone.now()

    def is_connected(self) -> bool:
        """Ask API Gateway (GetConnection) whether this connection is still open."""
        from .sending import is_connected

        return is_connected(self)

    async def ais_connected(self) -> bool:
        """:meth:`is_connected` for async code."""
        from .sending import ais_connected

        return await ais_connected(self)


class WebSocketToken(models.Model):
    """A single-use token for one WebSocket connection. Only its SHA-256 hash is stored."""

    token_hash = models.CharField(_("token hash"), max_length=64, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="websocket_tokens",
        verbose_name=_("user"),
    )
    # The optional audience: empty/NULL accepts any; otherwise checked by the UPDATE that
    # consumes the token, so a token minted for one view, API or channel opens no other.
    audience = models.CharField(
        _("audience"),
        max_length=200,
        blank=True,
        help_text=_("The token_audience of the only WebSocketView that accepts this token."),
    )
    gateway = models.ForeignKey(
        ApiGateway,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("API Gateway"),
    )
    channel_name = models.CharField(_("channel name"), max_length=100, blank=True)
    created_at = models.DateTimeField(_("created at"))
    expires_at = models.DateTimeField(_("expires at"))
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)
    # Browsers cannot read a refused handshake's status: ``$connect`` records why it refused
    # this token's connection, and the token status endpoint tells the page that minted it.
    refusal_status = models.PositiveSmallIntegerField(
        _("refusal status"), null=True, blank=True, editable=False
    )
    refusal_reason = models.CharField(
        _("refusal reason"), max_length=200, blank=True, editable=False
    )

    class Meta:
        verbose_name = _("WebSocket token")
        verbose_name_plural = _("WebSocket tokens")
        indexes = [models.Index(fields=["expires_at"], name="dagw_token_expiry")]

    def __str__(self) -> str:
        return f"{self.token_hash[:12]}…"


class RateLimitWindow(models.Model):
    """A counter for one key in one fixed window, incremented atomically with an upsert."""

    key = models.CharField(_("key"), max_length=200)
    window_start = models.DateTimeField(_("window start"))
    window_end = models.DateTimeField(_("window end"))
    count = models.PositiveIntegerField(_("count"), default=0)

    class Meta:
        verbose_name = _("rate-limit window")
        verbose_name_plural = _("rate-limit windows")
        constraints = [
            models.UniqueConstraint(fields=["key", "window_start"], name="dagw_ratelimit_window")
        ]
        indexes = [models.Index(fields=["window_end"], name="dagw_ratelimit_end")]

    def __str__(self) -> str:
        return f"{self.key} @ {self.window_start:%Y-%m-%d %H:%M:%S}: {self.count}"


class Broadcast(models.Model):
    """One background broadcast (``send_message(..., background=True)``).

    Its recipients are split into :class:`BroadcastBatch` rows, each run as a separate task, on
    whichever worker takes it; each batch stores its own outcome, so the combined report is
    exact however many workers shared the broadcast, and complete once every batch finished.
    """

    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    recipients = models.PositiveIntegerField(_("recipients"), default=0)
    batches = models.PositiveIntegerField(_("batches"), default=0)
    batches_finished = models.PositiveIntegerField(_("batches finished"), default=0)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("background broadcast")
        verbose_name_plural = _("background broadcasts")
        indexes = [models.Index(fields=["created_at"], name="dagw_broadcast_created")]

    def __str__(self) -> str:
        return f"#{self.pk}: {self.batches_finished}/{self.batches} batches"

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def report(self) -> dict[str, Any]:
        """The combined delivery report of the batches that have finished so far."""
        combined: dict[str, Any] = {
            "recipients": self.recipients,
            "batches": self.batches,
            "batches_finished": 0,
            "finished": self.finished,
            "sent": 0,
            "gone": [],
            "failed": {},
            "pending_delivered": [],
            "pending_undelivered": [],
            "retried": 0,
            "errors": [],
        }
        batches = BroadcastBatch.objects.using(self._state.db).filter(broadcast=self)
        for batch in batches.exclude(state=BroadcastBatch.State.QUEUED).order_by("index"):
            if batch.state == BroadcastBatch.State.RUNNING:
                continue
            combined["batches_finished"] += 1
            combined["sent"] += batch.sent
            combined["gone"] += batch.gone
            combined["failed"].update(batch.failed)
            combined["pending_delivered"] += batch.pending_delivered
            combined["pending_undelivered"] += batch.pending_undelivered
            combined["retried"] += batch.retried
            if batch.error:
                combined["errors"].append({"batch": batch.index, "error": batch.error})
        return combined


class BroadcastBatch(models.Model):
    """One task's share of a :class:`Broadcast` and, once it ran, its outcome."""

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        #: The task raised: its recipients' fate is unknown (``error`` says why).
        ERROR = "error", _("Error")

    broadcast = models.ForeignKey(
        Broadcast, on_delete=models.CASCADE, related_name="+", verbose_name=_("broadcast")
    )
    index = models.PositiveIntegerField(_("index"))
    size = models.PositiveIntegerField(_("size"))
    state = models.CharField(_("state"), max_length=16, choices=State, default=State.QUEUED)
    worker = models.CharField(_("worker"), max_length=200, blank=True)
    sent = models.PositiveIntegerField(_("sent"), default=0)
    gone = models.JSONField(_("gone"), default=list, blank=True)
    failed = models.JSONField(_("failed"), default=dict, blank=True)
    pending_delivered = models.JSONField(_("pending delivered"), default=list, blank=True)
    pending_undelivered = models.JSONField(_("pending undelivered"), default=list, blank=True)
    retried = models.PositiveIntegerField(_("retried"), default=0)
    duration = models.FloatField(_("duration"), default=0.0)
    error = models.TextField(_("error"), blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("background broadcast batch")
        verbose_name_plural = _("background broadcast batches")
        constraints = [
            models.UniqueConstraint(fields=["broadcast", "index"], name="dagw_broadcast_batch")
        ]

    def __str__(self) -> str:
        return f"#{self.broadcast_id}.{self.index} ({self.get_state_display()})"

    def as_report(self) -> dict[str, Any]:
        """The batch's outcome in the shape the task returns."""
        return {
            "sent": self.sent,
            "gone": list(self.gone),
            "failed": dict(self.failed),
            "pending_delivered": list(self.pending_delivered),
            "pending_undelivered": list(self.pending_undelivered),
            "retried": self.retried,
            "duration": self.duration,
        }
