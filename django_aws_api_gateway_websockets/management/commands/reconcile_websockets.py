from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_aws_api_gateway_websockets import contract
from django_aws_api_gateway_websockets.presence import reconcile, suspicious_sessions


class Command(BaseCommand):
    help = (
        "Ask API Gateway (GetConnection, concurrently) about sessions still marked connected "
        "that have sent nothing for a while, and mark the ones it no longer knows disconnected."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--idle-seconds",
            type=float,
            default=float(contract.IDLE_TIMEOUT_SECONDS),
            help="Probe sessions with no inbound message for this long (default: %(default)s).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = reconcile(suspicious_sessions(options["idle_seconds"]))
        self.stdout.write(
            f"Probed {report.total} session(s): {len(report.sent)} still connected, "
            f"{len(report.gone)} marked disconnected, {len(report.failed)} without an answer."
        )
