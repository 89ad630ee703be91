"""Webhook HTTP delivery that cannot be turned into a way into the internal network.

The host is resolved here and every address it resolves to is vetted; the connection then goes to a vetted
address itself, never re-resolving (so a DNS answer that changes between check and connect cannot slip an
internal address in), with the original Host header and, for https, SNI and certificate verification against
the original host name. No redirect is followed, and at most the first kilobyte of an answer is read, of which
only a short printable excerpt is kept. The receiver has `settings.WEBHOOK_TIMEOUT_SECONDS` to answer, connecting
included: a receiver that drips its answer byte by byte cannot hold a worker longer than that either.

Loopback, private, link-local, multicast, reserved, unspecified and other non-public addresses, and the cloud
metadata address, are refused unless `settings.WEBHOOK_ALLOWED_INTERNAL_HOSTS` lists the host name, the address
or a network containing it. A host name on that list never unlocks the metadata address; only listing the
address itself (or a network containing it) does.
"""

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from django.conf import settings

CONNECT_TIMEOUT = 5.0  # at most; never more than settings.WEBHOOK_TIMEOUT_SECONDS
EXCERPT_CHARS = 200
READ_LIMIT = 1024
MAX_URL_LENGTH = 2000

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")
ALLOW_SETTING_HINT = "Webhooks may not reach internal addresses; an administrator can allow chosen hosts with WEBHOOK_ALLOWED_INTERNAL_HOSTS."


class RefusedDestination(Exception):
    """The URL, or an address its host resolves to, is not allowed. Retrying will not help."""


class DeliveryFailed(Exception):
    """The receiver could not be resolved, reached or read in time. Worth retrying."""


