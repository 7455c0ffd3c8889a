"""`interlock-bootstrap`: write the bootstrap of an Envoy or a proxyless gRPC
client, and optionally start Envoy with it.

Input errors are one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import NoReturn

from client import envoy
from client.bootstrap import BootstrapError, BootstrapOptions, envoy_bootstrap, grpc_bootstrap

TOKEN_ENV = "INTERLOCK_NODE_TOKEN"
USAGE_ERROR = 2
# The flag a user typed, for each field a BootstrapError names.
_FLAGS = {
    "tls_ca": "--tls-ca",
    "admin_port": "--admin-port",
    "server_name": "--server-name",
    "token_file": "--token-file",
    "output": "-o",
    "run": "--run",
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    argv, envoy_args = _split_envoy_args(argv)
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if envoy_args and not getattr(args, "run", False):
            raise BootstrapError("run", "arguments after -- are for Envoy and need --run.")
        options = _options(args)
        document = envoy_bootstrap(options) if args.kind == "envoy" else grpc_bootstrap(options)
        if getattr(args, "run", False):
            _run(document, args.output, envoy_args)
        _emit(document, args.output)
    except BootstrapError as error:
        flag = _FLAGS.get(error.field, f"--{error.field}")
        print(f"{parser.prog} {args.kind}: error: {flag}: {error.message}", file=sys.stderr)
        return USAGE_ERROR
    except envoy.EnvoyError as error:
        print(f"{parser.prog} {args.kind}: error: {error}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interlock-bootstrap",
        description="Write the xDS bootstrap of an Envoy or a proxyless gRPC client of an Interlock mesh.",
        epilog=f"The node token is read from --token-file, --token or ${TOKEN_ENV}, in that order; "
        "prefer the file or the variable: a command line is visible to every user of the machine.",
    )
    commands = parser.add_subparsers(dest="kind", required=True, metavar="{envoy,grpc}")
    envoy_cmd = commands.add_parser("envoy", help="an Envoy v3 bootstrap (ADS)")
    _common_arguments(envoy_cmd)
    envoy_cmd.add_argument("--admin-port", type=int, default=15000, help="admin port on 127.0.0.1 (default 15000; 0 = any)")
    envoy_cmd.add_argument("--delta", action="store_true", help="incremental (delta) xDS instead of state of the world")
    envoy_cmd.add_argument(
        "--run", action="store_true", help="write the bootstrap and exec Envoy with it; Envoy arguments go after --"
    )
    grpc_cmd = commands.add_parser("grpc", help="a gRPC xDS bootstrap (GRPC_XDS_BOOTSTRAP)")
    _common_arguments(grpc_cmd)
    return parser


def _common_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--server", required=True, metavar="HOST:PORT", help="the Interlock xDS server")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--mesh", required=True)
    parser.add_argument("--node", required=True, help="this proxy's name, unique in the mesh")
    token = parser.add_mutually_exclusive_group()
    token.add_argument("--token-file", metavar="FILE", help="a file holding the node token")
    token.add_argument("--token", help=f"the node token (prefer --token-file or ${TOKEN_ENV})")
    parser.add_argument("--cloud", default="", help="the cloud this node runs in (node metadata)")
    parser.add_argument("--region", default="", help="locality region (picks the priority-0 endpoints)")
    parser.add_argument("--zone", default="", help="locality zone")
    parser.add_argument("--tls-ca", metavar="FILE", help="PEM CA bundle to verify the server with (else plaintext)")
    parser.add_argument("--server-name", default="", help="name to verify the server certificate against, if not its host")
    parser.add_argument("-o", "--output", metavar="FILE", help="write here (mode 0600) instead of stdout")


def _split_envoy_args(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" not in argv:
        return argv, []
    at = argv.index("--")
    return argv[:at], argv[at + 1 :]


def _options(args) -> BootstrapOptions:
    extra = {"admin_port": args.admin_port, "delta": args.delta} if args.kind == "envoy" else {}
    return BootstrapOptions(
        server=args.server,
        tenant=args.tenant,
        mesh=args.mesh,
        node=args.node,
        token=_token(args),
        cloud=args.cloud,
        region=args.region,
        zone=args.zone,
        tls_ca=args.tls_ca,
        server_name=args.server_name,
        **extra,
    )


def _token(args) -> str:
    if args.token_file is not None:
        try:
            with open(args.token_file, encoding="utf-8") as handle:
                return handle.read().strip()
        except FileNotFoundError:
            raise BootstrapError("token_file", f"{args.token_file}: no such file.") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise BootstrapError("token_file", f"{args.token_file}: cannot be read ({exc}).") from None
    if args.token is not None:
        return args.token.strip()
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise BootstrapError("token", f"no node token: give --token-file FILE, --token or set ${TOKEN_ENV}.")
    return token


def _emit(document: dict, output: str | None):
    text = json.dumps(document, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        _write_private(output, text)


def _write_private(path: str, text: str):
    """The bootstrap holds the node token: only its owner may read it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise BootstrapError("output", f"{path}: cannot be written ({exc.strerror}).") from None


def _run(document: dict, output: str | None, envoy_args: list[str]) -> NoReturn:
    """Exec Envoy in this process, so signals from a supervisor reach it directly."""
    envoy.binary()  # a missing Envoy is reported before anything is written
    if output is None:
        fd, output = tempfile.mkstemp(prefix="interlock-envoy-", suffix=".json")
        os.close(fd)
    _write_private(output, json.dumps(document, indent=2) + "\n")
    argv = envoy.command(output, extra_args=envoy_args)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)
