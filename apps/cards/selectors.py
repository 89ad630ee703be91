"""Reads of model cards: a model's or version's card, the evaluation results a card shows, and a README.md in a
version's artifacts offered as its card."""

from django.db.models import FloatField, Value

from apps.lineage.models import DatasetRole, VersionDataset
from apps.models.models import RegisteredModel
from apps.versions.blobs import blob_chunks
from apps.versions.models import Artifact, Metric, ModelVersion

from .frontmatter import FrontMatterError, split_front_matter
from .models import ModelCard

README_MAX_BYTES = 256 * 1024
README_NAMES = ("README.md", "readme.md", "Readme.md", "README.markdown")


def card_for(model: RegisteredModel, version: ModelVersion | None = None) -> ModelCard | None:
    """The model's own card (`version` None) or the version's, or None."""
    return ModelCard.objects.filter(model=model, version=version).select_related("updated_by").first()


def evaluation_results(version: ModelVersion | None) -> list[dict]:
    """A card's evaluation-results table: the version's metrics, each with the datasets it was evaluated on. From the
    version's prefetched metrics and datasets when it has them (the version page's), else in one query."""
    if version is None:
        return []
    if _prefetched(version, "metrics", "dataset_links"):
        metrics = [(metric.name, metric.value) for metric in version.metrics.all()]
        datasets = [link.dataset.name for link in version.dataset_links.all() if link.role == DatasetRole.EVALUATION]
    else:
        rows = (
            Metric.objects.filter(version=version)
            .order_by()
            .values_list("name", "value", Value(False))
            .union(
                VersionDataset.objects.filter(version=version, role=DatasetRole.EVALUATION)
                .order_by()
                .values_list("dataset__name", Value(None, output_field=FloatField()), Value(True)),
                all=True,
            )
            .order_by("name")
        )
        rows = list(rows)
        metrics = [(name, value) for name, value, is_dataset in rows if not is_dataset]
        datasets = [name for name, _, is_dataset in rows if is_dataset]
    return [{"metric": name, "value": value, "datasets": datasets} for name, value in metrics]


def _prefetched(version: ModelVersion, *relations: str) -> bool:
    cache = getattr(version, "_prefetched_objects_cache", {})
    return all(relation in cache for relation in relations)


def readme_artifact(version: ModelVersion) -> Artifact | None:
    """The README.md at the top of a version's files, if any (from its prefetched files when it has them)."""
    if _prefetched(version, "artifacts"):
        return min((artifact for artifact in version.artifacts.all() if artifact.path in README_NAMES), key=lambda a: a.path, default=None)
    return Artifact.objects.filter(version=version, path__in=README_NAMES).order_by("path").first()


def readme_card(artifact: Artifact) -> dict:
    """A README.md as card fields: its front matter's fields, its Markdown as the body (read through the storage, at
    most README_MAX_BYTES), `notes` on keys left out and an `error` when the front matter cannot be read."""
    data = b"".join(blob_chunks(artifact.sha256, length=min(artifact.size, README_MAX_BYTES)))
    text = data.decode("utf-8", errors="replace")
    try:
        fields, body, notes = split_front_matter(text)
    except FrontMatterError as exc:
        return {"fields": {"body": text}, "notes": [], "error": f"{artifact.path}: {exc}; its text is used as the body."}
    truncated = [f"only the first {README_MAX_BYTES // 1024} KiB of {artifact.path} is used"] if artifact.size > README_MAX_BYTES else []
    return {"fields": {**fields, "body": body}, "notes": notes, "error": "", "truncated": truncated}
