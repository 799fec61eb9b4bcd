"""What the provisioning commands share: finding the record, the provisioner, the output."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ..conf import ws_settings
from ..models import ApiGateway
from ..provisioning import Plan, Provisioner, ProvisioningError


class GatewayCommand(BaseCommand):
    """A command about one ``ApiGateway`` record, named by its name or its API id."""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("gateway", help="Name or API id of the ApiGateway record.")

    def get_gateway(self, value: str) -> ApiGateway:
        gateway = (
            ApiGateway.objects.filter(name=value).first()
            or ApiGateway.objects.filter(api_id=value).first()
        )
        if gateway is None:
            raise CommandError(f"No ApiGateway record is named {value!r} or has that API id.")
        return gateway

    def adopt(self, gateway: ApiGateway, api_id: str | None, *, save: bool) -> None:
        """Point the record at an API that already exists (made by hand or another tool)."""
        if not api_id:
            return
        if gateway.api_id and gateway.api_id != api_id:
            raise CommandError(f"{gateway.name} already manages API {gateway.api_id}.")
        if ApiGateway.objects.filter(api_id=api_id).exclude(pk=gateway.pk).exists():
            raise CommandError(f"Another record already manages API {api_id}.")
        gateway.api_id = api_id
        if save:
            ApiGateway.objects.filter(pk=gateway.pk).update(api_id=api_id)

    def refuse_local_writes(self) -> None:
        """Records describe AWS: a command that writes provisioning results into them does not
        run against the local gateway (reads such as plan and check do)."""
        from ..endpoints import LOCAL_WRITES_REFUSED, local_gateway_url

        if local_gateway_url():
            raise CommandError(str(LOCAL_WRITES_REFUSED))

    def provisioner(self, gateway: ApiGateway) -> Provisioner:
        """Progress lines for every change; with ``-v 2``, a line for every read as well."""
        trace = self.stdout.write if self.verbosity >= 2 else None
        return Provisioner(gateway, progress=self.stdout.write, trace=trace)

    def execute(self, *args: Any, **options: Any) -> Any:
        self.verbosity = options.get("verbosity", 1)
        return super().execute(*args, **options)

    def run(self, action: Any) -> Any:
        """Call the layer, turning its failures into a non-zero exit with the AWS message."""
        try:
            return action()
        except ProvisioningError as exc:
            raise CommandError(str(exc)) from exc

    def show_plan(self, plan: Plan, *, heading: str) -> None:
        if plan.in_sync:
            self.stdout.write("AWS matches the records: nothing to do.")
        else:
            self.stdout.write(heading.format(count=len(plan.mutating_steps)))
        for line in plan.describe(tuple(ws_settings.gateway_secrets)):
            self.stdout.write(f"  {line}")
        self.show_notes(plan)

    def show_notes(self, plan: Plan) -> None:
        for note in plan.notes:
            self.stdout.write(self.style.WARNING(f"Note: {note}"))
