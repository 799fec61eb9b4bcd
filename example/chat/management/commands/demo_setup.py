"""Create what the demo needs, once: two users, a staff user and the ``demo`` ApiGateway record."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandParser

from django_aws_api_gateway_websockets.models import ApiGateway

PASSWORD = "demo"


class Command(BaseCommand):
    help = (
        "Create the demo users (alice, bob, staff; password 'demo') and the 'demo' ApiGateway "
        "record whose integrations call this Django at --django-url. Safe to re-run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--django-url",
            default="http://127.0.0.1:8000",
            help="Where the gateway reaches Django (default http://127.0.0.1:8000).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()
        for name, staff in (("alice", False), ("bob", False), ("staff", True)):
            user, created = users.objects.get_or_create(
                username=name, defaults={"is_staff": staff, "email": f"{name}@example.com"}
            )
            if created:
                user.set_password(PASSWORD)
                user.save()
                self.stdout.write(f"Created user {name} (password {PASSWORD!r}).")
            if staff:
                user.user_permissions.add(
                    Permission.objects.get(
                        codename="join_staff_room", content_type__app_label="chat"
                    )
                )
        endpoint = options["django_url"].rstrip("/") + "/ws/"
        gateway, created = ApiGateway.objects.get_or_create(
            name="demo",
            defaults={
                "target_base_endpoint": endpoint,
                "stage": "demo",
                "default_channel_name": "lobby",
                "description": "The demo chat (local gateway, or AWS after apply_websocket_api).",
            },
        )
        if not created and gateway.target_base_endpoint != endpoint:
            gateway.target_base_endpoint = endpoint
            gateway.save()
        verb = "Created" if created else "Using"
        self.stdout.write(f"{verb} ApiGateway 'demo' -> {gateway.target_base_endpoint}")
