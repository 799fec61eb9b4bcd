"""Gateway authenticators: is this request really from our API Gateway?

Each class in ``GATEWAY_AUTHENTICATORS`` (or a view's ``gateway_authenticators``) looks at the raw
request before anything else is read. The first that returns ``True`` admits it; one that cannot
tell returns ``False`` and the next is asked; one that detects a forgery raises
:class:`~.exceptions.Forbidden`. When none admits the request it is refused with 403.
"""

from __future__ import annotations

import hmac
import logging
from abc import ABC, abstractmethod

from django.http import HttpRequest
from django.utils.translation import gettext as _

from . import contract
from .conf import ws_settings
from .exceptions import Forbidden

logger = logging.getLogger("django_aws_api_gateway_websockets.security")


def authenticate_gateway(
    request: HttpRequest, authenticators: list[BaseGatewayAuthenticator]
) -> None:
    """Admit ``request`` if one of ``authenticators`` does; else refuse it with 403."""
    for authenticator in authenticators:
        if authenticator.authenticate(request):
            return
    raise Forbidden(_("Gateway authentication failed."))


def is_valid_secret(secret: object) -> bool:
    """Printable ASCII without surrounding whitespace or quotes: what survives both API
    Gateway's quoted static mapping and a WSGI server's latin-1 decoding of headers unchanged."""
    return (
        isinstance(secret, str)
        and bool(secret)
        and secret.isascii()
        and secret.isprintable()
        and secret == secret.strip()
        and "'" not in secret
    )


class BaseGatewayAuthenticator(ABC):
    @abstractmethod
    def authenticate(self, request: HttpRequest) -> bool:
        """``True`` admits the request; ``False`` abstains; raise ``Forbidden`` to refuse."""


class SharedSecretAuthenticator(BaseGatewayAuthenticator):
    """The secret API Gateway adds as a static header, compared in constant time with each of
    ``GATEWAY_SECRETS`` (several during a rotation)."""

    def authenticate(self, request: HttpRequest) -> bool:
        secrets = [s for s in ws_settings.gateway_secrets if is_valid_secret(s)]
        if not secrets:
            if ws_settings.ALLOW_UNAUTHENTICATED_GATEWAY is True:
                # An explicit opt-in for local experiments, loud on every event it lets in.
                logger.warning(
                    "Accepted an unauthenticated API Gateway event: no gateway secret is "
                    "configured and ALLOW_UNAUTHENTICATED_GATEWAY is True. Anyone who can reach "
                    "this URL can act as any WebSocket connection."
                )
                return True
            raise Forbidden(_("Gateway authentication is not configured."))
        given = request.META.get(contract.GATEWAY_SECRET_META_KEY, "")
        if not isinstance(given, str) or not given.isascii():
            return False
        given_bytes = given.encode("ascii")
        matched = False
        for secret in secrets:  # every comparison runs: timing reveals nothing
            matched |= hmac.compare_digest(given_bytes, secret.encode("ascii"))
        return matched
