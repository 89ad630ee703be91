from django.apps import AppConfig


class ValidationConfig(AppConfig):
    name = "apps.validation"
    label = "validation"
