"""``lookout serve | check-config | version``: thin; the work is in config.py and app.py."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from lookout import __version__
from lookout.config import ConfigError, load_config

FLAG_PATHS = {
    "data_dir": "data_dir",
    "otlp_grpc_listen": "listen.otlp_grpc",
    "otlp_http_listen": "listen.otlp_http",
    "http_listen": "listen.http",
    "health_listen": "listen.health",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lookout", description="Self-hosted OpenTelemetry-native observability.")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run a node (every layer in one process by default)")
    serve.add_argument("--config", help="YAML config file (defaults are embedded)")
    serve.add_argument("--data-dir", help="where the log and blocks live (default ./lookout-data)")
    serve.add_argument("--otlp-grpc-listen", metavar="HOST:PORT", help="OTLP/gRPC (default 127.0.0.1:4317)")
    serve.add_argument("--otlp-http-listen", metavar="HOST:PORT", help="OTLP/HTTP (default 127.0.0.1:4318)")
    serve.add_argument("--http-listen", metavar="HOST:PORT", help="UI and query APIs (default 127.0.0.1:3000)")
    serve.add_argument("--health-listen", metavar="HOST:PORT", help="health check (default 127.0.0.1:13133)")
    check = sub.add_parser("check-config", help="validate a config file and name every error")
    check.add_argument("file")
    sub.add_parser("version", help="print the version")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"lookout {__version__}")
        return 0
    if args.command == "check-config":
        try:
            load_config(args.file)
        except ConfigError as e:
            for problem in e.problems:
                print(f"error: {problem}", file=sys.stderr)
            return 1
        print(f"{args.file}: ok")
        return 0
    overrides = {path: getattr(args, flag) for flag, path in FLAG_PATHS.items()
                 if getattr(args, flag) is not None}
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as e:
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr)
        print("lookout: refusing to start with an invalid config", file=sys.stderr)
        return 1
    logging.basicConfig(level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from lookout.app import Node  # imported late: check-config stays fast and light

    try:
        _run(Node(cfg).run())
    except OSError as e:
        logging.getLogger("lookout").error("%s", e)
        return 1
    return 0


def _run(coro) -> None:
    """uvloop when available (faster HTTP and gRPC event handling), asyncio otherwise."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


if __name__ == "__main__":
    sys.exit(main())
