"""The dashboard's sortable tables: the models list and a model's versions table.

Sorted by any column or by any metric, in the database (a metric is a subquery annotation, rows without it last), and
paged there; the metric columns shown are the user's choice, read for a whole page in one query.
A model's metric is its production version's.
"""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import Case, Count, F, IntegerField, OuterRef, Prefetch, QuerySet, Subquery, Value, When

from apps.models.models import RegisteredModel
from apps.validation.models import ValidationJob
from apps.versions.document import METRIC_NAME
from apps.versions.lifecycle import Stage
from apps.versions.models import Metric, ModelVersion

METRIC_PREFIX = "metric."
MAX_METRIC_COLUMNS = 8
SESSION_KEY = "metric_columns"  # {table: [metric names]}: the columns each table showed last, for this login
TABLES_REMEMBERED = 50
METRIC_CHOICES_SHOWN = 50
DEFAULT_VERSION_METRICS = 4
STAGE_ORDER = (Stage.DRAFT, Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED)


@dataclass(frozen=True)
class Column:
    """A sortable column: the expression it sorts by, and whether a first click sorts it descending (numbers, dates)."""

    expression: object
    descending_first: bool = False


@dataclass(frozen=True)
class Sort:
    key: str  # a column's key or metric.<name>
    descending: bool

    @property
    def param(self) -> str:
        return ("-" if self.descending else "") + self.key

    @property
    def metric(self) -> str | None:
        return self.key[len(METRIC_PREFIX):] if self.key.startswith(METRIC_PREFIX) else None


def _stage_rank():
    return Case(*(When(stage=stage, then=Value(rank)) for rank, stage in enumerate(STAGE_ORDER)), output_field=IntegerField())


VERSION_COLUMNS = {
    "number": Column(F("number"), descending_first=True),
    "stage": Column(_stage_rank()),
    "validation": Column(F("validation_status")),
    "created": Column(F("created_at"), descending_first=True),
    "by": Column(F(f"created_by__{get_user_model().USERNAME_FIELD}")),
}
VERSION_DEFAULT_SORT = Sort("number", descending=True)
MODEL_COLUMNS = {
    "name": Column(F("name")),
    "team": Column(F("team__name")),
    "production": Column(F("production_number"), descending_first=True),
    "latest": Column(F("last_version_number"), descending_first=True),
    "updated": Column(F("updated_at"), descending_first=True),
}
MODEL_DEFAULT_SORT = Sort("name", descending=False)


def parse_sort(value: str, columns: dict[str, Column], default: Sort, *, metrics: bool = True) -> tuple[Sort, str]:
    """`?sort=` as a Sort (`-` in front: descending), and an error message ("" when the value was good or absent).
    A bad value sorts by `default`; `metric.<name>` is accepted only for tables that sort by metrics."""
    value = (value or "").strip()
    if not value:
        return default, ""
    descending, key = value.startswith("-"), value.removeprefix("-")
    if key in columns or (metrics and key.startswith(METRIC_PREFIX) and METRIC_NAME.match(key[len(METRIC_PREFIX):])):
        return Sort(key, descending), ""
    names = ", ".join(columns) + (" or metric.<name>" if metrics else "")
    return default, f"Cannot sort by {value!r}: use {names}, with '-' in front for descending."


def parse_metric_columns(values: list[str]) -> tuple[list[str] | None, str]:
    """`?metrics=accuracy,f1` (or the parameter repeated, as checkboxes send it) as metric names; None when absent.
    An empty value means no metric columns. Returns an error message for names that cannot be metrics."""
    if not values:
        return None, ""
    names = list(dict.fromkeys(name.strip() for value in values for name in value.split(",") if name.strip()))
    bad = [name for name in names if not METRIC_NAME.match(name)]
    names = [name for name in names if METRIC_NAME.match(name)]
    error = f"{', '.join(repr(name[:40]) for name in bad)} cannot be a metric name; left out." if bad else ""
    if len(names) > MAX_METRIC_COLUMNS:
        error = (error + " " if error else "") + f"At most {MAX_METRIC_COLUMNS} metric columns; the first {MAX_METRIC_COLUMNS} are shown."
    return names[:MAX_METRIC_COLUMNS], error


def metric_columns(session, table: str, values: list[str], default: list[str]) -> tuple[list[str], str]:
    """The metric columns a table shows: those the URL names (then remembered in the session for `table`), else the
    last ones remembered for `table`, else `default`; and an error message about the URL's value."""
    chosen, error = parse_metric_columns(values)
    remembered = dict(session.get(SESSION_KEY) or {})
    if chosen is None:
        kept = remembered.get(table)
        return (list(kept) if isinstance(kept, list) else default), error
    if remembered.get(table) != chosen:
        remembered.pop(table, None)
        remembered = dict(list(remembered.items())[-(TABLES_REMEMBERED - 1):]) | {table: chosen}
        session[SESSION_KEY] = remembered
    return chosen, error


