"""Lineage reads: the graph around a version and the impact of a dataset or a version, in a constant number of queries.

Traversal runs in the database, as one recursive CTE (`WITH RECURSIVE`, on PostgreSQL and SQLite alike) over the
whole parent graph, whatever its depth. Permissions are applied to the result: a version whose model the user may
not view is dropped, and its model name, number and stage never leave the database (the SQL returns NULL for
them). Paths through such a version are kept, so a visible version derived from a dataset through a hidden one is
still reported as affected: in an impact list as derived "via a version you cannot view" (never which, how many or
how), a run of hidden versions counting as one level; in a graph as one dashed "derived" edge.
"""

from collections import defaultdict, deque
from dataclasses import dataclass, field
from uuid import UUID

from django.db import connection
from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.urls import reverse

from apps.versions.lifecycle import Stage
from apps.models.models import RegisteredModel
from apps.models.permissions import visible_model_sql, visible_models
from apps.versions.document import document_of
from apps.versions.models import ModelVersion

from .models import Dataset, ParentRelation, VersionDataset, VersionParent

STAGE_RANK = {Stage.PRODUCTION: 0, Stage.STAGING: 1, Stage.DRAFT: 2, Stage.ARCHIVED: 3}
MAX_GRAPH_VERSIONS = 1500  # past this many versions a graph keeps the nearest ones (the table and impact lists stay complete)
EDGE_LABELS = {
    ParentRelation.FINE_TUNED_FROM: "fine-tuned into",
    ParentRelation.DISTILLED_FROM: "distilled into",
    ParentRelation.ENSEMBLED_FROM: "ensembled into",
}


def _pk_param(pk) -> object:
    """A version id as the database driver wants it in hand-written SQL (a uuid on PostgreSQL, hex text on SQLite)."""
    return ModelVersion._meta.pk.get_db_prep_value(pk, connection)


def _pk(raw) -> UUID:
    return ModelVersion._meta.pk.to_python(raw)


# -- datasets -------------------------------------------------------------------------------------------------


def visible_datasets(user, queryset: QuerySet[Dataset] | None = None) -> QuerySet[Dataset]:
    """The datasets the user may see: through a version they may view that uses it, or, for a dataset registered
    on its own, as its owner or a member of its team. Conditions in the same query (EXISTS), no joins that repeat rows.

    A dataset first registered with versions of models the user may not view does not exist for them (404).
    """
    queryset = queryset if queryset is not None else Dataset.objects.all()
    if user is None or not user.is_authenticated or not user.is_active:
        return queryset.none()
    if user.is_superuser:
        return queryset
    used_by_visible = VersionDataset.objects.filter(dataset=OuterRef("pk"), version__model__in=visible_models(user))
    in_team = get_user_model().groups.through.objects.filter(group_id=OuterRef("team_id"), user_id=user.pk)
    return queryset.filter(Q(owner_id=user.pk) | Exists(in_team) | Exists(used_by_visible))


def dataset_or_404(user, pk: int) -> Dataset:
    """One dataset the user may see, or Http404 whether it is missing or hidden (the answer does not tell which)."""
    return get_object_or_404(visible_datasets(user, Dataset.objects.select_related("owner", "team")), pk=pk)


def datasets_for_list(user, *, search: str = "") -> QuerySet[Dataset]:
    """The datasets the user may see, with the number of versions they may view that use each (one query)."""
    queryset = visible_datasets(user).annotate(
        visible_versions=Count(
            "version_links__version", filter=Q(version_links__version__model__in=visible_models(user)), distinct=True
        )
    ).order_by("name", "uri", "digest")
    return datasets_matching(queryset, search)


def datasets_matching(queryset: QuerySet[Dataset], search: str) -> QuerySet[Dataset]:
    """Datasets whose name, URI or digest contains `search` (all of them for an empty search)."""
    if not search:
        return queryset
    return queryset.filter(Q(name__icontains=search) | Q(uri__icontains=search) | Q(digest__icontains=search))


# -- impact ---------------------------------------------------------------------------------------------------


HIDDEN_VIA = {"model": None, "number": None, "relation": None, "hidden": True}


@dataclass
class ImpactedVersion:
    """A version affected by a dataset (or derived from a version), as the user may see it."""

    id: UUID
    model: str
    number: int
    stage: str
    depth: int  # 0: uses the dataset itself; 1: derived from such a version; ... (a run of hidden versions is one level)
    roles: list[str] = field(default_factory=list)  # how it uses the dataset directly (training, evaluation)
    # The affected parents it derives from: visible ones named {model, number, relation, hidden: False}; when some are
    # versions the user may not view, one more entry HIDDEN_VIA, which tells neither how many, which, nor how.
    via: list[dict] = field(default_factory=list)

    @property
    def url(self) -> str:
        return reverse("versions:detail", kwargs={"name": self.model, "number": self.number})

    def as_dict(self) -> dict:
        return {
            "model": self.model, "version": self.number, "stage": self.stage, "depth": self.depth, "roles": self.roles,
            "via": [{"model": v["model"], "version": v["number"], "relation": v["relation"], "hidden": v["hidden"]} for v in self.via],
        }


