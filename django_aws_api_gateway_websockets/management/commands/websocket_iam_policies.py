from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from ...provisioning.iam import provisioning_policy, runtime_policy
from ..provisioning import GatewayCommand


class Command(GatewayCommand):
    help = (
        "Print least-privilege IAM policies as JSON: the runtime policy for Django's role "
        "(ManageConnections on this API and stage) and the provisioning policy for the role "
        "that runs apply/teardown."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--account-id", default="*", help="Your AWS account id (default: any account)."
        )
        parser.add_argument(
            "--policy",
            choices=["runtime", "provisioning", "both"],
            default="both",
            help="Which policy to print (default: both, as one JSON object).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        gateway = self.get_gateway(options["gateway"])
        account = options["account_id"]
        policies: dict[str, Any] = {}
        if options["policy"] in ("runtime", "both"):
            try:
                policies["runtime"] = runtime_policy(gateway, account)
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        if options["policy"] in ("provisioning", "both"):
            policies["provisioning"] = provisioning_policy(gateway, account)
        output = policies if len(policies) > 1 else next(iter(policies.values()))
        self.stdout.write(json.dumps(output, indent=2))