def header_sort(sort: Sort, key: str, columns: dict[str, Column]) -> str:
    """The `sort` value a column header links to: the other direction when it is the current sort, else its first."""
    if sort.key == key:
        return ("" if sort.descending else "-") + key
    first_descending = columns[key].descending_first if key in columns else True  # metrics: highest first
    return ("-" if first_descending else "") + key


def order_table(queryset: QuerySet, sort: Sort, columns: dict[str, Column], metric_values=None, tie: str = "pk") -> QuerySet:
    """`queryset` ordered by `sort` (nulls last either way), then by `tie`; `metric_values(name)` gives a metric's subquery."""
    if sort.metric is not None:
        queryset = queryset.annotate(sort_metric=Subquery(metric_values(sort.metric)))
        expression = F("sort_metric")
    else:
        expression = columns[sort.key].expression
    ordered = expression.desc(nulls_last=True) if sort.descending else expression.asc(nulls_last=True)
    return queryset.order_by(ordered, tie)


def _shown_metrics(names: list[str]) -> QuerySet[Metric]:
    return Metric.objects.filter(name__in=names) if names else Metric.objects.none()


METRIC_NAMES_FROM_VERSIONS = 1000


def version_metric_names(model: RegisteredModel) -> list[str]:
    """The metric names a model's newest METRIC_NAMES_FROM_VERSIONS versions report, the most common first (one
    query), for the column chooser. Bounded so the model page costs the same with 100,000 versions as with 100
    (counting every version's metrics took seconds there)."""
    newest = ModelVersion.objects.filter(model=model).order_by("-number").values("pk")[:METRIC_NAMES_FROM_VERSIONS]
    rows = Metric.objects.filter(version__in=newest).values("name").annotate(used=Count("id")).order_by("-used", "name")
    return [row["name"] for row in rows[:METRIC_CHOICES_SHOWN]]


def versions_table(model: RegisteredModel, *, stage: str = "", sort: Sort = VERSION_DEFAULT_SORT, metrics: list[str] = ()) -> QuerySet[ModelVersion]:
    """A model's versions with their newest validation verdicts and the chosen metrics (`version.shown_metrics`),
    sorted by `sort` in the database."""
    latest_job = ValidationJob.objects.filter(version=OuterRef("pk")).order_by("-created_at", "-id")
    queryset = (
        ModelVersion.objects.filter(model=model)
        .select_related("created_by")
        .prefetch_related(Prefetch("metrics", queryset=_shown_metrics(list(metrics)), to_attr="shown_metrics"))
        .annotate(validation_status=Subquery(latest_job.values("status")[:1]), quality_status=Subquery(latest_job.values("quality_status")[:1]))
    )
    if stage:
        queryset = queryset.filter(stage=stage)

    def metric_values(name: str):
        return Metric.objects.filter(version=OuterRef("pk"), name=name).values("value")[:1]

    return order_table(queryset, sort, VERSION_COLUMNS, metric_values, "-number")


def production_metric_names(models: QuerySet[RegisteredModel]) -> list[str]:
    """The metric names the production versions of `models` report, the most common first (one query)."""
    rows = (
        Metric.objects.filter(version__stage=Stage.PRODUCTION, version__model__in=models.values("pk"))
        .values("name").annotate(used=Count("id")).order_by("-used", "name")
    )
    return [row["name"] for row in rows[:METRIC_CHOICES_SHOWN]]


def models_table(queryset: QuerySet[RegisteredModel], *, sort: Sort = MODEL_DEFAULT_SORT) -> QuerySet[RegisteredModel]:
    """Models (annotated with `production_number`) sorted by `sort`; a metric sorts by the production version's value."""

    def metric_values(name: str):
        return Metric.objects.filter(version__model=OuterRef("pk"), version__stage=Stage.PRODUCTION, name=name).values("value")[:1]

    return order_table(queryset, sort, MODEL_COLUMNS, metric_values, "name")


def metric_cells(rows: list, names: list[str], values_by_row) -> None:
    """Give each row `metric_cells`, its value (or None) per chosen metric name, from `values_by_row(row)` ({name: value})."""
    for row in rows:
        values = values_by_row(row)
        row.metric_cells = [values.get(name) for name in names]


def production_metrics(models: list[RegisteredModel], names: list[str]) -> dict[int, dict[str, float]]:
    """{model id: {metric name: value}} of the production versions of one page of models (one query, none if unneeded)."""
    found: dict[int, dict[str, float]] = {model.pk: {} for model in models}
    if not models or not names:
        return found
    rows = Metric.objects.filter(version__stage=Stage.PRODUCTION, version__model_id__in=list(found), name__in=names)
    for model_id, name, value in rows.values_list("version__model_id", "name", "value"):
        found[model_id][name] = value
    return found
