"""Identifiers in the shapes AWS uses, so code that validates them locally accepts them in AWS
too."""

from __future__ import annotations

import base64
import secrets
import string

_LOWER_ALNUM = string.ascii_lowercase + string.digits


def _token(length: int) -> str:
    return "".join(secrets.choice(_LOWER_ALNUM) for _ in range(length))


def new_api_id() -> str:
    """A 10-character API id, like ``a1b2c3d4e5``."""
    return _token(10)


def new_resource_id() -> str:
    """A 7-character route, integration or route-response id, like ``ab12cd3``."""
    return _token(7)


def new_deployment_id() -> str:
    """A 6-character deployment id."""
    return _token(6)


def new_connection_id() -> str:
    """A 16-character connection id: base64url of 11 random bytes (``L0SM9cOFvHcCIhw=``,
    ``P-S_9e-7liACH9A=``), the alphabet of every id AWS has shown."""
    return base64.urlsafe_b64encode(secrets.token_bytes(11)).decode("ascii")


def new_request_id() -> str:
    """A request id as API Gateway reports ``context.requestId`` (``Ab1cDE2fIAMF3xg=``)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(11)).decode("ascii")
