"""HTTP plumbing: a threaded HTTP/1.1 server (keep-alive, optional TLS) that turns
each request into a Request for a handler function, applies the reply's delay or
drop, and records every exchange in the request log."""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import ssl
import sys
import threading
import traceback
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

from azwait_sim.wire import Reply, Request, json_reply
from azwait_sim.world import World

Route = Callable[[World, Request], Reply]
# Idle keep-alive connections and stalled TLS handshakes give their thread back.
CONNECTION_TIMEOUT = 60.0


class RequestLog:
    """Every exchange, in memory and optionally as flushed JSON lines."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self._out: IO[str] | None = None
        if path is not None:
            self._out = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def record(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, separators=(",", ":"))
        with self._lock:
            self._entries.append(entry)
            if self._out is not None:
                self._out.write(line + "\n")
                self._out.flush()

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self._entries]

    def close(self) -> None:
        with self._lock:
            if self._out is not None:
                self._out.close()
                self._out = None


def _safe_query(query: dict[str, str]) -> dict[str, str]:
    # Nothing in a query should be a secret, but a confused client might put one there.
    return {k: ("<redacted>" if "token" in k.lower() else v) for k, v in query.items()}


def log_entry(world: World, request: Request, reply: Reply) -> dict[str, Any]:
    vm = None if reply.vm is None else world.fleet.get(reply.vm)
    t = world.uptime() if vm is None else world.fleet.now(vm)
    retry_after: float | None = None
    if "Retry-After" in reply.headers:
        retry_after = float(reply.headers["Retry-After"])
        retry_after = int(retry_after) if retry_after.is_integer() else retry_after
    return {
        "t": round(t, 6),
        "wall": world.wall(),
        "vm": reply.vm,
        "endpoint": reply.endpoint,
        "method": request.method,
        "path": request.path,
        "query": _safe_query(dict(request.query)),
        "status": 0 if reply.drop else reply.status,
        "retry_after": retry_after,
        "identity": reply.identity,
        "auth": reply.auth,
        "proxy_headers": request.header("X-Forwarded-For") is not None
        or request.header("Via") is not None,
        "event_id": reply.event_id,
        # What the answer told the client of each read budget (ARM and Compute counters).
        "budget": {name: value for name, value in reply.headers.items()
                   if name.startswith("x-ms-ratelimit-remaining-")},
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "azwait-sim"
    sys_version = ""
    timeout = CONNECTION_TIMEOUT
    server: SimServer

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """The request log is the record; stderr stays quiet."""

    def version_string(self) -> str:
        return self.server_version

    def _read_request(self) -> Request:
        split = urllib.parse.urlsplit(self.path)
        query: dict[str, str] = {}
        for name, value in urllib.parse.parse_qsl(split.query, keep_blank_values=True):
            query.setdefault(name, value)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        return Request(self.command, urllib.parse.unquote(split.path), query, headers, body)

    def _serve(self) -> None:
        server = self.server
        try:
            request = self._read_request()
        except ValueError:
            self.send_error(400, "Bad Content-Length")
            return
        try:
            reply = server.route(server.world, request)
        except Exception:
            # A simulator bug must not pass for an Azure answer the agent should handle.
            traceback.print_exc(file=sys.stderr)
            reply = json_reply(500, {"error": "azwait-sim internal error (a bug in the simulator)"})
        if reply.delay > 0:
            server.world.stopping.wait(reply.delay)
        server.log.record(log_entry(server.world, request, reply))
        if reply.drop:
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.body:
            self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if reply.trickle <= 0:
            self.wfile.write(reply.body)
            return
        for at in range(len(reply.body)):
            self.wfile.write(reply.body[at:at + 1])
            self.wfile.flush()
            if server.world.stopping.wait(reply.trickle):
                return


class SimServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # A benchmark fleet connects all at once; the default backlog of 5 would turn
    # that into SYN retries of a second or more.
    request_queue_size = 1024

    def __init__(
        self,
        address: tuple[str, int],
        world: World,
        route: Route,
        log: RequestLog,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.world, self.route, self.log, self.tls = world, route, log, tls
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup, which can stall start-up.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def finish_request(self, request: Any, client_address: Any) -> None:
        conn = request
        if self.tls is not None:
            # Handshake here, in the connection's own thread, not in the accept loop.
            request.settimeout(CONNECTION_TIMEOUT)
            try:
                conn = self.tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                return
        with self._open_lock:
            self._open.add(conn)
        try:
            super().finish_request(conn, client_address)
        finally:
            with self._open_lock:
                self._open.discard(conn)
            if conn is not request:
                conn.close()

    def server_close(self) -> None:
        super().server_close()
        # A stopped simulator must not go on answering on kept-alive connections.
        with self._open_lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError, ssl.SSLError)):
            return  # clients hanging up is their business
        super().handle_error(request, client_address)
