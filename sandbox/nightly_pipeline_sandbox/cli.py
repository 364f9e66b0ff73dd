"""``nightly-pipeline sandbox serve``: the simulated world in the foreground, with its exports."""
from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading


def cmd_serve(settings, args: argparse.Namespace) -> None:
    from nightly_pipeline_sandbox.runner import Sandbox, SandboxConfig

    config = SandboxConfig(seed=args.seed, web_latency_scale=args.latency_scale,
                           vendor_latency_scale=args.vendor_latency_scale)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with Sandbox(config) as sandbox:
        for name, value in sandbox.env.items():
            print(f"export {name}={shlex.quote(value)}")
        print(f"# sandbox up: {len(sandbox.world.sites)} simulated sites; Ctrl-C stops it", file=sys.stderr)
        sys.stdout.flush()
        stop.wait()


def add_sandbox_parser(top: argparse._SubParsersAction) -> None:
    sandbox = top.add_parser("sandbox", help="the simulated web, vendors and Odoo").add_subparsers(
        dest="action", required=True)
    serve = sandbox.add_parser("serve", help="start the sandbox and print the variables that point at it")
    serve.add_argument("--seed", type=int, default=7)
    serve.add_argument("--latency-scale", type=float, default=1.0, help="scale of simulated web latency (0 = none)")
    serve.add_argument("--vendor-latency-scale", type=float, default=0.2)
    serve.set_defaults(func=cmd_serve)
