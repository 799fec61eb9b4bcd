from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from ..provisioning import GatewayCommand


class Command(GatewayCommand):
    help = (
        "Set up the record's custom domain: request the ACM certificate (DNS validation), write "
        "the validation record to the Route 53 zone (or print it), wait until it is issued, then "
        "create the domain name, the API mapping and the alias records."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.refuse_local_writes()
        gateway = self.get_gateway(options["gateway"])
        if not gateway.custom_domain_name:
            raise CommandError(f"{gateway.name} has no custom domain name.")
        plan = self.run(lambda: self.provisioner(gateway).apply(scope="domain"))
        self.show_notes(plan)
        gateway.refresh_from_db()
        self.stdout.write(self.style.SUCCESS(f"Custom domain ready: {gateway.websocket_url}"))
