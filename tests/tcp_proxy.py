"""A TCP proxy on loopback that a test puts between the app and PostgreSQL, to cut or hang the database at will.

- forward: bytes flow both ways (the normal case).
- cut: the port refuses connections and every open connection is reset, as when the server is down.
- hang: connections are accepted and then nothing is forwarded, on new and open connections alike, as when the
  server (or a machine between) stops answering while its kernel still accepts connections.
"""

import socket
import struct
import threading
from contextlib import suppress

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

    def start(self) -> "TcpProxy":
        self._listen()
        return self

    def forward(self) -> None:
        if self._listener is None:
            self._listen()
        self._flowing.set()

    def hang(self) -> None:
        self._flowing.clear()

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
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            self._flowing.wait()
            if not data or self._stopped:
                break
            try:
                sink.sendall(data)
            except OSError:
                break
        for sock in (source, sink):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