class CouldNotConnect(DeliveryFailed):
    """No connection to one address (the next one may work)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # lower-case ASCII (IDNA) name or an IP literal without brackets
    port: int
    request_path: str


@dataclass(frozen=True)
class Answer:
    status: int
    excerpt: str
    address: str


def parse_target(url: str) -> Target:
    """Check the URL's shape: http(s) only, a host, no credentials, no control characters."""
    if len(url) > MAX_URL_LENGTH:
        raise RefusedDestination(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise RefusedDestination("The URL may not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedDestination(f"This is not a valid URL ({exc}).") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise RefusedDestination("Only http:// and https:// URLs are allowed.")
    if "@" in parts.netloc:
        raise RefusedDestination("Credentials in the URL are not allowed: receivers check the signature instead.")
    host = parts.hostname or ""
    if not host:
        raise RefusedDestination("The URL needs a host name or address.")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise RefusedDestination(f"'{host}' is not a valid host name.") from exc
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        path += "?" + quote(parts.query, safe="/?%:@!$&'()*+,;=-._~")
    return Target(scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80), request_path=path)


def address_problem(ip: IPAddress) -> str | None:
    """Why an address is not a public one a webhook may reach, or None when it is."""
    if ip in METADATA_ADDRESSES:
        return "the cloud metadata address"
    if ip.version == 6:
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in NAT64_PREFIX:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and (problem := address_problem(embedded)):
            return f"{problem} (embedded in an IPv6 address)"
    for flag, problem in (
        ("is_loopback", "a loopback address"),
        ("is_unspecified", "an unspecified address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_private", "a private address"),
        ("is_reserved", "a reserved address"),
    ):
        if getattr(ip, flag):
            return problem
    if not ip.is_global:
        return "not a public address"
    return None


def _allow_list() -> tuple[set[str], list]:
    hosts, networks = set(), []
    for entry in settings.WEBHOOK_ALLOWED_INTERNAL_HOSTS:
        entry = entry.strip().lower().rstrip(".").strip("[]")
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry)
    return hosts, networks


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the host resolves to, in the resolver's order, without repeats."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DeliveryFailed(f"{host} could not be resolved ({getattr(exc, 'strerror', None) or exc}).") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canonical, sockaddr in infos:
        ip = ipaddress.ip_address(sockaddr[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise DeliveryFailed(f"{host} resolved to no address.")
    return addresses


def vet(target: Target) -> list[IPAddress]:
    """Resolve the host and refuse it if ANY of its addresses is internal and not allowed; return the addresses."""
    addresses = resolve(target.host, target.port)
    hosts, networks = _allow_list()
    host_allowed = target.host.rstrip(".") in hosts
    for ip in addresses:
        problem = address_problem(ip)
        if problem is None or any(ip in network for network in networks):
            continue
        if host_allowed and ip not in METADATA_ADDRESSES:
            continue
        where = f"{target.host} is" if target.host == str(ip) else f"{target.host} resolves to {ip},"
        raise RefusedDestination(f"{where} {problem}. {ALLOW_SETTING_HINT}")
    return addresses


def check_destination(url: str) -> list[IPAddress]:
    """What webhook creation calls: the URL's shape and every address it resolves to, checked now."""
    return vet(parse_target(url))


class PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the vetted address; the Host header still names the URL's host."""

    def __init__(self, target: Target, address: IPAddress, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = str(address)

    def _open_socket(self) -> socket.socket:
        sock = socket.create_connection((self.address, self.port), timeout=min(CONNECT_TIMEOUT, self.timeout))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def connect(self) -> None:
        self.sock = self._open_socket()
        self.sock.settimeout(self.timeout)


class PinnedHTTPSConnection(PinnedHTTPConnection):
    """TLS to the vetted address with SNI and certificate verification against the URL's host name."""

    default_port = http.client.HTTPS_PORT

    def connect(self) -> None:
        sock = self._open_socket()
        try:
            self.sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock.settimeout(self.timeout)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the TLS certificate was not accepted ({exc.verify_message})"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"timed out after {settings.WEBHOOK_TIMEOUT_SECONDS:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return (str(exc) or type(exc).__name__)[:200]


def excerpt(data: bytes) -> str:
    """The start of an answer as one line of printable text, at most EXCERPT_CHARS long."""
    text = "".join(ch if ch.isprintable() else " " for ch in data.decode("utf-8", errors="replace"))
    return " ".join(text.split())[:EXCERPT_CHARS]


def _abort(connection: http.client.HTTPConnection, expired: threading.Event) -> None:
    expired.set()
    try:
        if connection.sock is not None:
            connection.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def post(url: str, *, body: bytes, headers: dict[str, str]) -> Answer:
    """POST `body` to a vetted address of the URL's host. Redirects are answers like any other, never followed.

    Raises RefusedDestination (never retry) or DeliveryFailed (retry later).
    """
    target = parse_target(url)
    errors = []
    for address in vet(target):
        try:
            return send_to(target, address, body=body, headers=headers)
        except CouldNotConnect as exc:
            errors.append(str(exc))
    raise DeliveryFailed(f"Could not connect to {target.host}:{target.port} ({'; '.join(errors)}).")


def send_to(target: Target, address: IPAddress, *, body: bytes, headers: dict[str, str]) -> Answer:
    """POST to exactly this (already vetted) address, naming the target's host in Host, SNI and certificate checks."""
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    connection = (PinnedHTTPSConnection if target.scheme == "https" else PinnedHTTPConnection)(target, address, timeout)
    started = time.monotonic()
    try:
        connection.connect()
    except OSError as exc:
        connection.close()
        raise CouldNotConnect(f"{address}: {_describe(exc)}") from exc
    expired = threading.Event()
    watchdog = threading.Timer(max(timeout - (time.monotonic() - started), 0.01), _abort, args=[connection, expired])
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request("POST", target.request_path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read(READ_LIMIT)
    except (OSError, http.client.HTTPException) as exc:
        why = f"timed out: no complete answer within {timeout:g} s" if expired.is_set() else _describe(exc)
        raise DeliveryFailed(f"{target.host}:{target.port} ({address}): {why}") from exc
    finally:
        watchdog.cancel()
        connection.close()
    return Answer(status=response.status, excerpt=excerpt(data), address=str(address))
