"""`pull`: a whole version into a folder, fetching only what is missing, every file checked against the manifest.

    model-registry pull minilm@champion -o ./model      # by alias
    model-registry pull minilm:production -o ./model    # by stage
    model-registry pull minilm/3                        # by number, into ./minilm

One call fetches the manifest (every path, size and SHA-256); a file already in the folder with that SHA-256 is
kept; else it comes from the content cache (blobs named by SHA-256, shared by every version and model pulled on
this machine), else it is downloaded into the cache (resuming a partial download), checked, and placed in the
folder under a temporary name renamed into place. Files in the folder that the version does not list are left alone.
"""

import argparse
import os
import threading
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from ..client import CliError, Client
from ..transfer import CACHE_VARIABLE, Progress, cache_root, download, local_error, place, sha256_of
from ..verify import verified_manifest



def parse_reference(reference: str) -> tuple[str, str]:
    """`name@alias`, `name:stage` or `name/number` -> (model name, the API path below the model)."""
    for separator, kind in (("@", "aliases"), (":", "stages"), ("/", "versions")):
        name, found, which = reference.rpartition(separator)
        if found and name and which:
            if kind == "versions" and not which.isdigit():
                break
            return name, f"{kind}/{quote(which, safe='')}"
    raise CliError(f"Say which version of {reference!r} to pull: NAME@ALIAS (e.g. minilm@champion), NAME:STAGE (minilm:production) or NAME/NUMBER (minilm/3).")


def cache_dir(args) -> Path:
    return Path(args.cache_dir) if args.cache_dir else cache_root(args.environ)


def _safe_relative(path: str) -> PurePosixPath:
    relative = PurePosixPath(path)
    if not path or relative.is_absolute() or ".." in relative.parts or "\\" in path or "\0" in path:
        raise CliError(f"The registry's manifest names an unsafe path {path!r}; nothing was written for it. Report this to the registry's administrators.")
    return relative


def _manifest(client: Client, model: str, where: str) -> dict:
    path = f"/api/v1/models/{quote(model, safe='')}/{where}/manifest/"
    manifest = client.with_retries(lambda: client.request("GET", path))
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise CliError(f"The registry's answer to {path} is not a manifest; is REGISTRY_URL the registry's address?")
    return manifest


class Cache:
    """Blobs named by SHA-256: `<dir>/sha256/ab/<digest>`, partial downloads in `<dir>/partial/<digest>`."""

    def __init__(self, root: Path):
        self.root = root

    def blob(self, digest: str) -> Path:
        return self.root / "sha256" / digest[:2] / digest

    def partial(self, digest: str) -> Path:
        return self.root / "partial" / digest

    def holds(self, digest: str) -> bool:
        """A cached blob, re-checked: one damaged in the cache is deleted and downloaded again."""
        blob = self.blob(digest)
        if not blob.is_file():
            return False
        if sha256_of(blob) == digest:
            return True
        try:
            blob.unlink()
        except OSError as exc:
            raise local_error("remove the damaged cached file", blob, exc) from exc
        return False

    def store(self, partial: Path, digest: str) -> None:
        blob = self.blob(digest)
        try:
            blob.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, blob)
        except OSError as exc:
            raise local_error("write", blob, exc) from exc


def _already_there(target: Path, entry: dict) -> bool:
    try:
        same_size = target.is_file() and target.stat().st_size == entry["size"]
    except OSError as exc:
        raise local_error("read", target, exc) from exc
    return same_size and sha256_of(target) == entry["sha256"]


