"""Reads behind the MLflow endpoints, each narrowed to what the caller may view (apps.models.permissions)."""

from django.db import connection
from django.db.models import CharField, Exists, F, OuterRef, Q, QuerySet, Value, Window
from django.db.models.functions import Cast, Coalesce, Concat, RowNumber

from apps.models.models import RegisteredModel
from apps.models.permissions import Action, get_model_for, visible_model_sql, visible_models
from apps.versions.aliases import PRODUCTION_ALIAS
from apps.versions.lifecycle import Stage
from apps.versions.models import AliasChange, Artifact, ModelAlias, ModelVersion

from .errors import invalid, not_found
from .models import RegisteredModelKeyTag, StagedArtifact, VersionKeyTag, VersionSource
from .rendering import ARTIFACTS_ROOT, VERSIONS_PREFIX
from .search import Clause, like_regex

VERSION_ORDER_COLUMNS = {"name": "model__name", "version_number": "number", "creation_timestamp": "created_at", "last_updated_timestamp": "updated_at"}
MODEL_ORDER_COLUMNS = {"name": "name", "creation_timestamp": "created_at", "last_updated_timestamp": "updated_at"}


def version_number(raw) -> int:
    try:
        number = int(str(raw))
    except ValueError:
        raise invalid(f"version must be a version number such as '3', not {raw!r}.") from None
    if number < 1:
        raise invalid(f"version must be a version number such as '3', not {raw!r}.")
    return number


def model_for(user, name, action: str = Action.VIEW) -> RegisteredModel:
    """The model by name, or RESOURCE_DOES_NOT_EXIST when it is absent or hidden; PERMISSION_DENIED for a visible one
    the caller may not act on (through get_model_for, the one permission helper)."""
    if not isinstance(name, str) or not name:
        raise invalid("Send the registered model's 'name'.")
    return get_model_for(user, name, action, queryset=RegisteredModel.objects.select_related("created_by"))


def versions_queryset() -> QuerySet[ModelVersion]:
    """Versions with what their MLflow JSON shows, in a fixed number of queries."""
    return ModelVersion.objects.select_related("model", "created_by", "training_run", "mlflow_source").prefetch_related("key_tags")


def version_for(user, name, raw_version, action: str = Action.VIEW) -> ModelVersion:
    model = model_for(user, name, action)
    number = version_number(raw_version)
    version = versions_queryset().filter(model=model, number=number).first()
    if version is None:
        raise not_found(f"Model '{model.name}' has no version {number}.")
    return version


def _string_condition(column: str, op: str, value: str) -> Q:
    if op == "=":
        return Q(**{column: value})
    if op == "!=":
        return ~Q(**{column: value})
    return Q(**{f"{column}__{'regex' if op == 'LIKE' else 'iregex'}": like_regex(value)})


def _tag_condition(tags: QuerySet, clause: Clause):
    """A tag clause; `!=` holds unless the tag has that value (a missing tag included), as the client's own
    prompt filter (`tag.`mlflow.prompt.is_prompt` != 'true'`) needs."""
    if clause.op == "!=":
        return ~Exists(tags.filter(key=clause.key, value=clause.value))
    return Exists(tags.filter(key=clause.key).filter(_string_condition("value", clause.op, clause.value)))


def _source_uri():
    prefix = f"{ARTIFACTS_ROOT}{VERSIONS_PREFIX}/"
    built = Concat(Value(prefix), F("model__name"), Value("/versions/"), Cast("number", CharField()), output_field=CharField())
    return Coalesce(F("mlflow_source__source"), built, output_field=CharField())


def versions_search(user, *, clauses: list[Clause], order: list[tuple[str, bool]], offset: int, limit: int) -> tuple[list[ModelVersion], bool]:
    """One page of the versions of models the caller may view that match every clause, and whether more follow."""
    queryset = ModelVersion.objects.filter(model__in=visible_models(user))
    for clause in clauses:
        if clause.field == "name":
            queryset = queryset.filter(_string_condition("model__name", clause.op, clause.value))
        elif clause.field == "run_id":
            values = clause.value if clause.op == "IN" else (clause.value,)
            condition = Q(training_run__run_id__in=values)
            queryset = queryset.filter(~condition if clause.op == "!=" else condition)
        elif clause.field == "source_path":
            queryset = queryset.annotate(source_uri=_source_uri()).filter(_string_condition("source_uri", clause.op, clause.value))
        elif clause.field == "version_number":
            lookup = {"=": "number", "<": "number__lt", "<=": "number__lte", ">": "number__gt", ">=": "number__gte"}
            condition = Q(number=clause.value) if clause.op == "!=" else Q(**{lookup[clause.op]: clause.value})
            queryset = queryset.filter(~condition if clause.op == "!=" else condition)
        else:
            queryset = queryset.filter(_tag_condition(VersionKeyTag.objects.filter(version=OuterRef("pk")), clause))
    columns = [("-" if descending else "") + VERSION_ORDER_COLUMNS[field] for field, descending in order] or ["model__name", "-number"]
    ids = list(queryset.order_by(*columns, "model__name", "-number").values_list("pk", flat=True)[offset:offset + limit + 1])
    more = len(ids) > limit
    ids = ids[:limit]
    found = {version.pk: version for version in versions_queryset().filter(pk__in=ids)}
    return [found[pk] for pk in ids], more


