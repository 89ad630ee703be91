"""The Ed25519 keys that sign manifests: the active private key (MANIFEST_SIGNING_KEY_FILE) and the public halves of
retired keys (MANIFEST_RETIRED_KEY_FILES), all published so that every signature ever made still verifies.

A key's id is derived from its public half ("ed25519:" + the first 16 hex digits of its SHA-256), so it needs no
configuration and two registries with the same key agree on it. `cryptography` is imported only when a key is used.
"""

import base64
import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.db.models import TextChoices

ALGORITHM = "ed25519"


class KeyStatus(TextChoices):
    ACTIVE = "active"  # signs new manifests
    RETIRED = "retired"  # published so that what it signed still verifies
    UNKNOWN = "unknown"  # a signature's key that is no longer published


class KeyFileError(ValueError):
    pass


@dataclass(frozen=True)
class PublishedKey:
    key_id: str
    raw: bytes  # the 32-byte public key
    status: KeyStatus

    def as_dict(self) -> dict:
        return {"key_id": self.key_id, "algorithm": ALGORITHM, "public_key": base64.b64encode(self.raw).decode(), "status": self.status.value}


def key_id_of(raw_public: bytes) -> str:
    return f"{ALGORITHM}:{hashlib.sha256(raw_public).hexdigest()[:16]}"


def _raw_public(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    public = key.public_key() if hasattr(key, "public_key") else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def read_key_file(path: str, *, private: bool):
    """The Ed25519 key in a PEM file: a private key (PKCS#8, unencrypted), or with `private=False` also a public one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    try:
        with open(path, "rb") as handle:
            data = handle.read(64 * 1024)
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        if private:
            raise KeyFileError(f"{path} is not an unencrypted PEM private key (make one with `manage.py manifest_signing_key create {path}`)") from None
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError:
            raise KeyFileError(f"{path} is not a PEM key") from None
    if not isinstance(key, (Ed25519PrivateKey, Ed25519PublicKey)):
        raise KeyFileError(f"{path} holds a {type(key).__name__.removeprefix('_')}; manifests are signed with Ed25519 keys")
    return key


@lru_cache(maxsize=8)
def _load(active_path: str, retired_paths: tuple[str, ...]):
    active = read_key_file(active_path, private=True) if active_path else None
    published: list[PublishedKey] = []
    if active is not None:
        published.append(PublishedKey(key_id_of(_raw_public(active)), _raw_public(active), KeyStatus.ACTIVE))
    for path in retired_paths:
        raw = _raw_public(read_key_file(path, private=False))
        if all(key.raw != raw for key in published):
            published.append(PublishedKey(key_id_of(raw), raw, KeyStatus.RETIRED))
    return active, tuple(published)


def _configured():
    return _load(settings.MANIFEST_SIGNING_KEY_FILE or "", tuple(settings.MANIFEST_RETIRED_KEY_FILES))


def signing_key() -> tuple[str, object] | None:
    """(key id, private key) of the active key, or None when signing is off (no MANIFEST_SIGNING_KEY_FILE)."""
    active, published = _configured()
    return (published[0].key_id, active) if active is not None else None


def published_keys() -> list[PublishedKey]:
    """Every key whose signatures verify: the active one first, then the retired ones."""
    return list(_configured()[1])


def create_key_file(path: str) -> str:
    """Write a new Ed25519 private key to `path` (PEM, PKCS#8, readable by its owner only); returns its key id."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    return key_id_of(_raw_public(key))


def public_pem(path: str) -> bytes:
    """The public half of the key in `path`, as PEM (to keep when the key is retired, or to pin in a client)."""
    from cryptography.hazmat.primitives import serialization

    key = read_key_file(path, private=False)
    public = key.public_key() if hasattr(key, "public_key") else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
