import json

from apps.versions.models import ModelVersion

from .keys import KeyStatus, published_keys
from .models import ManifestSignature


def signatures_of(version: ModelVersion) -> list[ManifestSignature]:
    """The version's signatures, newest first (one query)."""
    return list(ManifestSignature.objects.filter(version=version))


def signature_summary(signature: ManifestSignature) -> dict:
    """What the page and the API show beside the envelope: the statement, read back, and the key's status now."""
    statement = json.loads(signature.payload)
    status = {key.key_id: key.status for key in published_keys()}.get(signature.key_id, KeyStatus.UNKNOWN)
    return {
        "pointer": signature.pointer,
        "key_id": signature.key_id,
        "key_status": status,
        "signed_at": signature.signed_at,
        "approved_by": [approval["approver"] for approval in statement.get("approvals", [])],
        "statement": statement,
    }
