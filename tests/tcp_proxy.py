"""A TCP proxy on loopback that a test puts between the app and PostgreSQL, to cut or hang the database at will.

- forward: bytes flow both ways (the normal case).
- cut: the port refuses connections and every open connection is reset, as when the server is down.
- hang: connections are accepted and then nothing is forwarded, on new and open connections alike, as when the
  server (or a machine between) stops answering while its kernel still accepts connections.
- drop_answers(n, to=b"POST /path"): requests reach the server, but the next n answers (to requests that start with
  `to`) are thrown away and their client connections reset when the answer's first bytes arrive, as when the network
  fails after the server did the work.
"""

import socket
import struct
import threading
from contextlib import suppress

from django.db import connection

LOOPBACK = "127.0.0.1"


class TcpProxy:
    def __init__(self, target_port: int):
        self.target = (LOOPBACK, target_port)
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.port = 0
        self._stopped = False
        self._answers_to_drop = 0
        self._dropped_request = b""
        self.answers_dropped = 0

    def start(self) -> "TcpProxy":
        self._listen()
        return self

    def forward(self) -> None:
        if self._listener is None:
            self._listen()
        self._flowing.set()

    def hang(self) -> None:
        self._flowing.clear()

    def drop_answers(self, count: int, to: bytes = b"", ending: bytes = b"") -> None:
        """Drop the next `count` answers to requests whose head starts with `to` and whose path ends with `ending`."""
        with self._lock:
            self._answers_to_drop, self._dropped_request, self._dropped_ending = count, to, ending

    def cut(self) -> None:
        self._flowing.set()  # pumps blocked by a hang wake up and find their sockets reset
        self._close_listener()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            self._reset(sock)

    def stop(self) -> None:
        self._stopped = True
        self.cut()

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, self.port))  # port 0 the first time; the same port after a cut
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed: cut or stop
            self._track(client)
            if not self._flowing.is_set():
                continue  # hang: accepted, held open, never answered
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                self._reset(client)
                continue
            upstream.settimeout(None)
            self._track(upstream)
            request_head: dict[str, bytes] = {}  # the first bytes the client sent on this connection
            for source, sink, answers in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pump, args=(source, sink, answers, request_head), daemon=True).start()

    def _take_answer_to_drop(self, request_head: bytes) -> bool:
        with self._lock:
            line = request_head.split(b"\r\n", 1)[0].rsplit(b" ", 1)[0]  # "POST /path" without " HTTP/1.1"
            ending = getattr(self, "_dropped_ending", b"")
            if self._answers_to_drop <= 0 or not request_head.startswith(self._dropped_request) or not line.endswith(ending):
                return False
            self._answers_to_drop -= 1
            self.answers_dropped += 1
            return True

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool, request_head: dict[str, bytes]) -> None:
        first = True
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            self._flowing.wait()
            if not data or self._stopped:
                break
            if first and not answers:
                request_head["bytes"] = data
            if first and answers and self._take_answer_to_drop(request_head.get("bytes", b"")):
                self._reset(sink)
                break
            first = False
            try:
                sink.sendall(data)
            except OSError:
                break
        for sock in (source, sink):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def proxy_to_test_database() -> "TcpProxy":
    """A started proxy in front of the test database's PostgreSQL."""
    return TcpProxy(int(connection.settings_dict["PORT"] or 5432)).start()


def database_url_via(proxy: "TcpProxy") -> str:
    """The test database's URL, reached through `proxy` on loopback."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD']}@127.0.0.1:{proxy.port}/{db['NAME']}"
