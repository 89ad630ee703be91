from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.versions.blobs import blob_collect_garbage, orphan_blobs
from apps.versions.spool import spool_dir, spool_sweep
from apps.versions.upload_sessions import upload_sessions_sweep


class Command(BaseCommand):
    help = (
        "Delete expired upload sessions (with their partial uploads), stored blobs that no version uses and no registration reserves (left by registrations that failed midway), "
        "and upload spool files that no live process writes (left by workers killed mid-upload)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--grace-minutes", type=int, default=settings.ARTIFACT_GC_GRACE_MINUTES,
            help="Keep unused blobs younger than this (default: ARTIFACT_GC_GRACE_MINUTES).",
        )
        parser.add_argument(
            "--spool-grace-minutes", type=int, default=settings.UPLOAD_SPOOL_GRACE_MINUTES,
            help="Keep spool files written to more recently than this (default: UPLOAD_SPOOL_GRACE_MINUTES).",
        )
        parser.add_argument(
            "--spool-only", action="store_true",
            help="Only the spool directory: for web hosts that spool to a disk of their own (artifacts on S3).",
        )
        parser.add_argument("--dry-run", action="store_true", help="List the blobs that would be deleted; delete nothing.")

    def handle(self, *args, grace_minutes: int, spool_grace_minutes: int, spool_only: bool, dry_run: bool, **options):
        if dry_run:
            keys = [key for key, _ in orphan_blobs(older_than=timedelta(minutes=grace_minutes))]
            for key in keys:
                self.stdout.write(f"would delete {key}")
            self.stdout.write(self.style.SUCCESS(f"would delete {len(keys)} orphan blob(s)"))
            return
        if not spool_only:
            sessions = upload_sessions_sweep()
            self.stdout.write(self.style.SUCCESS(f"deleted {sessions} expired upload session(s)"))
            deleted = blob_collect_garbage(older_than=timedelta(minutes=grace_minutes))
            self.stdout.write(self.style.SUCCESS(f"deleted {len(deleted)} orphan blob(s)"))
        removed = spool_sweep(older_than=timedelta(minutes=spool_grace_minutes))
        self.stdout.write(self.style.SUCCESS(f"removed {len(removed)} abandoned upload spool file(s) from {spool_dir()}"))
