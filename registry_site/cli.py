"""`model-registry`: the command line client training pipelines use to talk to the registry's API.

Standard library only, so a training image needs nothing but this file's package. Configuration:
REGISTRY_URL (e.g. https://registry.example.com) and REGISTRY_TOKEN (a personal API token).

    model-registry create-model churn --description "Churn model"
    model-registry register churn ./export --metadata meta.json --metric auc=0.91 --param lr=0.001
    model-registry get churn --stage production
    model-registry download churn 3 weights/model.safetensors -o model.safetensors

Files are streamed: each is read once per attempt, hashed while it is sent, and its SHA-256 is declared in the
metadata part that follows the files, so the server refuses the registration if a byte changed on the way.

A registration is sent with a fresh Idempotency-Key and retried with the same key when the connection fails or the
registry answers 502, 503, 504 or 409 "in progress": at most REGISTRY_RETRIES times (default 5), waiting 1, 2, 4, ...
seconds (or the Retry-After the registry asked for, at most a minute). If the first attempt was registered but its
answer lost, the retry gets that answer: never a second version.
"""

import argparse
import hashlib
import http.client
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit

CHUNK = 1024 * 1024
RETRY_STATUSES = (502, 503, 504)
MAX_RETRY_WAIT_SECONDS = 60.0


class CliError(Exception):
    """A failure to report as one line and exit code 1."""


class RetryableError(CliError):
    """A failure that a repeat of the same request may not meet: the connection, a gateway, an overloaded registry."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Client:
    def __init__(self, base_url: str, token: str, retries: int = 0):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CliError(f"REGISTRY_URL must be an http(s) URL like https://registry.example.com, not {base_url!r}.")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.prefix = parts.path.rstrip("/")
        self.token = token
        self.retries = retries

    def _connection(self) -> http.client.HTTPConnection:
        factory = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return factory(self.host, self.port, timeout=600)

    def request_with_retries(self, method: str, path: str, *, body, headers: dict) -> dict:
        """Send a request that is safe to repeat (it changes nothing, or carries an Idempotency-Key), retrying what may pass next time.

        `body` makes the body afresh for each attempt. At most `self.retries` retries, with exponential backoff.
        """
        attempt = 0
        while True:
            try:
                return self.request(method, path, body=body(), headers=headers)
            except RetryableError as exc:
                if attempt == self.retries:
                    raise
                wait = _retry_wait(attempt, exc.retry_after)
                attempt += 1
                same_key = " with the same Idempotency-Key" if "Idempotency-Key" in headers else ""
                print(f"model-registry: {exc} Retrying in {wait:.1f} s{same_key} ({attempt} of {self.retries}).", file=sys.stderr)
                time.sleep(wait)

    def request(self, method: str, path: str, *, body=None, headers: dict | None = None, stream_to: Path | None = None):
        connection = self._connection()
        all_headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json", **(headers or {})}
        try:
            connection.request(method, self.prefix + path, body=body, headers=all_headers)
            response = connection.getresponse()
            if response.status in (301, 302, 303, 307, 308) and stream_to is not None:
                return self._download_redirect(response.getheader("Location"), stream_to)
            if response.status >= 400:
                raise _answer_error(response)
            if stream_to is not None:
                return _save(response, stream_to)
            result = json.loads(response.read() or b"null")
            if response.getheader("Idempotent-Replayed") == "true":
                print("model-registry: the registry had already done this (an earlier attempt's answer was lost); here is its answer.", file=sys.stderr)
            return result
        except (OSError, http.client.HTTPException) as exc:
            raise RetryableError(f"Could not reach the registry at {self.scheme}://{self.host}: {exc or type(exc).__name__}. Check REGISTRY_URL and the network.") from exc
        finally:
            connection.close()

    def _download_redirect(self, location: str, target: Path) -> dict:
        """Artifacts on S3 answer with a presigned URL; fetch it without sending our token."""
        parts = urlsplit(location)
        factory = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = factory(parts.hostname, parts.port, timeout=600)
        try:
            connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
            response = connection.getresponse()
            if response.status >= 400:
                raise CliError(f"The artifact store refused the download ({response.status}); try again, the link may have expired.")
            return _save(response, target)
        finally:
            connection.close()


def _answer_error(response) -> CliError:
    raw = response.read()
    try:
        error = json.loads(raw)["error"]
        message, code = error["message"], error.get("code")
    except (ValueError, KeyError, TypeError, AttributeError):
        message, code = raw[:200].decode(errors="replace") or "no details", None
    hint = {401: " Check REGISTRY_TOKEN (create one under 'API tokens').", 404: " Check the model name and version (and that you may view it)."}
    text = f"The registry answered {response.status}: {message}{hint.get(response.status, '')}"
    if response.status in RETRY_STATUSES or (response.status == 409 and code == "idempotency_key_in_use"):
        return RetryableError(text, retry_after=_seconds(response.getheader("Retry-After")))
    return CliError(text)


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: use the backoff instead


def _retry_wait(attempt: int, retry_after: float | None) -> float:
    """What the registry asked for, else 1, 2, 4, ... s with jitter so that many clients do not retry in step."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_WAIT_SECONDS)
    return min(2.0**attempt, MAX_RETRY_WAIT_SECONDS) * random.uniform(0.75, 1.0)


