from django.apps import AppConfig


class VersionsConfig(AppConfig):
    name = "apps.versions"
    label = "versions"

    def ready(self) -> None:
        from pathlib import Path

        from django.conf import settings

        if settings.FILE_UPLOAD_TEMP_DIR:  # uploads spool here; it must exist before the first one
            Path(settings.FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)