def _run_all(fetch, entries: list[dict], *, jobs: int) -> None:
    """`fetch` each entry, `jobs` at a time, so the requests' latency overlaps. The first failure is raised at once
    (as is Ctrl-C): the other downloads stop with the process, their partial files kept for the next run to resume."""
    if jobs == 1 or len(entries) < 2:
        for entry in entries:
            fetch(entry)
        return
    import queue  # only here: the CLI's start-up stays small

    pending, outcomes = queue.SimpleQueue(), queue.SimpleQueue()
    for entry in entries:
        pending.put(entry)

    def worker() -> None:
        while True:
            try:
                entry = pending.get_nowait()
            except queue.Empty:
                return
            try:
                fetch(entry)
            except BaseException as exc:  # handed to the main thread, which raises it
                outcomes.put(exc)
                return
            outcomes.put(None)

    for _ in range(min(jobs, len(entries))):
        threading.Thread(target=worker, daemon=True).start()
    for _ in entries:
        while True:
            try:
                outcome = outcomes.get(timeout=0.5)  # a timeout keeps the wait interruptible
                break
            except queue.Empty:
                continue
        if outcome is not None:
            raise outcome


def _jobs(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 32:
        raise argparse.ArgumentTypeError(f"--jobs takes a whole number from 1 to 32, not {value!r}")
    return int(value)


def command_pull(client: Client, args) -> dict:
    if args.keys and not args.verify:
        raise CliError("--keys names the keys --verify trusts; add --verify.")
    model, where = parse_reference(args.reference)
    output, cache = Path(args.output or model), Cache(cache_dir(args))
    manifest = _manifest(client, model, where)
    verified = None
    if args.verify:
        manifest, verified = verified_manifest(client, model, where, manifest, args.keys)
    try:
        output.mkdir(parents=True, exist_ok=True)  # a local problem shows before anything is downloaded
    except OSError as exc:
        raise local_error("write", output, exc) from exc
    files = [(entry, output.joinpath(*_safe_relative(entry["path"]).parts)) for entry in manifest["files"]]
    wanted = [(entry, target) for entry, target in files if not _already_there(target, entry)]
    missing = {entry["sha256"]: entry for entry, _ in wanted if not cache.holds(entry["sha256"])}
    progress = Progress(sum(entry["size"] for entry in missing.values()), f"{model} v{manifest['version']}")

    def fetch(entry: dict) -> None:
        artifact = "/".join(quote(part, safe="") for part in entry["path"].split("/"))
        api_path = f"/api/v1/models/{quote(model, safe='')}/versions/{manifest['version']}/artifacts/{artifact}"
        partial = cache.partial(entry["sha256"])
        client.with_retries(lambda: download(client, api_path, partial, name=entry["path"], sha256=entry["sha256"], size=entry["size"], progress=progress))
        cache.store(partial, entry["sha256"])

    try:
        _run_all(fetch, list(missing.values()), jobs=args.jobs)
    finally:
        progress.close()
    for entry, target in wanted:
        place(cache.blob(entry["sha256"]), target, link=not args.copy)
    return {
        "model": manifest["model"],
        "version": manifest["version"],
        "directory": str(output),
        "files": len(files),
        "unchanged": len(files) - len(wanted),
        "from_cache": len(wanted) - sum(1 for entry, _ in wanted if entry["sha256"] in missing),
        "downloaded": len(missing),
        "bytes_downloaded": sum(entry["size"] for entry in missing.values()),
        **({"verified": verified} if verified else {}),
    }


def add_commands(commands) -> None:
    pull = commands.add_parser(
        "pull",
        help="download a whole version into a folder: only what is missing, every SHA-256 checked",
        description=__doc__.split("\n\n")[0],
    )
    pull.add_argument("reference", help="NAME@ALIAS, NAME:STAGE or NAME/NUMBER")
    pull.add_argument("-o", "--output", help="the folder to fill (created if missing; default ./NAME); files keep their paths")
    pull.add_argument("--cache-dir", help=f"the content cache (default: ${CACHE_VARIABLE}, else $XDG_CACHE_HOME/model-registry, else ~/.cache/model-registry)")
    pull.add_argument("--copy", action="store_true", help="copy files out of the cache instead of hard-linking them")
    pull.add_argument("-j", "--jobs", type=_jobs, default=4, help="files downloaded at once (default 4)")
    pull.add_argument("--verify", action="store_true", help="use only the manifest the registry signed (production or a governed alias); refuse otherwise")
    pull.add_argument("--keys", help="with --verify: trust only these keys (a saved /.well-known/model-registry-keys.json, or a PEM public key)")
    pull.set_defaults(run=command_pull)

