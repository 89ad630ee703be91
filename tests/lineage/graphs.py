"""Large lineage graphs for query-count tests, written in bulk (registering hundreds of versions one by one
through `version_register` would take minutes and test nothing more about lineage reads)."""

from apps.lineage.models import Dataset, VersionDataset, VersionParent
from apps.models.models import RegisteredModel
from apps.versions.models import ModelVersion


def bulk_versions(model: RegisteredModel, count: int, *, stage: str = "draft") -> list[ModelVersion]:
    start = model.last_version_number
    versions = ModelVersion.objects.bulk_create(
        ModelVersion(model=model, number=start + i + 1, stage=stage, code_commit=f"{i:07x}") for i in range(count)
    )
    RegisteredModel.objects.filter(pk=model.pk).update(last_version_number=start + count)
    model.refresh_from_db()
    return versions


def link(child: ModelVersion, parent: ModelVersion, relation: str = "fine_tuned_from") -> VersionParent:
    return VersionParent.objects.create(child=child, parent=parent, relation=relation)


def chain(model: RegisteredModel, length: int, *, root: ModelVersion | None = None) -> list[ModelVersion]:
    """`length` versions, each fine-tuned from the one before (the first from `root`, if given)."""
    versions = bulk_versions(model, length)
    previous = root
    links = []
    for version in versions:
        if previous is not None:
            links.append(VersionParent(child=version, parent=previous, relation="fine_tuned_from"))
        previous = version
    VersionParent.objects.bulk_create(links)
    return versions


def fan_out(model: RegisteredModel, root: ModelVersion, width: int) -> list[ModelVersion]:
    """`width` versions, each distilled from `root`."""
    versions = bulk_versions(model, width)
    VersionParent.objects.bulk_create(VersionParent(child=v, parent=root, relation="distilled_from") for v in versions)
    return versions


def trained_on(dataset: Dataset, versions: list[ModelVersion], role: str = "training") -> None:
    VersionDataset.objects.bulk_create(VersionDataset(version=v, dataset=dataset, role=role) for v in versions)
