"""The status enums every page compares against, so templates name `Stage.PRODUCTION` instead of the string "production"."""

from apps.approvals.models import RequestStatus
from apps.events.models import DeliveryStatus
from apps.validation.models import JobStatus, QualityStatus
from apps.versions.lifecycle import Stage


def status_enums(request) -> dict:
    # Django's Choices set do_not_call_in_templates, so `{{ Stage.PRODUCTION }}` reads the member, not a call.
    return {"Stage": Stage, "RequestStatus": RequestStatus, "JobStatus": JobStatus, "QualityStatus": QualityStatus, "DeliveryStatus": DeliveryStatus}
