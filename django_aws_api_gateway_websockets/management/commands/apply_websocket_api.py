from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from ..provisioning import GatewayCommand


class Command(GatewayCommand):
    help = (
        "Create or update the API Gateway WebSocket API, its integrations, routes, stage, "
        "deployment and custom domain so that AWS matches an ApiGateway record. Safe to re-run: "
        "a run that failed part-way is resumed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--adopt",
            metavar="API_ID",
            help="Take over an existing API with this id instead of creating one.",
        )
        parser.add_argument(
            "--skip-domain",
            action="store_true",
            help="Converge the API only, not the custom domain (see provision_websocket_domain).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.refuse_local_writes()
        gateway = self.get_gateway(options["gateway"])
        self.adopt(gateway, options["adopt"], save=True)
        scope = "api" if options["skip_domain"] else "all"
        plan = self.run(lambda: self.provisioner(gateway).apply(scope=scope))
        self.show_notes(plan)
        gateway.refresh_from_db()
        made = len(plan.mutating_steps)
        summary = f"{gateway.name} is provisioned ({made} change(s)): {gateway.websocket_url}"
        self.stdout.write(self.style.SUCCESS(summary))
