import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.approvals.services import transition_request_create
from apps.lineage.models import Dataset
from apps.lineage.selectors import (
    HIDDEN_VIA,
    MAX_GRAPH_VERSIONS,
    impacted_versions,
    version_lineage_graph,
)
from tests.factories import promote, register_version

from .conftest import DATASET, EVAL_DATASET, parent
from .graphs import bulk_versions, chain, fan_out, link, trained_on

pytestmark = pytest.mark.django_db


def _count(work):
    with CaptureQueriesContext(connection) as ctx:
        result = work()
    return len(ctx.captured_queries), result


def _listed(items) -> list[tuple[str, int]]:
    return [(item.model, item.number) for item in items]


def test_impact_reaches_two_levels_of_fine_tuning_with_production_and_staging_first(model, owner, reviewer):
    base = register_version(model, owner, datasets=[DATASET])                           # v1, trained on it
    tuned = register_version(model, owner, parents=[parent(model, 1)])                  # v2, fine-tuned from v1
    register_version(model, owner, parents=[parent(model, 2)])                           # v3, fine-tuned from v2
    register_version(model, owner, datasets=[{**EVAL_DATASET, "uri": DATASET["uri"], "digest": DATASET["digest"], "role": "evaluation"}])  # v4, evaluated on it
    register_version(model, owner)                                                       # v5, unrelated
    promote(tuned, requester=owner, approver=reviewer)
    transition_request_create(version=base, to_stage="staging", actor=owner, justification="try it")
    dataset = Dataset.objects.get(uri=DATASET["uri"])

    items = impacted_versions(owner, dataset=dataset)

    assert _listed(items) == [("sentiment", 2), ("sentiment", 1), ("sentiment", 4), ("sentiment", 3)]
    by_number = {item.number: item for item in items}
    assert [item.stage for item in items[:2]] == ["production", "staging"]
    assert (by_number[1].depth, by_number[1].roles, by_number[1].via) == (0, ["training"], [])
    assert by_number[4].roles == ["evaluation"]
    assert (by_number[3].depth, by_number[3].via) == (2, [{"model": "sentiment", "number": 2, "relation": "fine_tuned_from", "hidden": False}])


def test_a_versions_impact_lists_what_derives_from_it_at_any_depth(model, owner):
    root = register_version(model, owner)
    register_version(model, owner, parents=[parent(model, 1, "distilled_from")])
    register_version(model, owner, parents=[parent(model, 2)])
    register_version(model, owner)
    assert _listed(impacted_versions(owner, version=root)) == [("sentiment", 2), ("sentiment", 3)]


def test_versions_the_user_cannot_view_never_appear_but_what_derives_through_them_does(model, owner, reviewer, secret, stranger):
    register_version(model, owner, datasets=[DATASET])                                    # sentiment v1
    register_version(secret, stranger, parents=[parent(model, 1)])                        # secret-model v1 (reviewer: hidden)
    register_version(model, owner, parents=[parent(secret, 1, "distilled_from")])        # sentiment v2
    dataset = Dataset.objects.get()

    assert _listed(impacted_versions(owner, dataset=dataset)) == [("sentiment", 1), ("secret-model", 1), ("sentiment", 2)]
    seen_by_reviewer = impacted_versions(reviewer, dataset=dataset)
    assert _listed(seen_by_reviewer) == [("sentiment", 1), ("sentiment", 2)]
    assert seen_by_reviewer[1].depth == 2 and seen_by_reviewer[1].via == [HIDDEN_VIA]  # reached through the hidden version, which is not named
    assert "secret" not in repr(seen_by_reviewer)


def test_impact_is_one_query_however_deep_or_wide_the_graph(model, owner, reviewer):
    dataset = Dataset.objects.create(name="d", uri="s3://d")
    roots = bulk_versions(model, 2)
    trained_on(dataset, roots)
    chain(model, 150, root=roots[0])        # 150 levels of fine-tuning
    fan_out(model, roots[1], 150)           # 150 siblings distilled from one version

    queries, items = _count(lambda: impacted_versions(reviewer, dataset=dataset))
    assert queries == 1
    assert len(items) == 302 and max(item.depth for item in items) == 150


