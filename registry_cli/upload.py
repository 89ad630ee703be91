"""`register` through an upload session: the metadata first, then only the bytes the registry lacks, in parallel and
resumable, hashed while they are sent, then one registration.

1. The session is opened with the metadata and the declared files (path and size, and the SHA-256 when the CLI
   already knows it: from its digest cache, or with `--hash-first`): a refused document (bad flavor, bad metric,
   unknown parent) or path stops here, before any byte is read or sent. Files declared with a digest that the caller
   can already read on the registry are answered "stored" and not sent.
2. The other files go up `--parallel` at a time: on S3 as parts straight to the bucket (presigned URLs, each bound to
   the part's SHA-256), on local disk in offsets through the registry. A failed part or request is retried. Beside
   the sending, each file is hashed (one local read, `--parallel` files at a time), and each file is completed with
   the SHA-256 the CLI computed: the registry, which hashed what it received, refuses a mismatch.
3. The session is registered with an Idempotency-Key, retried safely.

Digests are kept in a cache (`<cache>/digests/`) keyed by the file's absolute path, size, modification time and
inode, so a file that did not change is declared with its digest next time (and deduplicated when the registry has
it) without being read again. `--hash-first` hashes every file before declaring it: worth it when most files are
probably on the registry already but not in the cache (another machine, a fresh checkout), as Hugging Face Hub and
W&B clients always do; otherwise it costs a whole read of the files before the first byte is sent.

The session id and the key are kept in a state file under the cache folder, named after the registry, the model, the
files (path, size, modification time) and the metadata. Running the same command again after a crash or a kill
resumes that session: only the parts or bytes the registry does not hold are sent.
"""

import hashlib
import http.client
import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit

from .client import CliError, Client, RetryableError, answer_error, connection_for
from .transfer import Progress, cache_root, local_error, sha256_of

CHUNK = 1024 * 1024
SLICE = 4 * CHUNK
TUS = "application/offset+octet-stream"


def parse_rate(text: str | None) -> float | None:
    """'10M', '500K', '2G' or a number of bytes per second; None or '0' for no limit."""
    if not text:
        return None
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    number, unit = (text[:-1], units[text[-1].upper()]) if text[-1].upper() in units else (text, 1)
    try:
        rate = float(number) * unit
    except ValueError:
        raise CliError(f"--limit-rate takes bytes per second like 10M or 500K, not {text!r}.") from None
    return rate or None


class Meter:
    """Bytes sent, shared by the upload threads: the progress bar, the rate limit and the summary."""

    def __init__(self, total: int, rate: float | None):
        self.progress = Progress(total, "uploading")
        self.rate, self.sent = rate, 0
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def sent_bytes(self, count: int) -> None:
        with self._lock:
            self.sent += count
            self.progress.advance(count)
            if not self.rate:
                return
            now = time.monotonic()
            self._next = max(self._next, now) + count / self.rate
            wait = self._next - now
        if wait > 0:
            time.sleep(wait)


