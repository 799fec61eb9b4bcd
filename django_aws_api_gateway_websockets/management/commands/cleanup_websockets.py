from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from django_aws_api_gateway_websockets.cleanup import cleanup


class Command(BaseCommand):
    help = (
        "Mark sessions older than API Gateway's 2-hour limit disconnected, delete old "
        "disconnected sessions, used or expired tokens and old rate-limit windows. "
        "Safe to run from cron at any interval."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        result = cleanup()
        self.stdout.write(
            f"Marked {result.expired_sessions} session(s) past the maximum connection "
            f"duration disconnected.\n"
            f"Deleted {result.deleted_sessions} disconnected session(s), "
            f"{result.deleted_tokens} token(s) and "
            f"{result.deleted_rate_limits} rate-limit window(s)."
        )
