"""`pull --verify`: use only a manifest the registry signed, and only files matching it.

The registry signs a version's manifest when it enters production or a governed alias (a DSSE envelope, Ed25519;
see apps/signing/services.py). Verifying: the newest signature for the pointer pulled (`@alias`, `production`; any
pointer for NAME/N) must verify with a trusted key: those of a pinned key file (`--keys`: the JSON of the registry's
/.well-known/model-registry-keys.json saved earlier, or an Ed25519 public key in PEM), else those the registry publishes
there. The signed statement must name the model and version pulled, and list exactly the files the registry's manifest
lists; pull then checks every file against the signed SHA-256s. Anything else refuses, with one line saying why.
`cryptography` is imported only here, only when verifying.
"""

import base64
import hashlib
import json
from pathlib import Path
from urllib.parse import quote, unquote

from .client import CliError, Client

PAYLOAD_TYPE = "application/vnd.model-registry.signed-manifest+json"
KEYS_PATH = "/.well-known/model-registry-keys.json"


class VerificationError(CliError):
    pass


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what the signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _ed25519():
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        raise CliError("--verify needs the 'cryptography' package: pip install cryptography") from None
    return InvalidSignature, serialization, Ed25519PublicKey


def key_id_of(raw: bytes) -> str:
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def _keys_from_document(document, where: str) -> dict[str, bytes]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise VerificationError(f"{where} is not a key list ({{\"keys\": [...]}}).")
    keys = {}
    for entry in document["keys"]:
        try:
            raw = base64.b64decode(entry["public_key"], validate=True)
        except (KeyError, TypeError, ValueError):
            raise VerificationError(f"{where} has a key without a valid base64 'public_key'.") from None
        if entry.get("algorithm") != "ed25519" or len(raw) != 32:
            raise VerificationError(f"{where} has a key that is not a 32-byte Ed25519 key.")
        keys[key_id_of(raw)] = raw  # the id is the key's own digest, whatever the file says
    return keys


def trusted_keys(client: Client, pinned: str | None) -> dict[str, bytes]:
    """Key id -> 32-byte public key: from the pinned file, else from the registry's well-known URL."""
    if pinned is None:
        return _keys_from_document(client.with_retries(lambda: client.request("GET", KEYS_PATH)), f"The registry's {KEYS_PATH}")
    try:
        data = Path(pinned).read_bytes()
    except OSError as exc:
        raise CliError(f"Cannot read the key file {pinned}: {exc.strerror}.") from None
    if data.lstrip().startswith(b"-----BEGIN"):
        _, serialization, Ed25519PublicKey = _ed25519()
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError:
            raise CliError(f"{pinned} is not a PEM public key.") from None
        if not isinstance(key, Ed25519PublicKey):
            raise CliError(f"{pinned} is not an Ed25519 public key.")
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {key_id_of(raw): raw}
    try:
        return _keys_from_document(json.loads(data), pinned)
    except ValueError:
        raise CliError(f"{pinned} is neither a PEM public key nor the JSON of {KEYS_PATH}.") from None


def verify_envelope(envelope: dict, keys: dict[str, bytes]) -> dict:
    """The signed statement of a DSSE envelope whose signature verifies with one of `keys`; VerificationError else."""
    InvalidSignature, _, Ed25519PublicKey = _ed25519()
    try:
        if envelope["payloadType"] != PAYLOAD_TYPE:
            raise VerificationError(f"The signature is of a {envelope['payloadType']!r}, not of a registry manifest.")
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = [(entry["keyid"], base64.b64decode(entry["sig"], validate=True)) for entry in envelope["signatures"]]
    except (KeyError, TypeError, ValueError):
        raise VerificationError("The registry's signature envelope is malformed.") from None
    unknown = []
    for key_id, signature in signatures:
        if key_id not in keys:
            unknown.append(key_id)
            continue
        try:
            Ed25519PublicKey.from_public_bytes(keys[key_id]).verify(signature, pae(PAYLOAD_TYPE, payload))
        except InvalidSignature:
            raise VerificationError(f"The signature made with key {key_id} does not verify: the signed manifest was altered, or signed by another key.") from None
        return json.loads(payload)
    raise VerificationError(f"The manifest is signed with key {', '.join(unknown) or 'none'}, which is not among the trusted keys ({', '.join(sorted(keys)) or 'none'}).")


def _pointer(where: str) -> str | None:
    kind, _, which = where.partition("/")
    which = unquote(which)
    if kind == "aliases":
        return f"@{which}"
    if kind == "stages":
        return which
    return None  # by number: any pointer it entered


def verified_manifest(client: Client, model: str, where: str, manifest: dict, pinned: str | None) -> tuple[dict, dict]:
    """(the signed manifest to pull, what was verified) for the version `manifest` describes; VerificationError else."""
    keys = trusted_keys(client, pinned)
    pointer = _pointer(where)
    path = f"/api/v1/models/{quote(model, safe='')}/versions/{manifest['version']}/signatures/"
    if pointer:
        path += f"?pointer={quote(pointer, safe='')}"
    answer = client.with_retries(lambda: client.request("GET", path))
    results = answer.get("results") if isinstance(answer, dict) else None
    if not results:
        entered = f" as {pointer}" if pointer else ""
        raise VerificationError(
            f"{model} v{manifest['version']} has no signature{entered}; refusing it unverified (versions are signed when they enter "
            "production or a governed alias on a registry with a signing key)."
        )
    statement = verify_envelope(results[0].get("envelope") or {}, keys)
    for field, expected in (("model", manifest["model"]), ("version", manifest["version"]), ("version_id", manifest["version_id"])):
        if statement.get(field) != expected:
            raise VerificationError(f"The signed manifest is for {field} {statement.get(field)!r}, not {expected!r} as pulled.")
    if pointer and statement.get("pointer") != pointer:
        raise VerificationError(f"The signed manifest is for {statement.get('pointer')!r}, not {pointer!r} as pulled.")

    def listing(files) -> list[tuple]:
        return sorted((entry["path"], entry["size"], entry["sha256"]) for entry in files)

    try:
        if listing(statement["files"]) != listing(manifest["files"]):
            raise VerificationError("The manifest the registry serves differs from the one it signed (paths, sizes or SHA-256s); nothing was written.")
    except (KeyError, TypeError):
        raise VerificationError("The signed manifest has no valid file list.") from None
    signed = {"model": statement["model"], "version": statement["version"], "version_id": statement["version_id"], "files": statement["files"]}
    verified = {
        "key_id": statement.get("key_id"),
        "pointer": statement.get("pointer"),
        "signed_at": statement.get("signed_at"),
        "approved_by": [approval.get("approver") for approval in statement.get("approvals") or []],
    }
    return signed, verified
