from __future__ import annotations

import signal
import threading
from typing import Any
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...endpoints import local_gateway_url
from ...models import ApiGateway

DEFAULT_PORT = 4510


class Command(BaseCommand):
    help = (
        "Run the local API Gateway (WebSocket data plane, Management API and apigatewayv2 "
        "control plane on one port) and load every ApiGateway record into it through the "
        "provisioning layer. Point Django at it with AWS_API_GATEWAY_WEBSOCKETS"
        "['LOCAL_GATEWAY_URL']. Ctrl-C (or SIGTERM) stops it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
        parser.add_argument(
            "--port",
            type=int,
            default=None,
            help=f"Port (default: the port of LOCAL_GATEWAY_URL, else {DEFAULT_PORT}; 0 picks a "
            "free one).",
        )
        parser.add_argument(
            "--backend-url",
            default="",
            help="Call this Django server (e.g. http://127.0.0.1:8000) instead of the scheme, "
            "host and port of each record's target base endpoint.",
        )
        parser.add_argument(
            "--gateway",
            action="append",
            default=[],
            metavar="NAME",
            help="Load only this record (repeatable). Default: every record.",
        )
        parser.add_argument(
            "--idle-timeout", type=float, default=600, help="Seconds (default 600, as AWS)."
        )
        parser.add_argument(
            "--max-duration", type=float, default=7200, help="Seconds (default 7200, as AWS)."
        )
        parser.add_argument(
            "--integration-timeout", type=float, default=29.0, help="Seconds (default 29)."
        )
        parser.add_argument(
            "--drop-disconnect",
            action="store_true",
            help="Never call $disconnect, as AWS may not (best effort).",
        )
        parser.add_argument(
            "--management-rate-limit",
            type=float,
            default=None,
            help="Management API requests per second before 429 LimitExceededException.",
        )
        parser.add_argument(
            "--allow-remote",
            action="store_true",
            help="Allow a non-loopback --host (the gateway checks no credentials).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            from ...local_gateway.config import ConfigError, GatewayConfig
            from ...local_gateway.server import GatewayThread
            from ...local_gateway_loader import load_gateways
        except ModuleNotFoundError as exc:
            raise CommandError(
                f"The local gateway needs the local-gateway extra ({exc.name} is missing): "
                "pip install 'django-aws-api-gateway-websockets[local-gateway]'"
            ) from exc
        port = options["port"]
        if port is None:
            port = urlsplit(local_gateway_url()).port or DEFAULT_PORT
        try:
            config = GatewayConfig(
                host=options["host"],
                port=port,
                idle_timeout=options["idle_timeout"],
                max_duration=options["max_duration"],
                integration_timeout=options["integration_timeout"],
                drop_disconnect=options["drop_disconnect"],
                management_rate_limit=options["management_rate_limit"],
                allow_remote=options["allow_remote"],
            )
        except ConfigError as exc:
            raise CommandError(str(exc)) from exc
        records = ApiGateway.objects.order_by("name")
        if options["gateway"]:
            records = records.filter(name__in=options["gateway"])
            missing = set(options["gateway"]) - set(records.values_list("name", flat=True))
            if missing:
                raise CommandError(f"No ApiGateway record named {', '.join(sorted(missing))}.")
        try:
            gateway = GatewayThread(config).start()
        except OSError as exc:
            raise CommandError(f"Cannot listen on {config.host}:{config.port}: {exc}") from exc
        try:
            self.stdout.write(
                f"Local API Gateway: WebSocket {gateway.ws_url}/<apiId>/<stage> | "
                f"Management API {gateway.http_url}/<apiId>/<stage>/@connections/<id> | "
                f"control plane {gateway.control_url}"
            )
            self.stdout.write(f"Loading {records.count()} ApiGateway record(s)...")
            loaded = load_gateways(
                gateway.control_url,
                gateways=records,
                backend_url=options["backend_url"] or None,
                progress=self.stdout.write,
            )
            failed = [item for item in loaded if not item.ok]
            for item in loaded:
                if item.ok:
                    self.stdout.write(self.style.SUCCESS(f"{item.name}: {item.websocket_url}"))
            if failed:
                self.stderr.write(f"{len(failed)} record(s) could not be loaded (see above).")
            if local_gateway_url() != gateway.http_url:
                self.stdout.write(
                    self.style.WARNING(
                        "Django sends through AWS until you set "
                        f"AWS_API_GATEWAY_WEBSOCKETS['LOCAL_GATEWAY_URL'] = '{gateway.http_url}'"
                    )
                )
            self.stdout.write("Ready. Quit with CONTROL-C.")
            self.wait()
        except KeyboardInterrupt:
            pass
        finally:
            gateway.stop()  # open connections are closed (1001) and get their $disconnect
            self.stdout.write("Local API Gateway stopped.")

    def wait(self) -> None:
        """Serve until Ctrl-C (SIGINT) or SIGTERM (tests replace this)."""
        stop = threading.Event()
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
        try:
            while not stop.wait(1.0):
                pass
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
