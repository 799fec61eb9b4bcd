from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from ...conf import ws_settings
from ..provisioning import GatewayCommand


class Command(GatewayCommand):
    help = (
        "Rotate the gateway secret: with the new secret listed first in GATEWAY_SECRETS and the "
        "old one still listed, write the new one to every integration, redeploy, check that "
        "AWS now sends it, and say when the old one can be removed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.refuse_local_writes()
        gateway = self.get_gateway(options["gateway"])
        secrets = ws_settings.gateway_secrets
        if len(secrets) < 2:
            raise CommandError(
                "List the new secret first in GATEWAY_SECRETS and keep the old one after it, "
                "deploy those settings to every Django instance, then run this command."
            )
        if not gateway.api_id:
            raise CommandError(f"{gateway.name} is not provisioned: run apply_websocket_api.")
        provisioner = self.provisioner(gateway)
        self.run(lambda: provisioner.apply(scope="api"))
        differences = self.run(provisioner.drift)
        if differences:
            for difference in differences:
                self.stdout.write(f"  {difference}")
            raise CommandError("AWS does not send the new secret everywhere yet; run again.")
        self.stdout.write(
            self.style.SUCCESS(
                f"{gateway.name}: every integration sends the new secret and is deployed. "
                f"Once all your gateways are rotated, remove the old secret(s) (positions "
                f"2-{len(secrets)} of GATEWAY_SECRETS) from your settings."
            )
        )
