from datetime import timedelta

from django.core.management.base import BaseCommand

from apps.versions.blobs import artifact_storage, orphan_blobs


class Command(BaseCommand):
    help = "Delete stored blobs that no artifact references (left by registrations that failed midway)."

    def add_arguments(self, parser):
        parser.add_argument("--grace-minutes", type=int, default=60, help="Keep orphans younger than this: their registration may still be committing.")
        parser.add_argument("--dry-run", action="store_true", help="List what would be deleted.")

    def handle(self, *args, grace_minutes: int, dry_run: bool, **options):
        storage = artifact_storage()
        count = 0
        for key in list(orphan_blobs(older_than=timedelta(minutes=grace_minutes))):
            count += 1
            if dry_run:
                self.stdout.write(f"would delete {key}")
            else:
                storage.delete(key)
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(self.style.SUCCESS(f"{verb} {count} orphan blob(s)"))