def _save(response, target: Path) -> dict:
    hasher, size = hashlib.sha256(), 0
    partial = target.with_name(target.name + ".part")
    with open(partial, "wb") as handle:
        while chunk := response.read(CHUNK):
            hasher.update(chunk)
            handle.write(chunk)
            size += len(chunk)
    expected = response.getheader("X-Checksum-SHA256")
    if expected and expected != hasher.hexdigest():
        partial.unlink()
        raise CliError(f"The download's SHA-256 does not match the registry's ({expected}); nothing was saved. Try again.")
    partial.replace(target)
    return {"path": str(target), "size": size, "sha256": hasher.hexdigest()}


def _files_to_upload(paths: list[str]) -> list[tuple[Path, str]]:
    """(file on disk, artifact path) pairs: files keep their name, folders their files' paths relative to the folder."""
    pairs = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            pairs.extend((f, f.relative_to(path).as_posix()) for f in sorted(path.rglob("*")) if f.is_file())
        elif path.is_file():
            pairs.append((path, path.name))
        else:
            raise CliError(f"{raw} is neither a file nor a folder.")
    if not pairs:
        raise CliError("Nothing to upload: give files or folders that contain files.")
    return pairs


class MultipartBody:
    """A multipart/form-data body streamed from disk, hashing each file as it goes; the metadata part comes last."""

    def __init__(self, files: list[tuple[Path, str]], metadata: dict):
        self.boundary = uuid.uuid4().hex
        self.files, self.metadata = files, metadata
        self.declared: list[dict] = []

    def _file_head(self, artifact_path: str) -> bytes:
        name = artifact_path.rsplit("/", 1)[-1].replace('"', "")
        return (
            f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()

    def _metadata_part(self) -> bytes:
        document = {**self.metadata, "artifacts": self.declared}
        return (
            f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n"
            f"Content-Type: application/json\r\n\r\n{json.dumps(document)}\r\n--{self.boundary}--\r\n"
        ).encode()

    def length(self) -> int:
        # The metadata part's size depends on the digests, which are fixed-width: measure with placeholders.
        placeholder = [{"path": p, "sha256": "0" * 64} for _, p in self.files]
        self.declared = placeholder
        size = sum(len(self._file_head(p)) + f.stat().st_size + 2 for f, p in self.files) + len(self._metadata_part())
        self.declared = []
        return size

    def __iter__(self):
        self.declared = []  # each attempt streams, hashes and declares the files anew
        for file, artifact_path in self.files:
            yield self._file_head(artifact_path)
            hasher = hashlib.sha256()
            with open(file, "rb") as handle:
                while chunk := handle.read(CHUNK):
                    hasher.update(chunk)
                    yield chunk
            yield b"\r\n"
            self.declared.append({"path": artifact_path, "sha256": hasher.hexdigest()})
        yield self._metadata_part()


def _key_values(items: list[str], *, numbers: bool) -> dict:
    result = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"Write {item!r} as name=value.")
        if numbers:
            try:
                result[key] = float(value)
            except ValueError as exc:
                raise CliError(f"Metric {key!r} must be a number, got {value!r}.") from exc
        else:
            try:
                result[key] = json.loads(value)
            except ValueError:
                result[key] = value
    return result


