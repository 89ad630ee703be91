from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q

from apps.accounts.models import TokenScope
from apps.audit import services as audit
from apps.models.permissions import require_scope, visible_models
from apps.versions.document import DatasetSerializer
from apps.versions.models import ModelVersion

from .models import Dataset, TrainingRun, VersionDataset, VersionParent
from .selectors import visible_datasets

TEAM_ERROR = "Unknown team, or you are not a member of it."


def _dataset_checked(**values) -> tuple[dict, dict[str, list[str]]]:
    """The dataset's fields checked by the version document's dataset rules: (trimmed fields, {}) or ({}, problems per field)."""
    checked = DatasetSerializer(data=values)
    if not checked.is_valid():
        return {}, {key: [str(message) for message in messages] for key, messages in checked.errors.items()}
    return checked.validated_data["dataset"], {}


def dataset_get_or_create(
    *, name: str, uri: str, digest: str = "", description: str = "", size_bytes: int | None = None, actor=None, owner=None, team: Group | None = None
) -> Dataset:
    """Datasets are deduplicated by (URI, digest); the URI is a record and is never fetched.

    `owner` and `team` only for a dataset registered on its own: one created with a version has neither, so it is
    seen exactly through the versions that use it.
    """
    try:
        with transaction.atomic():
            dataset, _ = Dataset.objects.get_or_create(
                uri=uri, digest=digest,
                defaults={
                    "name": name, "description": description, "size_bytes": size_bytes,
                    "created_by": actor if getattr(actor, "pk", None) else None, "owner": owner, "team": team,
                },
            )
    except IntegrityError:
        dataset = Dataset.objects.get(uri=uri, digest=digest)
    return dataset


@transaction.atomic
def dataset_register(
    *, actor, name: str, uri: str, digest: str = "", size_bytes: int | None = None, description: str = "", team: Group | None = None
) -> tuple[Dataset, bool]:
    """Register a dataset on its own (any logged-in user may), owned by `actor` and seen by `team`. Returns (dataset, created).

    A dataset with the same URI and digest is the same dataset: when the actor may see it, it is returned as it is,
    not changed; when they may not, the registration is refused without telling them anything about it.
    """
    if actor is None or not actor.is_authenticated or not actor.is_active:
        raise PermissionDenied("Log in to register datasets.")
    require_scope(actor, TokenScope.REGISTER, "registering datasets")
    fields, errors = _dataset_checked(name=name, uri=uri, digest=digest, description=description, size_bytes=size_bytes)
    if team is not None and not actor.is_superuser and not actor.groups.filter(pk=team.pk).exists():
        errors["team"] = [TEAM_ERROR]
    if errors:
        raise ValidationError(errors)
    name, uri, digest, description, size_bytes = (fields[key] for key in ("name", "uri", "digest", "description", "size_bytes"))
    existing = Dataset.objects.filter(uri=uri, digest=digest).first()
    if existing is not None:
        if not visible_datasets(actor).filter(pk=existing.pk).exists():
            raise ValidationError({"uri": ["A dataset with this URI and digest is already registered by someone whose records you may not see."]})
        return existing, False
    dataset = dataset_get_or_create(
        name=name, uri=uri, digest=digest, description=description, size_bytes=size_bytes, actor=actor, owner=actor, team=team
    )
    audit.record(
        actor=actor, obj=dataset, action="dataset.registered",
        after={
            "name": dataset.name, "uri": dataset.uri, "digest": dataset.digest, "size_bytes": dataset.size_bytes,
            "owner": actor.get_username(), "team": team.name if team else None,
        },
    )
    return dataset, True


def datasets_attach(*, version, datasets: list[dict], actor=None) -> None:
    links = []
    seen = set()
    for item in datasets:
        dataset = dataset_get_or_create(
            name=item["name"], uri=item["uri"], digest=item.get("digest", ""), description=item.get("description", ""),
            size_bytes=item.get("size_bytes"), actor=actor,
        )
        key = (dataset.pk, item["role"])
        if key not in seen:
            seen.add(key)
            links.append(VersionDataset(version=version, dataset=dataset, role=item["role"]))
    VersionDataset.objects.bulk_create(links)


def parents_resolve(*, actor, model, declared: list[dict]) -> list[tuple[object, str]]:
    """Find the declared parent versions (one query), or raise a ValidationError naming each bad one.

    A parent must exist and its model must be visible to `actor`; both failures read "unknown or not visible"
    so the answer does not reveal whether a model the actor cannot see exists. Parents exist before the child
    is created, so a version can never be its own ancestor (no cycles).
    """
    if not declared:
        return []
    wanted = Q()
    for item in declared:
        wanted |= Q(model__name=item["model"], number=item["version"])
    found = {
        (version.model.name, version.number): version
        for version in ModelVersion.objects.filter(wanted, model__in=visible_models(actor)).select_related("model")
    }
    if len(found) == len(declared):
        return [(found[(item["model"], item["version"])], item["relation"]) for item in declared]
    next_number = type(model).objects.filter(pk=model.pk).values_list("last_version_number", flat=True).get() + 1
    errors = []
    for index, item in enumerate(declared):
        label, key = f"Parent #{index + 1}", (item["model"], item["version"])
        if key in found:
            continue
        if key == (model.name, next_number):
            errors.append(f"{label}: {key[0]} v{key[1]} is the version being registered; a version cannot be its own parent.")
        else:
            errors.append(f"{label}: {key[0]} v{key[1]} is unknown or not visible to you.")
    raise ValidationError({"parents": errors})


def parents_attach(*, version, parents: list[tuple[object, str]]) -> None:
    """Link a new version to its already resolved parents (see `parents_resolve`)."""
    VersionParent.objects.bulk_create(VersionParent(child=version, parent=parent, relation=relation) for parent, relation in parents)


def training_run_attach(*, version, run: dict) -> None:
    if run and (run.get("id") or run.get("url")):
        TrainingRun.objects.create(version=version, run_id=run.get("id", ""), url=run.get("url", ""))