def _impact_rows(user, *, dataset_id: int | None, root_id) -> list[tuple]:
    """One query: every (version, reached-from, how) row of the impacted subgraph, with names only where visible.

    Anchor rows are the dataset's direct uses (reached-from = the version itself, how = the role) or the root
    version's children; each recursive step follows VersionParent from parent to child. UNION drops repeated
    rows, so every parent link is walked once and the recursion ends (the graph has no cycles anyway).
    """
    vp, vd = VersionParent._meta.db_table, VersionDataset._meta.db_table
    versions, models_ = ModelVersion._meta.db_table, RegisteredModel._meta.db_table
    visible, visible_params = visible_model_sql("m", user)
    if dataset_id is not None:
        anchor = f"SELECT d.version_id, d.version_id, CAST(d.role AS VARCHAR(32)) FROM {vd} d WHERE d.dataset_id = %s"
        anchor_params = [dataset_id]
    else:
        anchor = f"SELECT p.child_id, p.parent_id, CAST(p.relation AS VARCHAR(32)) FROM {vp} p WHERE p.parent_id = %s"
        anchor_params = [_pk_param(root_id)]
    sql = (
        f"WITH RECURSIVE reach(version_id, via_id, how) AS ("
        f" {anchor}"
        f" UNION"
        f" SELECT p.child_id, p.parent_id, CAST(p.relation AS VARCHAR(32)) FROM {vp} p JOIN reach r ON p.parent_id = r.version_id"
        f"), seen(id) AS (SELECT m.id FROM {models_} m WHERE {visible})"
        f" SELECT r.version_id, r.via_id, r.how, m.name,"
        f" CASE WHEN m.id IS NULL THEN NULL ELSE v.number END, CASE WHEN m.id IS NULL THEN NULL ELSE v.stage END"
        f" FROM reach r JOIN {versions} v ON v.id = r.version_id"
        f" LEFT JOIN seen s ON s.id = v.model_id LEFT JOIN {models_} m ON m.id = s.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*anchor_params, *visible_params])
        return cursor.fetchall()


def _impact_depths(starts: list, children: dict[object, list], names: dict[object, tuple | None]) -> dict[object, int]:
    """Fewest levels from the starts to each version, where a run of hidden versions counts as one level (0-1 BFS).

    So a visible version reached through hidden ones is one level below "a version you cannot view", whatever
    the hidden chain's length: the levels shown do not count versions the user may not see.
    """
    depth = {node: 0 for node in starts}
    queue = deque(starts)
    while queue:
        node = queue.popleft()
        for child in children[node]:
            step = 0 if names.get(node) is None and names.get(child) is None else 1
            if depth[node] + step < depth.get(child, depth[node] + step + 1):
                depth[child] = depth[node] + step
                (queue.appendleft if step == 0 else queue.append)(child)
    return depth


def impacted_versions(user, *, dataset: Dataset | None = None, version: ModelVersion | None = None) -> list[ImpactedVersion]:
    """Every version the user may view that was trained or evaluated on `dataset`, or that derives from `version`,
    transitively through derived versions: production first, then staging, then by distance. One query."""
    if (dataset is None) == (version is None):
        raise TypeError("Give a dataset or a version.")
    rows = _impact_rows(user, dataset_id=dataset.pk if dataset else None, root_id=version.pk if version else None)
    # Ids stay as the driver returns them (hex text on SQLite, uuid on PostgreSQL) until the end: converting
    # thousands of them up front cost more than the query.
    names: dict[object, tuple[str, int, str] | None] = {}
    children: dict[object, list] = defaultdict(list)
    parents: dict[object, list[tuple[object, str]]] = defaultdict(list)
    roles: dict[object, list[str]] = defaultdict(list)
    for node, via, how, name, number, stage in rows:
        names[node] = (name, number, stage) if name is not None else None
        if node == via:
            roles[node].append(how)
        else:
            children[via].append(node)
            parents[node].append((via, how))
    root = _pk_param(version.pk) if version else None
    if version is not None:
        names[root] = (version.model.name, version.number, version.stage)
    depth = _impact_depths([root] if root is not None else list(roles), children, names)
    result = []
    for node, shown in names.items():
        if shown is None or node == root or node not in depth:
            continue
        affected_parents = set(parents[node])
        via = sorted(
            (
                {"model": names[p][0], "number": names[p][1], "relation": relation, "hidden": False}
                for p, relation in affected_parents if names.get(p)
            ),
            key=lambda item: (item["model"], item["number"]),
        )
        if any(not names.get(p) for p, _ in affected_parents):
            via.append(dict(HIDDEN_VIA))
        result.append(ImpactedVersion(id=_pk(node), model=shown[0], number=shown[1], stage=shown[2], depth=depth[node], roles=sorted(set(roles[node])), via=via))
    result.sort(key=lambda item: (STAGE_RANK.get(item.stage, 9), item.depth, item.model, -item.number))
    return result


# -- the graph around a version ---------------------------------------------------------------------------------


@dataclass
class GraphNode:
    id: str
    kind: str  # version, dataset, code, environment
    label: str
    url: str = ""
    stage: str = ""
    direction: str = "upstream"  # upstream, self, downstream
    depth: int = 0  # levels away from the version (upstream negative), for versions
    detail: str = ""
    links: list[str] = field(default_factory=list)  # readable "→ target (how)" for the table

    @property
    def levels(self) -> int:
        return abs(self.depth)

    def as_json(self) -> dict:
        return {
            "id": self.id, "kind": self.kind, "label": self.label, "url": self.url, "stage": self.stage,
            "direction": self.direction, "depth": self.depth, "detail": self.detail,
        }


@dataclass
class GraphEdge:
    source: str
    target: str
    label: str
    indirect: bool = False

    def as_json(self) -> dict:
        return {"id": f"{self.source}>{self.target}", "source": self.source, "target": self.target, "label": self.label, "indirect": self.indirect}


@dataclass
class LineageGraph:
    version: ModelVersion
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    truncated: bool = False

    def as_json(self) -> dict:
        return {"nodes": [n.as_json() for n in self.nodes], "edges": [e.as_json() for e in self.edges], "truncated": self.truncated}

    @property
    def version_count(self) -> int:
        return sum(1 for n in self.nodes if n.kind == "version")


def _graph_edges(version_id) -> list[tuple[str, UUID, UUID, str]]:
    """One query: every parent link above the version (its ancestors) and below it (its descendants)."""
    vp = VersionParent._meta.db_table
    sql = (
        f"WITH RECURSIVE up(child_id, parent_id, relation) AS ("
        f" SELECT p.child_id, p.parent_id, p.relation FROM {vp} p WHERE p.child_id = %s"
        f" UNION SELECT p.child_id, p.parent_id, p.relation FROM {vp} p JOIN up ON p.child_id = up.parent_id"
        f"), down(child_id, parent_id, relation) AS ("
        f" SELECT p.child_id, p.parent_id, p.relation FROM {vp} p WHERE p.parent_id = %s"
        f" UNION SELECT p.child_id, p.parent_id, p.relation FROM {vp} p JOIN down ON p.parent_id = down.child_id"
        f") SELECT 'up', child_id, parent_id, relation FROM up UNION ALL SELECT 'down', child_id, parent_id, relation FROM down"
    )
    param = _pk_param(version_id)
    with connection.cursor() as cursor:
        cursor.execute(sql, [param, param])
        return [(direction, _pk(child), _pk(parent), relation) for direction, child, parent, relation in cursor.fetchall()]


def _distances(root: UUID, edges: list[tuple[str, UUID, UUID, str]]) -> dict[UUID, int]:
    """Levels from the root: ancestors negative, descendants positive (the shortest path each way)."""
    up, down = defaultdict(list), defaultdict(list)
    for direction, child, parent, _ in edges:
        (up[child].append(parent) if direction == "up" else down[parent].append(child))
    distance = {root: 0}
    for step, neighbours in ((-1, up), (1, down)):
        queue = deque([root])
        while queue:
            node = queue.popleft()
            for other in neighbours[node]:
                if other not in distance:
                    distance[other] = distance[node] + step
                    queue.append(other)
    return distance


def _nearest_visible(start: UUID, parents_of: dict[UUID, list[UUID]], visible: set[UUID], memo: dict[UUID, set[UUID]]) -> set[UUID]:
    """The visible versions reached from a hidden one by walking up through hidden versions only."""
    if start in memo:
        return memo[start]
    found: set[UUID] = set()
    stack, walked = [start], {start}
    while stack:
        node = stack.pop()
        for parent in parents_of.get(node, ()):
            if parent in visible:
                found.add(parent)
            elif parent not in walked:
                walked.add(parent)
                stack.append(parent)
    memo[start] = found
    return found


def _version_label(version: ModelVersion) -> str:
    return f"{version.model.name} v{version.number}"


def _code_node(version: ModelVersion) -> GraphNode | None:
    if not (version.code_repository or version.code_commit):
        return None
    repo = version.code_repository.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git") if version.code_repository else "code"
    commit = version.code_commit[:10] or "no commit"
    label = f"{repo} @ {commit}" + (" (dirty)" if version.code_dirty else "")
    return GraphNode(id=f"code:{version.code_repository}@{version.code_commit}", kind="code", label=label, detail=version.code_repository)


def _environment_node(version: ModelVersion) -> GraphNode | None:
    if version.environment_image:
        image = version.environment_image
        short = image.rsplit("/", 1)[-1]
        short = short[:28] + "…" if len(short) > 29 else short
        return GraphNode(id=f"env:{image}", kind="environment", label=short, detail=image)
    facts = " ".join(part for part in (f"Python {version.python_version}" if version.python_version else "", version.framework, version.framework_version) if part)
    if not facts:
        return None
    return GraphNode(id=f"env:{facts}", kind="environment", label=facts, detail=facts)


def version_lineage_graph(user, version: ModelVersion, *, limit: int = MAX_GRAPH_VERSIONS) -> LineageGraph:
    """Upstream (datasets, code, environment, parents and theirs) and downstream (derived versions) of `version`.

    Three queries whatever the depth or width: the recursive parent links, the visible versions, their datasets.
    """
    edges = _graph_edges(version.pk)
    distance = _distances(version.pk, edges)
    truncated = len(distance) > limit
    if truncated:
        kept = set(sorted(distance, key=lambda node: (abs(distance[node]), distance[node]))[:limit])
        distance = {node: d for node, d in distance.items() if node in kept}
        edges = [e for e in edges if e[1] in distance and e[2] in distance]
    loaded = {
        v.pk: v
        for v in ModelVersion.objects.filter(pk__in=list(distance), model__in=visible_models(user)).select_related("model")
    }
    loaded[version.pk] = version  # the page's own version: the caller loaded it through the permission helper
    visible = set(loaded)
    upstream = [pk for pk in visible if distance[pk] <= 0]
    links = VersionDataset.objects.filter(version_id__in=upstream).select_related("dataset").order_by("role", "dataset__name")

    nodes: dict[str, GraphNode] = {}
    out: list[GraphEdge] = []
    seen_edges: set[tuple[str, str]] = set()

    def add_edge(source: str, target: str, label: str, indirect: bool = False) -> None:
        if (source, target) not in seen_edges:
            seen_edges.add((source, target))
            out.append(GraphEdge(source=source, target=target, label=label, indirect=indirect))

    for pk in sorted(visible, key=lambda pk: (distance[pk], loaded[pk].model.name, loaded[pk].number)):
        v = loaded[pk]
        d = distance[pk]
        nodes[f"v:{pk}"] = GraphNode(
            id=f"v:{pk}", kind="version", label=_version_label(v), stage=v.stage, depth=d,
            direction="self" if d == 0 else ("upstream" if d < 0 else "downstream"),
            url=reverse("versions:detail", kwargs={"name": v.model.name, "number": v.number}),
        )
    for link in links:
        node_id = f"d:{link.dataset_id}"
        nodes.setdefault(node_id, GraphNode(
            id=node_id, kind="dataset", label=str(link.dataset), detail=link.dataset.uri,
            url=reverse("lineage:dataset", kwargs={"pk": link.dataset_id}),
        ))
        add_edge(node_id, f"v:{link.version_id}", link.role)
    for pk in upstream:
        for maker, label in ((_code_node, "code"), (_environment_node, "environment")):
            made = maker(loaded[pk])
            if made is not None:
                nodes.setdefault(made.id, made)
                add_edge(made.id, f"v:{pk}", label)

    parents_of: dict[UUID, list[UUID]] = defaultdict(list)
    for _, child, parent, _ in edges:
        parents_of[child].append(parent)
    memo: dict[UUID, set[UUID]] = {}
    for _, child, parent, relation in edges:
        if child not in visible:
            continue
        if parent in visible:
            add_edge(f"v:{parent}", f"v:{child}", EDGE_LABELS.get(relation, relation))
        else:
            for ancestor in _nearest_visible(parent, parents_of, visible, memo):
                add_edge(f"v:{ancestor}", f"v:{child}", "derived", indirect=True)

    for edge in out:
        target = nodes[edge.target]
        nodes[edge.source].links.append(f"→ {target.label} ({edge.label})")
    return LineageGraph(version=version, nodes=list(nodes.values()), edges=out, truncated=truncated)


# -- what it takes to reproduce a version -----------------------------------------------------------------------


def reproduce_spec(user, version: ModelVersion) -> dict:
    """Everything needed to rebuild `version`: its metadata document as registration accepts it (one query: parents).

    Expects a version loaded by `versions_with_details`. Parents on models the user may not view are left out.
    """
    parents = (
        VersionParent.objects.filter(child=version, parent__model__in=visible_models(user))
        .select_related("parent__model")
        .order_by("id")
    )
    return document_of(version, parent_links=parents)