def _metadata(args) -> dict:
    document: dict = {}
    if args.metadata:
        try:
            document = json.loads(Path(args.metadata).read_text())
        except (OSError, ValueError) as exc:
            raise CliError(f"Could not read the metadata file {args.metadata}: {exc}") from exc
        if not isinstance(document, dict):
            raise CliError("The metadata file must hold a JSON object.")
    document.setdefault("metrics", {}).update(_key_values(args.metric, numbers=True))
    document.setdefault("hyperparameters", {}).update(_key_values(args.param, numbers=False))
    if args.flavor:
        document["flavor"] = args.flavor
    if args.description:
        document["description"] = args.description
    document.pop("artifacts", None)  # paths and digests come from the files themselves
    return document


def command_register(client: Client, args) -> dict:
    metadata, files = _metadata(args), _files_to_upload(args.paths)
    # The registry checks the document (parents included) before any file is sent: a refusal costs no upload.
    model = quote(args.model, safe="")
    check = json.dumps(metadata).encode()  # changes nothing on the server: safe to repeat
    client.request_with_retries("POST", f"/api/v1/models/{model}/versions/check/", body=lambda: check, headers={"Content-Type": "application/json"})
    body = MultipartBody(files, metadata)
    headers = {
        "Content-Type": f"multipart/form-data; boundary={body.boundary}",
        "Content-Length": str(body.length()),
        "Idempotency-Key": str(uuid.uuid4()),  # one per registration, the same on each retry of it
    }
    return client.request_with_retries("POST", f"/api/v1/models/{model}/versions/", body=lambda: iter(body), headers=headers)


def command_create_model(client: Client, args) -> dict:
    payload = json.dumps({"name": args.name, "description": args.description or "", "tags": args.tag or []})
    return client.request("POST", "/api/v1/models/", body=payload, headers={"Content-Type": "application/json"})


def command_get(client: Client, args) -> dict:
    model = quote(args.model, safe="")
    if args.stage:
        return client.request("GET", f"/api/v1/models/{model}/stages/{quote(args.stage, safe='')}/")
    if args.version is None:
        raise CliError("Give a version number or --stage (e.g. --stage production).")
    return client.request("GET", f"/api/v1/models/{model}/versions/{args.version}/")


def command_download(client: Client, args) -> dict:
    target = Path(args.output or Path(args.path).name)
    path = "/".join(quote(part, safe="") for part in args.path.split("/"))
    return client.request("GET", f"/api/v1/models/{quote(args.model, safe='')}/versions/{args.version}/artifacts/{path}", stream_to=target)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="model-registry", description=__doc__.split("\n\n")[0])
    commands = root.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-model", help="register a model (you become its manager)")
    create.add_argument("name")
    create.add_argument("--description")
    create.add_argument("--tag", action="append")
    create.set_defaults(run=command_create_model)
    register = commands.add_parser("register", help="register a new version from files and folders")
    register.add_argument("model")
    register.add_argument("paths", nargs="+", help="files, or folders whose files keep their relative paths")
    register.add_argument("--metadata", help="a JSON file in the API's metadata format (datasets, code, run, parents, ...)")
    register.add_argument("--metric", action="append", help="name=value, repeatable")
    register.add_argument("--param", action="append", help="hyperparameter name=value (JSON values parsed), repeatable")
    register.add_argument("--flavor")
    register.add_argument("--description")
    register.set_defaults(run=command_register)
    get = commands.add_parser("get", help="print a version's JSON, by number or by stage")
    get.add_argument("model")
    get.add_argument("version", nargs="?", type=int)
    get.add_argument("--stage", choices=["draft", "staging", "production", "archived"])
    get.set_defaults(run=command_get)
    download = commands.add_parser("download", help="download one artifact, checking its SHA-256")
    download.add_argument("model")
    download.add_argument("version", type=int)
    download.add_argument("path")
    download.add_argument("-o", "--output")
    download.set_defaults(run=command_download)
    return root


def _retries(value: str) -> int:
    if not value.isdigit() or int(value) > 20:
        raise CliError(f"REGISTRY_RETRIES must be a whole number from 0 to 20, not {value!r}.")
    return int(value)


def main(argv: list[str] | None = None, environ: dict | None = None) -> int:
    environ = os.environ if environ is None else environ
    args = parser().parse_args(argv)
    try:
        url, token = environ.get("REGISTRY_URL", ""), environ.get("REGISTRY_TOKEN", "")
        if not url or not token:
            raise CliError("Set REGISTRY_URL (e.g. https://registry.example.com) and REGISTRY_TOKEN (create one under 'API tokens').")
        result = args.run(Client(url, token, retries=_retries(environ.get("REGISTRY_RETRIES", "5"))), args)
    except CliError as exc:
        print(f"model-registry: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