def models_search(user, *, clauses: list[Clause], order: list[tuple[str, bool]], offset: int, limit: int) -> tuple[list[RegisteredModel], bool]:
    """One page of the models the caller may view that match every clause, and whether more follow."""
    queryset = visible_models(user)
    for clause in clauses:
        if clause.field == "name":
            queryset = queryset.filter(_string_condition("name", clause.op, clause.value))
        else:
            queryset = queryset.filter(_tag_condition(RegisteredModelKeyTag.objects.filter(model=OuterRef("pk")), clause))
    columns = [("-" if descending else "") + MODEL_ORDER_COLUMNS[field] for field, descending in order] or ["name"]
    page = list(queryset.order_by(*columns, "pk").select_related("created_by").prefetch_related("key_tags")[offset:offset + limit + 1])
    return page[:limit], len(page) > limit


def latest_versions(model_ids: list[int], stages: list[str] | None = None) -> dict[int, list[ModelVersion]]:
    """Per model, the newest version in each stage (in `stages`, or all), oldest first: one query (and the tags')."""
    queryset = versions_queryset().filter(model_id__in=model_ids)
    if stages is not None:
        queryset = queryset.filter(stage__in=stages)
    rank = Window(RowNumber(), partition_by=[F("model_id"), F("stage")], order_by=F("number").desc())
    queryset = queryset.annotate(rank=rank).filter(rank=1)  # one pass over the models' versions, however many
    found: dict[int, list[ModelVersion]] = {model_id: [] for model_id in model_ids}
    for version in queryset.order_by("number"):
        found[version.model_id].append(version)
    return found


def staged_under(owner, path: str) -> list[StagedArtifact]:
    """The owner's uploaded files at `path` or below it ('' for all of them)."""
    queryset = StagedArtifact.objects.filter(owner=owner)
    if path:
        queryset = queryset.filter(Q(path=path) | Q(path__startswith=path + "/"))
    return list(queryset.order_by("path"))


def version_artifacts_under(version: ModelVersion, path: str) -> list[Artifact]:
    queryset = Artifact.objects.filter(version=version)
    if path:
        queryset = queryset.filter(Q(path=path) | Q(path__startswith=path + "/"))
    return list(queryset.order_by("path"))


def version_aliases(versions: list[ModelVersion]) -> dict:
    """version pk -> the aliases pointing at it: its free aliases, and `production` for the production version."""
    names: dict = {version.pk: [PRODUCTION_ALIAS] for version in versions if version.stage == Stage.PRODUCTION}
    for version_id, name in ModelAlias.objects.filter(version__in=[v.pk for v in versions]).order_by("name").values_list("version_id", "name"):
        names.setdefault(version_id, []).append(name)
    return {version_id: sorted(found) for version_id, found in names.items()}


def model_aliases(model_ids: list[int]) -> dict:
    """model id -> [(alias, version number)]: the built-in `production` (when a version is there) and the free aliases."""
    found: dict = {}
    for model_id, number in ModelVersion.objects.production().filter(model_id__in=model_ids).values_list("model_id", "number"):
        found.setdefault(model_id, []).append((PRODUCTION_ALIAS, number))
    for model_id, name, number in ModelAlias.objects.filter(model_id__in=model_ids).order_by("name").values_list("model_id", "name", "version__number"):
        found.setdefault(model_id, []).append((name, number))
    return found


def alias_lookup(user, name: str, alias: str) -> dict | None:
    """What the alias GET answers depends on, in one query with the caller's visibility: the version's pk, its
    update time (stage, description, tags) and the model's newest alias change (which aliases it carries). None
    when the model is hidden or absent, or the alias points nowhere."""
    visible, visible_params = visible_model_sql("m", user)
    versions, models_, aliases, changes = (
        ModelVersion._meta.db_table, RegisteredModel._meta.db_table, ModelAlias._meta.db_table, AliasChange._meta.db_table,
    )
    if alias == PRODUCTION_ALIAS:
        joined, params = f"{versions} v JOIN {models_} m ON m.id = v.model_id WHERE m.name = %s AND v.stage = %s", [name, Stage.PRODUCTION.value]
    else:
        joined, params = f"{aliases} a JOIN {versions} v ON v.id = a.version_id JOIN {models_} m ON m.id = a.model_id WHERE m.name = %s AND a.name = %s", [name, alias]
    sql = f"SELECT v.id, v.updated_at, (SELECT MAX(c.id) FROM {changes} c WHERE c.model_id = m.id) FROM {joined} AND {visible}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *visible_params])
        row = cursor.fetchone()
    return None if row is None else {"pk": str(row[0]), "updated_at": str(row[1]), "alias_change": row[2]}


def mlflow_details(version: ModelVersion) -> dict:
    """The version's MLflow `source` (None unless registered through the MLflow API), its key-value tags and the
    URIs the MLflow client loads it by."""
    return {
        "source": VersionSource.objects.filter(version=version).values_list("source", flat=True).first(),
        "tags": list(VersionKeyTag.objects.filter(version=version).order_by("key").values_list("key", "value")),
        "uri": f"models:/{version.model.name}/{version.number}",
    }
