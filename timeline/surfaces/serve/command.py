"""`timeline serve`: the arguments, the missing-extra message and the uvicorn run.

Starlette, Jinja2 and uvicorn are imported only here, once the command runs: without the
`[serve]` extra the command says how to install it and exits 1.
"""
from __future__ import annotations

import argparse
import ipaddress

from timeline.errors import TimelineError
from timeline.surfaces.common import announce, open_timeline

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8765
NEEDED = ("starlette", "jinja2", "uvicorn")
INSTALL = "pip install 'timeline[serve]'"


def configure_serve(p: argparse.ArgumentParser) -> None:
    """Arguments of `timeline serve`."""
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on (default {DEFAULT_HOST}: this machine only; "
                        f"any other address is warned about)")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--open", action="store_true", help="open the home page in a browser")
    p.add_argument("--allow-sql", action="store_true",
                   help="add the /sql page and /api/sql (read-only SQL over the documented "
                        "views, as `timeline sql`)")
    p.add_argument("--max-rows", type=_rows, default=5000, metavar="N",
                   help="rows a page shows and /api/query answers at most (default 5000)")


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"needs a whole number from 0 to 65535, not {text!r}")
    return int(text)


def _rows(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 10 ** 7:
        raise argparse.ArgumentTypeError(f"needs a whole number from 1 to 10000000, not "
                                         f"{text!r}")
    return int(text)


def missing() -> list[str]:
    """The packages of the `[serve]` extra that cannot be imported."""
    import importlib.util

    return [name for name in NEEDED if importlib.util.find_spec(name) is None]


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run_serve(args) -> int:
    """Serve the pages until Ctrl-C; read-only throughout."""
    gone = missing()
    if gone:
        raise TimelineError(f"timeline serve needs {', '.join(gone)}, which "
                            f"{'is' if len(gone) == 1 else 'are'} not installed: {INSTALL}")
    import signal

    import uvicorn

    from timeline.surfaces.serve.app import make_app

    class _Server(uvicorn.Server):
        """uvicorn's Server, remembering whether Ctrl-C stopped it."""

        interrupted = False

        def handle_exit(self, sig, frame) -> None:
            """Note a Ctrl-C, then stop as uvicorn does."""
            if sig == signal.SIGINT:
                self.interrupted = True
            super().handle_exit(sig, frame)

    if not is_loopback(args.host):
        announce(f"warning: serving on {args.host}: anyone who can reach this address can "
                 f"read the whole database (the server is read-only, without login or TLS)")
    trusted = None if not is_loopback(args.host) else [
        "127.0.0.1", "localhost", "[::1]", "::1", args.host]
    sock = _bind(args.host, args.port)
    with sock, open_timeline(args, readonly=True) as tl:
        app = make_app(tl, allow_sql=args.allow_sql, max_rows=args.max_rows,
                       trusted_hosts=trusted)
        server = _Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                        lifespan="off"))
        host = f"[{args.host}]" if ":" in args.host else args.host
        url = f"http://{host}:{sock.getsockname()[1]}/"
        announce(f"timeline serve: {tl.where}, read-only, at {url} (Ctrl-C stops)")
        if args.open:
            import webbrowser

            webbrowser.open(url)
        # stops on Ctrl-C (SIGINT) or SIGTERM, closing its connections first; uvicorn then
        # raises the signal again: Ctrl-C ends as every command's does (130, `interrupted`)
        server.run(sockets=[sock])
        if server.interrupted:
            # uvicorn raises the signal again once it has stopped, but asyncio's runner may
            # swallow it when the serving task has just finished (seen under load: exit 0)
            raise KeyboardInterrupt
    return 0


def _bind(host: str, port: int):
    """A listening socket on host:port (port 0: a free one), or a clear error."""
    import socket

    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise TimelineError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock
