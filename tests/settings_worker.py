"""Settings for a ``db_worker`` subprocess started by ``tests/test_background.py``.

The test suite's settings, with outbound calls going to the fake Management API server the test
started: ``DAGW_WORKER_TRANSPORT_URL`` is its endpoint URL (``ManagementApiServer.url``).
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import GATEWAY_SECRET

AWS_API_GATEWAY_WEBSOCKETS = {
    "GATEWAY_SECRETS": [GATEWAY_SECRET],
    "TRANSPORT": "django_aws_api_gateway_websockets.transports.aws.LocalGatewayTransport",
    "TRANSPORT_OPTIONS": {"endpoint_url": os.environ["DAGW_WORKER_TRANSPORT_URL"]},
}