def test_the_graph_shows_upstream_datasets_code_environment_and_parents_and_downstream_children(model, owner):
    register_version(model, owner, datasets=[DATASET], code={"repository": "https://git.example.com/nlp.git", "commit": "abcdef1"})
    register_version(
        model, owner, parents=[parent(model, 1)], datasets=[EVAL_DATASET],
        dependencies={"python_version": "3.11", "framework": "torch", "framework_version": "2.3.1"},
        environment={"image": "registry.example.com/train@sha256:" + "ab" * 32},
    )
    register_version(model, owner, parents=[parent(model, 2, "distilled_from")])
    focus = model.versions.get(number=2)

    graph = version_lineage_graph(owner, focus)

    labels = {node.kind: set() for node in graph.nodes}
    for node in graph.nodes:
        labels[node.kind].add(node.label)
    assert labels["version"] == {"sentiment v1", "sentiment v2", "sentiment v3"}
    assert labels["dataset"] == {"imdb@sha256:aa11", "imdb-test@v1"}
    assert labels["code"] == {"nlp @ abcdef1"}
    assert any(label.startswith("train@sha256:abab") for label in labels["environment"])
    directions = {node.label: (node.direction, node.depth) for node in graph.nodes if node.kind == "version"}
    assert directions == {"sentiment v1": ("upstream", -1), "sentiment v2": ("self", 0), "sentiment v3": ("downstream", 1)}
    edges = {(graph_label(graph, e.source), graph_label(graph, e.target), e.label) for e in graph.edges}
    assert ("sentiment v1", "sentiment v2", "fine-tuned into") in edges
    assert ("sentiment v2", "sentiment v3", "distilled into") in edges
    assert ("imdb@sha256:aa11", "sentiment v1", "training") in edges
    assert ("imdb-test@v1", "sentiment v2", "evaluation") in edges


def graph_label(graph, node_id: str) -> str:
    return next(node.label for node in graph.nodes if node.id == node_id)


def test_the_graph_hides_versions_the_user_cannot_view_and_joins_around_them(model, owner, reviewer, secret, stranger):
    register_version(model, owner)                                                        # sentiment v1
    register_version(secret, stranger, parents=[parent(model, 1)], datasets=[DATASET])   # secret-model v1
    register_version(model, owner, parents=[parent(secret, 1, "distilled_from")])        # sentiment v2
    focus = model.versions.get(number=2)

    owners_view = version_lineage_graph(owner, focus)
    reviewers_view = version_lineage_graph(reviewer, focus)

    assert "secret-model v1" in {node.label for node in owners_view.nodes}
    labels = {node.label for node in reviewers_view.nodes}
    assert labels == {"sentiment v1", "sentiment v2"}  # nor the hidden version's dataset
    assert "secret" not in repr(reviewers_view.as_json())
    [edge] = reviewers_view.edges
    assert edge.indirect and graph_label(reviewers_view, edge.source) == "sentiment v1"


def test_graph_queries_are_pinned_for_deep_and_wide_lineage(model, owner, reviewer):
    dataset = Dataset.objects.create(name="d", uri="s3://d")
    small_root = bulk_versions(model, 1)[0]
    small_child = chain(model, 1, root=small_root)[0]
    trained_on(dataset, [small_root])

    deep_root = bulk_versions(model, 1)[0]
    deep = chain(model, 200, root=deep_root)            # 200 ancestors above the middle ...
    below = chain(model, 100, root=deep[-1])            # ... and 100 descendants below it
    wide_parents = bulk_versions(model, 150)            # an ensemble of 150 parents
    for version in wide_parents:
        link(deep[-1], version, "ensembled_from")
    trained_on(dataset, wide_parents + deep)

    small, _ = _count(lambda: version_lineage_graph(reviewer, small_child))
    large, large_graph = _count(lambda: version_lineage_graph(reviewer, deep[-1]))

    assert small == large == 3  # parent links (recursive), visible versions, their datasets
    assert large_graph.version_count == 1 + 200 + 100 + 150 and not large_graph.truncated
    assert len([n for n in large_graph.nodes if n.kind == "dataset"]) == 1
    assert {f"v:{deep_root.pk}", f"v:{below[-1].pk}", f"v:{wide_parents[0].pk}"} <= {node.id for node in large_graph.nodes}


def test_a_graph_larger_than_the_limit_keeps_the_nearest_versions(model, owner, reviewer):
    root = bulk_versions(model, 1)[0]
    versions = chain(model, 40, root=root)
    graph = version_lineage_graph(reviewer, versions[20], limit=11)
    assert graph.truncated and graph.version_count == 11
    assert {node.depth for node in graph.nodes if node.kind == "version"} == set(range(-5, 6))
    assert MAX_GRAPH_VERSIONS >= 1000
