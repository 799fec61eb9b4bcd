from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from ..provisioning import GatewayCommand


class Command(GatewayCommand):
    help = (
        "Delete what provisioning created for an ApiGateway record (API mapping, DNS records, "
        "custom domain, certificate, then the API or the routes it added), nothing else."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--no-input", action="store_false", dest="interactive", help="Do not ask to confirm."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.refuse_local_writes()
        gateway = self.get_gateway(options["gateway"])
        provisioner = self.provisioner(gateway)
        plan = self.run(provisioner.teardown_plan)
        if not plan.steps:
            self.stdout.write("Nothing created by provisioning is left in AWS.")
            return
        self.show_plan(plan, heading="Teardown will make {count} call(s):")
        if options["interactive"]:
            answer = input("Type 'yes' to delete these resources: ")
            if answer.strip().lower() != "yes":
                raise CommandError("Teardown cancelled.")
        self.run(provisioner.teardown)
        self.stdout.write(self.style.SUCCESS(f"{gateway.name}: torn down."))
