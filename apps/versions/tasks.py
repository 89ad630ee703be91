from datetime import timedelta

from celery import shared_task
from django.conf import settings

from .blobs import blob_collect_garbage
from .spool import spool_sweep
from .upload_sessions import upload_sessions_sweep


@shared_task
def collect_artifact_garbage() -> dict:
    """The periodic twin of `manage.py gc_artifact_blobs`: expired upload sessions, unused blobs and abandoned spool files."""
    sessions = upload_sessions_sweep()
    blobs = blob_collect_garbage(older_than=timedelta(minutes=settings.ARTIFACT_GC_GRACE_MINUTES))
    spool = spool_sweep(older_than=timedelta(minutes=settings.UPLOAD_SPOOL_GRACE_MINUTES))
    return {"upload_sessions_deleted": sessions, "blobs_deleted": len(blobs), "spool_files_removed": len(spool)}