class DigestCache:
    """SHA-256s of local files, one small file each under `<cache>/digests/`, named after the file's absolute path,
    size, modification time (ns) and inode: any change to the file names another entry. Losing it costs a re-read."""

    def __init__(self, root: Path):
        self.root = root / "digests"

    def _entry(self, path: Path, stat: os.stat_result) -> Path:
        key = json.dumps([str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_dev])
        return self.root / hashlib.sha256(key.encode()).hexdigest()[:40]

    def get(self, path: Path, stat: os.stat_result) -> str | None:
        try:
            digest = self._entry(path, stat).read_text().strip()
        except OSError:
            return None
        return digest if len(digest) == 64 else None

    def put(self, path: Path, stat: os.stat_result, digest: str) -> None:
        try:
            now = path.stat()
        except OSError:
            return
        if (now.st_size, now.st_mtime_ns, now.st_ino) != (stat.st_size, stat.st_mtime_ns, stat.st_ino):
            return  # changed while it was read: that digest may be of neither version
        entry = self._entry(path, stat)
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            partial = entry.with_name(f"{entry.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            partial.write_text(digest)
            os.replace(partial, entry)
        except OSError:
            pass  # a cache: the next run hashes again


class Upload:
    def __init__(
        self, client: Client, model: str, files: list[tuple[Path, str]], metadata: dict, *, parallel: int, rate, environ, hash_first: bool = False
    ):
        self.client, self.model, self.metadata = client, model, metadata
        self.parallel, self.rate, self.hash_first = max(1, parallel), rate, hash_first
        self.files = {artifact: disk for disk, artifact in files}
        try:
            self.stats = {artifact: disk.stat() for disk, artifact in files}
        except OSError as exc:
            raise CliError(f"Could not read the files to upload: {exc}") from exc
        identity = json.dumps(
            [f"{client.scheme}://{client.host}:{client.port}{client.prefix}", model, metadata,
             sorted((a, str(d.resolve()), s.st_size, s.st_mtime_ns) for a, d, s in ((a, self.files[a], self.stats[a]) for a in self.files))],
            sort_keys=True,
        )
        self.state_path = cache_root(environ) / "uploads" / f"{hashlib.sha256(identity.encode()).hexdigest()[:32]}.json"
        self.digests = DigestCache(cache_root(environ))
        self.base = f"/api/v1/models/{quote(model, safe='')}/uploads/"

    # -- the state file: what a later run of the same command resumes --

    def _state(self) -> dict:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}

    def _save(self, state: dict) -> None:
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.state_path.with_suffix(".tmp")
            partial.write_text(json.dumps(state))
            os.replace(partial, self.state_path)
        except OSError as exc:
            print(f"model-registry: could not keep the upload state in {self.state_path} ({exc}); a killed upload will start over.", file=sys.stderr)

    def run(self) -> dict:
        started = time.monotonic()
        state = self._state()
        known = {artifact: self.digests.get(self.files[artifact], self.stats[artifact]) for artifact in self.files}
        if self.hash_first:
            missing = [artifact for artifact in self.files if not known[artifact]]
            known.update(zip(missing, self._hashes([self.files[artifact] for artifact in missing])))
        hashed = time.monotonic()
        session = self._resumed(state.get("session"))
        if session is None:
            declared = [{"path": a, "size": self.stats[a].st_size, **({"sha256": known[a]} if known[a] else {})} for a in self.files]
            body = json.dumps({"metadata": self.metadata, "files": declared}).encode()
            session = self.client.request_with_retries("POST", self.base, body=lambda: body, headers={"Content-Type": "application/json"})
            state = {"session": session["id"], "idempotency_key": str(uuid.uuid4())}
            self._save(state)
        self.session_path = f"{self.base}{session['id']}/"
        pending = [item for item in session["files"] if item["status"] != "stored"]
        self.timings = {"sending": 0.0, "completing": 0.0}
        if session["status"] == "open" and pending:
            self._send(session, pending)
        sent = time.monotonic()
        version = self.client.request_with_retries(
            "POST", f"{self.session_path}register/", body=lambda: b"", headers={"Idempotency-Key": state["idempotency_key"], "Content-Type": "application/json"}
        )
        stored = len(session["files"]) - len(pending)
        print(
            f"model-registry: sent {self.meter.sent if pending else 0} bytes for {len(pending)} file(s); {stored} already on the registry"
            f" (hashing first {hashed - started:.1f} s, sending {self.timings['sending']:.1f} s, completing {self.timings['completing']:.1f} s,"
            f" registering {time.monotonic() - sent:.1f} s).",
            file=sys.stderr,
        )
        try:
            self.state_path.unlink()
        except OSError:
            pass
        return version

    def _hash(self, artifact: str) -> str:
        digest = sha256_of(self.files[artifact])
        self.digests.put(self.files[artifact], self.stats[artifact], digest)
        return digest

    def _hashes(self, paths: list[Path]) -> list[str]:
        """SHA-256 of each path, `--parallel` files at a time (hashlib lets go of the GIL); remembered in the cache."""
        by_path = {disk: artifact for artifact, disk in self.files.items()}
        if len(paths) < 2:
            return [self._hash(by_path[path]) for path in paths]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=self.parallel) as pool:
            return list(pool.map(lambda path: self._hash(by_path[path]), paths))

    def _resumed(self, session_id: str | None) -> dict | None:
        if not session_id:
            return None
        try:
            session = self.client.request_with_retries("GET", f"{self.base}{session_id}/", body=lambda: None, headers={})
        except CliError as exc:
            if "answered 404" in str(exc):
                return None  # expired or removed: start a new one
            raise
        print(f"model-registry: resuming upload session {session_id}.", file=sys.stderr)
        return session

    # -- sending --

    def _send(self, session: dict, pending: list[dict]) -> None:
        tasks = []
        if session["storage"] == "s3":
            for item in pending:
                have = {part["number"] for part in item.get("parts", ())}
                count = max(1, -(-item["size"] // item["part_size"]))
                tasks += [(self._send_part, item, number) for number in range(1, count + 1) if number not in have]
            remaining = sum(min(item["part_size"], item["size"] - (number - 1) * item["part_size"]) for _, item, number in tasks)
        else:
            tasks = [(self._send_local, item, None) for item in pending]
            remaining = sum(item["size"] - item.get("offset", 0) for item in pending)
        from concurrent.futures import ThreadPoolExecutor  # here, not at start-up: `get` and `pull` need no threads

        self.meter = Meter(remaining, self.rate)
        started = time.monotonic()
        # Files declared without a digest are hashed beside the sending (a local read, mostly from the page cache):
        # their completion then tells the registry what the CLI read, and the registry refuses other bytes. Each file
        # is completed as soon as its own bytes are sent (on S3 the store's copy of one file overlaps the sending of
        # the next).
        with (
            ThreadPoolExecutor(max_workers=self.parallel) as hashing,
            ThreadPoolExecutor(max_workers=self.parallel) as pool,
            ThreadPoolExecutor(max_workers=self.parallel) as finishing,
        ):
            digests = {item["index"]: hashing.submit(self._hash, item["path"]) for item in pending if not item.get("sha256")}
            sends = {item["index"]: [] for item in pending}
            for function, item, number in tasks:
                sends[item["index"]].append(pool.submit(function, item, number))
            completions = [finishing.submit(self._finish, item, sends[item["index"]], digests.get(item["index"])) for item in pending]
            for future in [future for futures in sends.values() for future in futures]:
                future.result()
            self.meter.progress.close()
            sent = time.monotonic()
            for future in completions:
                future.result()
        self.timings = {"sending": sent - started, "completing": time.monotonic() - sent}

    def _finish(self, item: dict, sends: list, digest) -> None:
        """Once the file's bytes are sent, complete it: with the digest computed beside the sending, if it was declared
        without one (also when its last bytes stored it, on local disk), else only if no PATCH stored it."""
        for future in sends:
            future.result()
        if digest is not None or item["status"] != "stored":
            self._complete(item, digest.result() if digest is not None else None)

    def _complete(self, item: dict, digest: str | None) -> None:
        body = json.dumps({"sha256": digest}).encode() if digest else b""
        try:
            self.client.request_with_retries(
                "POST", f"{self.session_path}files/{item['index']}/complete/", body=lambda: body, headers={"Content-Type": "application/json"}
            )
        except CliError as exc:
            if "checksum_mismatch" in str(exc) or "SHA-256" in str(exc):
                raise CliError(f"{exc} Did {self.files[item['path']]} change during the upload? Run the command again.") from exc
            raise

    def _send_part(self, item: dict, number: int) -> None:
        start = (number - 1) * item["part_size"]
        length = min(item["part_size"], item["size"] - start)
        disk = self.files[item["path"]]
        try:
            with open(disk, "rb") as handle:
                handle.seek(start)
                data = handle.read(length)
        except OSError as exc:
            raise local_error("read", disk, exc) from exc
        if len(data) != length:
            raise CliError(f"{disk} changed while it was being uploaded (it is shorter now); run the command again.")
        request = json.dumps({"parts": [{"number": number, "sha256": hashlib.sha256(data).hexdigest()}]}).encode()
        parts_path = f"{self.session_path}files/{item['index']}/parts/"

        def attempt():
            part = self.client.request("POST", parts_path, body=request, headers={"Content-Type": "application/json"})["parts"][0]
            self._put(part, data)

        self.client.with_retries(attempt)

    def _put(self, part: dict, data: bytes) -> None:
        url = urlsplit(part["url"])
        connection = connection_for(url)
        try:
            connection.putrequest("PUT", f"{url.path}?{url.query}", skip_accept_encoding=True)
            for name, value in {**part["headers"], "Content-Length": str(len(data))}.items():
                connection.putheader(name, value)
            connection.endheaders()
            view = memoryview(data)
            for start in range(0, len(data), CHUNK):
                connection.send(view[start : start + CHUNK])
                self.meter.sent_bytes(min(CHUNK, len(data) - start))
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise RetryableError(f"Sending a part to the artifact store failed: {exc or type(exc).__name__}.") from exc
        finally:
            connection.close()
        if response.status >= 500:
            raise RetryableError(f"The artifact store answered {response.status}.")
        if response.status >= 400:
            raise CliError(f"The artifact store refused a part ({response.status}): {body[:200].decode(errors='replace')}")

    def _send_local(self, item: dict, _number) -> None:
        path = f"{self.session_path}files/{item['index']}"
        offset = item.get("offset", 0)

        def attempt():
            nonlocal offset
            try:
                offset = self._patch(path, item, offset)
            except RetryableError:
                offset = self._offset(path)  # what arrived before the connection broke
                raise

        while offset < item["size"]:
            self.client.with_retries(attempt)

    def _offset(self, path: str) -> int:
        connection = connection_for(self.client.parts)
        try:
            connection.request("HEAD", self.client.prefix + path, headers=self.client._headers(None))
            response = connection.getresponse()
            response.read()
            return int(response.getheader("Upload-Offset", "0"))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise self.client.unreachable(exc) from exc
        finally:
            connection.close()

    def _patch(self, path: str, item: dict, offset: int) -> int:
        disk, length = self.files[item["path"]], item["size"] - offset
        connection = connection_for(self.client.parts)
        try:
            connection.putrequest("PATCH", self.client.prefix + path, skip_accept_encoding=True)
            for name, value in self.client._headers({"Content-Type": TUS, "Upload-Offset": str(offset), "Content-Length": str(length)}).items():
                connection.putheader(name, value)
            connection.endheaders()
            try:
                handle = open(disk, "rb")
            except OSError as exc:
                raise local_error("read", disk, exc) from exc
            with handle:
                position, left = offset, length
                while left:  # the kernel copies file to socket (sendfile), in slices for the progress bar and rate limit
                    count = connection.sock.sendfile(handle, position, min(SLICE, left))
                    if not count:
                        raise CliError(f"{disk} changed while it was being uploaded (it is shorter now); run the command again.")
                    position, left = position + count, left - count
                    self.meter.sent_bytes(count)
            response = connection.getresponse()
            if response.status == 409 and response.getheader("Upload-Offset") is not None:
                error = answer_error(response)
                if "checksum" in str(error).lower() or "SHA-256" in str(error):
                    raise CliError(f"{error} Did {disk} change during the upload?")
                return int(response.getheader("Upload-Offset"))
            if response.status >= 400:
                raise answer_error(response)
            response.read()
            if response.getheader("Upload-Status") == "stored":
                item["status"] = "stored"  # the last bytes completed it: no complete call needed
            return int(response.getheader("Upload-Offset"))
        except (OSError, http.client.HTTPException) as exc:
            raise self.client.unreachable(exc) from exc
        finally:
            connection.close()


def upload_version(
    client: Client, model: str, files: list[tuple[Path, str]], metadata: dict, *, parallel: int, rate, environ, hash_first: bool = False
) -> dict:
    return Upload(client, model, files, metadata, parallel=parallel, rate=rate, environ=environ, hash_first=hash_first).run()
