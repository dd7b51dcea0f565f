"""More than one server: several app processes behind Debian's nginx, each browser kept on its process.

    python -m attnviz.cluster --servers 2 --port 8500          # http://localhost:8500 for the class
    python -m attnviz.cluster --servers 3 -- --checkpoints DIR  # after --: the app's own arguments

One Streamlit process keeps each session in the process that opened it (its websocket, uploads and media
files), so a course larger than one process serves needs several processes behind a proxy that sends every
request of one browser to the same one. This starts `--servers` app processes on the ports after `--port`,
warms each (attnviz.serve), and runs nginx in front of them on `--port` with deploy/attnviz.conf.template:
a route key in a cookie, hashed consistently to a process. The same template serves the compose.yaml
deployment (the official nginx image, one service scaled to N replicas).

nginx comes from Debian (`apt-get install nginx`); it runs as a child of this command, with its
configuration, logs and temporary files in a folder of its own, and stops with it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["NGINX", "TEMPLATE", "render", "nginx_proxy", "app_processes", "main"]

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "attnviz.conf.template"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

_MAIN = """# written by attnviz.cluster: nginx's main context around deploy/attnviz.conf.template
{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/attnviz.conf;
}}
"""


def render(listen: int | str, backends: list[str], template: Path = TEMPLATE) -> str:
    """The template's server block for nginx listening on `listen`, with one upstream server per backend
    ("127.0.0.1:8601"); nginx's own $variables are left as they are."""
    servers = "\n    ".join(f"server {backend};" for backend in backends)
    return string.Template(template.read_text()).safe_substitute(
        ATTNVIZ_UPSTREAMS=servers, ATTNVIZ_LISTEN=listen, ATTNVIZ_RESOLVER=""
    )


def _wait_for_port(port: int, timeout_s: float, process: subprocess.Popen) -> None:
    deadline = time.time() + timeout_s
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        if process.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"nginx did not listen on port {port}")
        time.sleep(0.1)


@contextlib.contextmanager
def nginx_proxy(listen: int, backends: list[str], timeout_s: float = 30) -> Iterator[str]:
    """Debian's nginx on 127.0.0.1:`listen` in front of `backends`; yields its URL, stops it on exit."""
    if not Path(NGINX).exists():
        raise FileNotFoundError("nginx is not installed: apt-get install nginx")
    with tempfile.TemporaryDirectory(prefix="attnviz-nginx-") as prefix:
        (Path(prefix) / "attnviz.conf").write_text(render(listen, backends))
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers write the temporary files in this folder
        (Path(prefix) / "nginx.conf").write_text(_MAIN.format(prefix=prefix, user=user))
        check = subprocess.run(
            [NGINX, "-t", "-p", prefix, "-c", f"{prefix}/nginx.conf"], capture_output=True, text=True
        )
        if check.returncode:
            raise RuntimeError("nginx refused the configuration:\n" + check.stderr)
        proc = subprocess.Popen([NGINX, "-p", prefix, "-c", f"{prefix}/nginx.conf", "-e", f"{prefix}/error.log"])
        try:
            _wait_for_port(listen, timeout_s, proc)
            yield f"http://127.0.0.1:{listen}"
        finally:
            proc.send_signal(signal.SIGQUIT)  # nginx's graceful stop
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextlib.contextmanager
def app_processes(
    count: int, first_port: int, app_args: tuple[str, ...] = (), warm: bool = True, pids: list | None = None
) -> Iterator[list[str]]:
    """`count` app processes on first_port, first_port + 1, ...; yields their "127.0.0.1:port" addresses."""
    from attnviz.browser import streamlit_server
    from attnviz.serve import warm_up

    with contextlib.ExitStack() as stack:
        backends = []
        for i in range(count):
            url = stack.enter_context(
                streamlit_server(ROOT / "app.py", ROOT, args=app_args, port=first_port + i, pid_out=pids)
            )
            backends.append(url.removeprefix("http://"))
        if warm:
            for backend in backends:
                warm_up(f"http://{backend}")
        yield backends


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attnviz.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=2, help="app processes (one per 2 cores serves well)")
    parser.add_argument("--port", type=int, default=8500, help="nginx's port; the apps take the next ones")
    parser.add_argument("--no-warm", action="store_true")
    parser.add_argument("app_args", nargs="*", help="after --: the app's arguments")
    args = parser.parse_args(argv)
    if args.servers < 1:
        parser.error("--servers must be at least 1")
    import logging

    logging.getLogger("streamlit").setLevel(logging.ERROR)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))  # stop everything, as Ctrl-C
    with (
        contextlib.suppress(KeyboardInterrupt),
        app_processes(args.servers, args.port + 1, tuple(args.app_args), warm=not args.no_warm) as backends,
        nginx_proxy(args.port, backends) as url,
    ):
        print(f"attnviz: {args.servers} app processes ({', '.join(backends)}) behind nginx at {url}", flush=True)
        while True:
            time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
