"""`register`, `get` and `download`: one version at a time.

`register` goes through an upload session (registry_cli/upload.py): the metadata and the files (with the SHA-256s the
CLI already knows) are declared first, so a refusal comes before any byte; only files the registry lacks are sent, in
parallel, straight to S3 or in offsets to the registry, hashed while they are sent and checked by the registry at
completion; a killed run resumes when run again; the registration carries an Idempotency-Key and is
retried with it when the connection fails or the registry answers 502, 503, 504 or 409 "in progress" (at most
REGISTRY_RETRIES times, default 5): never a second version.
"""

import json
import os
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from ..client import CliError, Client
from ..transfer import download, local_error
from ..upload import parse_rate, upload_version



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
    return upload_version(
        client, args.model, files, metadata, parallel=args.parallel, rate=parse_rate(args.limit_rate), environ=args.environ, hash_first=args.hash_first
    )


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
    register = commands.add_parser(
        "register",
        help="register a new version from files and folders",
        description="Register a new version through an upload session: the metadata is checked before any byte is sent; "
        "files are hashed while they are sent (the registry checks each SHA-256 at completion); files whose digest the CLI "
        "remembers from an earlier run (same path, size, modification time, inode) are declared with it, and not sent when "
        "you can already read those bytes on the registry. Running the same command again after a kill resumes the upload.",
    )
    register.add_argument("model")
    register.add_argument("paths", nargs="+", help="files, or folders whose files keep their relative paths")
    register.add_argument("--metadata", help="a JSON file in the API's metadata format (datasets, code, run, parents, ...)")
    register.add_argument("--metric", action="append", help="name=value, repeatable")
    register.add_argument("--param", action="append", help="hyperparameter name=value (JSON values parsed), repeatable")
    register.add_argument("--flavor")
    register.add_argument("--description")
    register.add_argument("--parallel", type=int, default=4, help="files or parts sent at once (default 4)")
    register.add_argument("--limit-rate", help="at most this many bytes per second, e.g. 20M (default: no limit)")
    register.add_argument(
        "--hash-first",
        action="store_true",
        help="hash every file before declaring it, so files the registry already holds (and you may read) are not sent; "
        "worth a full read of the files when most of them are likely there already but this machine has not hashed them "
        "(default: hash while sending, dedup only files hashed by an earlier run)",
    )
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
