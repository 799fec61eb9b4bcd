"""``python -m django_aws_api_gateway_websockets.local_gateway``: run a local gateway alone.

The first line printed gives the WebSocket, Management API and control-plane URLs; SIGINT or
SIGTERM stops it cleanly (open connections are closed with 1001 and get their ``$disconnect``).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from .config import ConfigError, GatewayConfig
from .server import LocalGateway


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m django_aws_api_gateway_websockets.local_gateway",
        description="A local AWS API Gateway for WebSocket APIs (HTTP integrations).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    p.add_argument("--idle-timeout", type=float, default=600, help="seconds (default 600)")
    p.add_argument("--max-duration", type=float, default=7200, help="seconds (default 7200)")
    p.add_argument("--integration-timeout", type=float, default=29.0, help="seconds (default 29)")
    p.add_argument(
        "--drop-disconnect", action="store_true", help="never call $disconnect (AWS best effort)"
    )
    p.add_argument(
        "--management-rate-limit",
        type=float,
        default=None,
        help="Management API requests/s before 429 LimitExceededException (default: none)",
    )
    p.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback --host (no auth!)"
    )
    return p


def config_from(args: argparse.Namespace) -> GatewayConfig:
    return GatewayConfig(
        host=args.host,
        port=args.port,
        idle_timeout=args.idle_timeout,
        max_duration=args.max_duration,
        integration_timeout=args.integration_timeout,
        drop_disconnect=args.drop_disconnect,
        management_rate_limit=args.management_rate_limit,
        allow_remote=args.allow_remote,
    )


def banner(gateway: LocalGateway) -> str:
    return (
        f"Local API Gateway: WebSocket {gateway.ws_url}/<apiId>/<stage> | "
        f"Management API {gateway.http_url}/<apiId>/<stage>/@connections/<id> | "
        f"control plane {gateway.control_url}"
    )


async def serve(config: GatewayConfig) -> None:
    gateway = LocalGateway(config)
    await gateway.start()
    print(banner(gateway), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await gateway.stop()
        print("Local API Gateway stopped.", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = config_from(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
