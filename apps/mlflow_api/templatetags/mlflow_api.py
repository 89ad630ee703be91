from django import template

from apps.mlflow_api.selectors import mlflow_details

register = template.Library()


@register.simple_tag
def mlflow_version_details(version) -> dict:
    """What the MLflow client recorded on the version: its `source` and key-value tags (two queries)."""
    return mlflow_details(version)
