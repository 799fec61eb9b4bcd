from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandParser

from ...provisioning.cloudformation import template
from ...provisioning.desired import desired_api
from ..provisioning import GatewayCommand


class Command(GatewayCommand):
    help = (
        "Write a CloudFormation template (JSON) describing the same API, routes, integrations, "
        "stage, custom domain and DNS records that apply_websocket_api builds. The gateway "
        "secret is a NoEcho parameter, never written into the file."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("-o", "--output", help="Write to this file instead of stdout.")

    def handle(self, *args: Any, **options: Any) -> None:
        gateway = self.get_gateway(options["gateway"])
        text = json.dumps(template(desired_api(gateway)), indent=2) + "\n"
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8") as handle:
                handle.write(text)
            self.stdout.write(f"Wrote {options['output']}")
        else:
            self.stdout.write(text, ending="")
