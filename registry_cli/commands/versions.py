"""`register`, `get` and `download`: one version at a time.

Files are streamed: each is read once per attempt, hashed while it is sent, and its SHA-256 is declared in the
metadata part that follows the files, so the server refuses the registration if a byte changed on the way.

A registration is sent with a fresh Idempotency-Key and retried with the same key when the connection fails or the
registry answers 502, 503, 504 or 409 "in progress": at most REGISTRY_RETRIES times (default 5), waiting 1, 2, 4, ...
seconds (or the Retry-After the registry asked for, at most a minute). If the first attempt was registered but its
answer lost, the retry gets that answer: never a second version.
"""

import hashlib
import json
import os
import uuid
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from ..client import CliError, Client
from ..transfer import download, local_error

CHUNK = 1024 * 1024


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
            try:
                with open(file, "rb") as handle:
                    while chunk := handle.read(CHUNK):
                        hasher.update(chunk)
                        yield chunk
            except OSError as exc:  # a local problem, not the network's: no retry
                raise local_error("read", file, exc) from exc
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


def command_get(client: Client, args) -> dict:
    model = quote(args.model, safe="")
    if args.stage:
        return client.request("GET", f"/api/v1/models/{model}/stages/{quote(args.stage, safe='')}/")
    if args.version is None:
        raise CliError("Give a version number or --stage (e.g. --stage production).")
    return client.request("GET", f"/api/v1/models/{model}/versions/{args.version}/")


def command_download(client: Client, args) -> dict:
    # Without -o the file keeps its path: 1_Pooling/config.json must not overwrite the top-level config.json.
    target = Path(args.output) if args.output else Path(*PurePosixPath(args.path).parts)
    path = "/".join(quote(part, safe="") for part in args.path.split("/"))
    api_path = f"/api/v1/models/{quote(args.model, safe='')}/versions/{args.version}/artifacts/{path}"
    partial = target.with_name(target.name + ".part")  # resumed by the next attempt or run
    digest, size = client.with_retries(lambda: download(client, api_path, partial, name=args.path))
    try:
        os.replace(partial, target)
    except OSError as exc:
        raise local_error("write", target, exc) from exc
    return {"path": str(target), "size": size, "sha256": digest}


def add_commands(commands) -> None:
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
    one_file = commands.add_parser("download", help="download one artifact, checking its SHA-256 (resumes a partial download)")
    one_file.add_argument("model")
    one_file.add_argument("version", type=int)
    one_file.add_argument("path")
    one_file.add_argument("-o", "--output", help="where to write it (default: its path in the version, below the current folder)")
    one_file.set_defaults(run=command_download)
