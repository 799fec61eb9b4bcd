from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from ...models import ApiGateway
from ..provisioning import GatewayCommand


class Command(GatewayCommand):
    help = (
        "Drift check: compare AWS with the ApiGateway records (e.g. an integration edited in "
        "the console) and exit non-zero if they differ. Without a name, checks every record "
        "that has an API id."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "gateway", nargs="*", help="Names or API ids (default: every provisioned record)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["gateway"]:
            gateways = [self.get_gateway(value) for value in options["gateway"]]
        else:
            gateways = list(ApiGateway.objects.exclude(api_id=None))
        drifted = 0
        for gateway in gateways:
            differences = self.run(self.provisioner(gateway).drift)
            if not differences:
                self.stdout.write(f"{gateway.name}: AWS matches the records.")
                continue
            drifted += 1
            self.stdout.write(self.style.ERROR(f"{gateway.name}: AWS differs from the records:"))
            for difference in differences:
                self.stdout.write(f"  {difference}")
        if drifted:
            raise CommandError(
                f"{drifted} API(s) differ from the records; run apply_websocket_api to fix."
            )
