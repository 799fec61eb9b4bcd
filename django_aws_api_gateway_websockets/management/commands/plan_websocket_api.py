from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from ..provisioning import GatewayCommand


class Command(GatewayCommand):
    help = (
        "Show the AWS calls that would make API Gateway (and the custom domain) match an "
        "ApiGateway record, without making any. Reads AWS only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--adopt",
            metavar="API_ID",
            help="Plan against an existing API (made by hand or another tool) with this id.",
        )
        parser.add_argument(
            "--teardown", action="store_true", help="Show what teardown would delete instead."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        gateway = self.get_gateway(options["gateway"])
        self.adopt(gateway, options["adopt"], save=False)
        provisioner = self.provisioner(gateway)
        if options["teardown"]:
            plan = self.run(provisioner.teardown_plan)
            self.show_plan(plan, heading="Teardown would make {count} call(s):")
        else:
            plan = self.run(provisioner.plan)
            self.show_plan(plan, heading="Apply would make {count} call(s):")
