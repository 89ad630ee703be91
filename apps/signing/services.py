"""Signing a version's manifest when it enters production or a governed alias.

The signed statement is the manifest (`apps.versions.manifest.version_manifest`: model, version, version id, every
path, size and SHA-256) with the pointer it entered, the approvals that let it in, who applied the move, the time and
the key id, as canonical JSON (sorted keys, no spaces, UTF-8). It is signed in a DSSE envelope
(https://github.com/secure-systems-lab/dsse): Ed25519 over "DSSEv1 <len> <payloadType> <len> <payload>".
`apps.approvals.services.version_transition` calls `manifest_sign` in the transaction that moves the pointer.
"""

import base64
import json

from django.utils import timezone

from apps.audit import services as audit
from apps.versions.manifest import version_manifest
from apps.versions.models import ModelVersion

from . import keys
from .models import ManifestSignature

PAYLOAD_TYPE = "application/vnd.model-registry.signed-manifest+json"
STATEMENT_TYPE = "model-registry/signed-manifest/v1"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what the signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _username(user) -> str | None:
    return user.get_username() if user is not None else None


def manifest_sign(
    *, version: ModelVersion, pointer: str, actor, approvals: list[dict], transition_request: dict | None, rollback: bool
) -> ManifestSignature | None:
    """Sign `version`'s manifest as having entered `pointer` ("production" or "@alias"); None when signing is off.

    `approvals` are {"approver", "approved_at", "comment"} of the approvals that let it in (for a rollback, those of the
    request that first let it in); `transition_request` is {"id", "requested_by", "justification"} or None.
    Runs in the caller's transaction: the signature exists exactly when the pointer moved.
    """
    key = keys.signing_key()
    if key is None:
        return None
    key_id, private = key
    now = timezone.now()
    statement = {
        "_type": STATEMENT_TYPE,
        **version_manifest(version),
        "pointer": pointer,
        "approvals": approvals,
        "request": transition_request,
        "applied_by": _username(actor),
        "rollback": rollback,
        "signed_at": now.isoformat().replace("+00:00", "Z"),
        "key_id": key_id,
    }
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    signature = base64.b64encode(private.sign(pae(PAYLOAD_TYPE, payload.encode()))).decode()
    row = ManifestSignature.objects.create(version=version, pointer=pointer, key_id=key_id, payload=payload, signature=signature, signed_at=now)
    audit.record(
        actor=actor, obj=row, action="manifest.signed", registered_model_id=version.model_id,
        after={"version": version.number, "pointer": pointer, "key_id": key_id, "files": len(statement["files"])},
    )
    return row


def envelope(signature: ManifestSignature) -> dict:
    """The DSSE envelope of a stored signature, as the API serves it."""
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(signature.payload.encode()).decode(),
        "signatures": [{"keyid": signature.key_id, "sig": signature.signature}],
    }
