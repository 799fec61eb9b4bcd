from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WebSocketsConfig(AppConfig):
    name = "django_aws_api_gateway_websockets"
    verbose_name = _("AWS API Gateway WebSockets")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, gateways, receivers  # noqa: F401  (checks, cache invalidation)

        receivers.connect()
