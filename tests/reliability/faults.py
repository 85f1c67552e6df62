"""A TCP proxy on 127.0.0.1 that can take a service away and bring it back, for fault injection.

moto keeps its objects in memory, so "killing the S3 endpoint" cannot mean stopping moto: the proxy in
front of it goes down instead. While down it refuses connections and every open connection is cut, which
is what clients see of a crashed endpoint. `cut_on(pattern, seconds)` waits for a request that matches the
regular expression `pattern` (say a PUT of a checkpoint's key), lets its first bytes through, then goes down
mid-request for `seconds`.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass, field

from services import free_port


@dataclass
class FaultEvent:
    at: float
    what: str
    detail: str = ""


@dataclass
class FaultProxy:
    target_port: int
    port: int = field(default_factory=free_port)
    events: list[FaultEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._trigger: tuple[re.Pattern[bytes], float] | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._record("up")
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self, reason: str = "") -> None:
        """Refuse new connections and cut the open ones."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = set(self._sockets), set()
        if listener is not None:
            listener.close()
        for sock in sockets:
            _close(sock)
        self._record("down", reason)

    def outage(self, seconds: float, reason: str = "") -> None:
        self.down(reason)
        timer = threading.Timer(seconds, self.up)
        timer.daemon = True
        timer.start()

    def cut_on(self, pattern: bytes, seconds: float) -> None:
        """Go down for `seconds` in the middle of the first request whose bytes match the regular expression `pattern`."""
        self._trigger = (re.compile(pattern), seconds)

    def outages(self) -> list[tuple[float, float, str]]:
        """(went down, came back, reason) for every outage so far."""
        spans, started, reason = [], None, ""
        for event in self.events:
            if event.what == "down":
                started, reason = event.at, event.detail
            elif event.what == "up" and started is not None:
                spans.append((started, event.at, reason))
                started = None
        return spans

    def close(self) -> None:
        self._trigger = None
        self.down("closed")

    def _record(self, what: str, detail: str = "") -> None:
        self.events.append(FaultEvent(time.monotonic(), what, detail))

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:  # went down meanwhile
                    _close(client), _close(upstream)
                    continue
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                trigger = self._trigger if from_client else None
                if trigger is not None and trigger[0].search(chunk):
                    self._trigger = None
                    # Half the request reaches the server, then the endpoint dies.
                    sink.sendall(chunk[: len(chunk) // 2])
                    line = chunk.split(b"\r\n", 1)[0].decode("latin-1")
                    self.outage(trigger[1], f"cut during {line}")
                    return
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            _close(source), _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
