"""The comparison page: each section's diff (pure functions on snapshots), then the page with permissions and query counts."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from apps.models.services import model_create
from apps.validation.services import validation_policy_update, validation_run
from apps.catalog.compare import (
    Snapshot,
    artifact_rows,
    compare,
    dataset_rows,
    dependency_rows,
    inspection_rows,
    metric_history,
    metric_rows,
    parameter_rows,
    parse_refs,
    parse_requirements,
    verdict,
)
from tests.factories import promote, register_version, sha256
from tests.helpers import queries_for, safetensors

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def snap(number: int, model: str = "m", **fields) -> Snapshot:
    return Snapshot(model=model, number=number, **fields)


# --- the URL ----------------------------------------------------------------------------------------------


def test_refs_keep_their_order_drop_repeats_and_count_malformed_values():
    refs, malformed = parse_refs(["a:2", "b:10", "a:2", "a:02", "nocolon", "a:", ":3", "a:x", "a:0", "a:-1", " c.d-e:7 "])
    assert refs == [("a", 2), ("b", 10), ("c.d-e", 7)]
    assert malformed == 6


# --- metrics ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "delta, direction, expected",
    [(0.02, "higher", "better"), (-0.02, "higher", "worse"), (-0.02, "lower", "better"), (0.02, "lower", "worse"),
     (0.02, None, "neutral"), (0.0, "higher", "same"), (1e-15, "lower", "same"), (None, "higher", None)],
)
def test_a_delta_is_better_or_worse_only_by_the_rules_direction(delta, direction, expected):
    assert verdict(delta, direction) == expected


def test_metric_deltas_are_against_the_baseline_and_coloured_by_direction():
    snapshots = [
        snap(1, metrics={"accuracy": 0.90, "loss": 0.30, "f1": 0.5}),
        snap(2, metrics={"accuracy": 0.93, "loss": 0.35}),
        snap(3, metrics={"accuracy": 0.88, "loss": 0.20, "f1": 0.5, "new": 1.0}),
    ]
    rows = {row["name"]: row for row in metric_rows(snapshots, 0, {"accuracy": "higher", "loss": "lower"})}
    assert list(rows) == ["accuracy", "f1", "loss", "new"]
    accuracy = rows["accuracy"]["cells"]
    assert [c["value"] for c in accuracy] == [0.90, 0.93, 0.88]
    assert accuracy[0]["delta"] is None and accuracy[0]["is_baseline"] and accuracy[0]["verdict"] is None
    assert accuracy[1]["delta"] == pytest.approx(0.03) and accuracy[1]["verdict"] == "better"
    assert accuracy[1]["percent"] == pytest.approx(3.3333, rel=1e-3)
    assert accuracy[2]["verdict"] == "worse"
    assert [c["verdict"] for c in rows["loss"]["cells"]] == [None, "worse", "better"]
    # No rule for f1: a change would be neutral; an equal value is "same"; a missing value has no delta.
    assert [c["verdict"] for c in rows["f1"]["cells"]] == [None, None, "same"]
    assert rows["f1"]["direction"] is None
    # A metric the baseline lacks shows its value, without a delta.
    assert rows["new"]["cells"][2] == {"value": 1.0, "delta": None, "percent": None, "verdict": None, "is_baseline": False}


def test_metric_deltas_against_a_baseline_in_the_middle():
    snapshots = [snap(1, metrics={"acc": 0.8}), snap(2, metrics={"acc": 0.9}), snap(3, metrics={"acc": 0.95})]
    cells = metric_rows(snapshots, 1, {"acc": "higher"})[0]["cells"]
    assert [c["verdict"] for c in cells] == ["worse", None, "better"]
    assert cells[0]["delta"] == pytest.approx(-0.1)


def test_metrics_of_different_models_share_a_row_when_their_names_match():
    snapshots = [snap(1, "bert", metrics={"accuracy": 0.9, "bert_only": 1.0}), snap(4, "distil", metrics={"accuracy": 0.88})]
    rows = {row["name"]: row for row in metric_rows(snapshots, 0, {})}
    assert [c["value"] for c in rows["accuracy"]["cells"]] == [0.9, 0.88]
    assert rows["accuracy"]["cells"][1]["verdict"] == "neutral"
    assert [c["value"] for c in rows["bert_only"]["cells"]] == [1.0, None]


# --- hyperparameters --------------------------------------------------------------------------------------


def test_hyperparameters_split_into_changed_and_equal_with_nested_values_flattened():
    snapshots = [
        snap(1, hyperparameters={"lr": 0.001, "epochs": 3, "optimizer": {"name": "adam", "beta": 0.9}, "warmup": True, "tags": ["a"], "same_int": 1}),
        snap(2, hyperparameters={"lr": 0.002, "epochs": 3, "optimizer": {"name": "adam", "beta": 0.95}, "warmup": 1, "tags": ["a"], "same_int": 1.0, "dropout": 0.1}),
    ]
    result = parameter_rows(snapshots, 0)
    changed = {row["name"]: row["cells"] for row in result["changed"]}
    equal = {row["name"] for row in result["equal"]}
    assert set(changed) == {"lr", "optimizer.beta", "warmup", "dropout"}
    assert equal == {"epochs", "optimizer.name", "tags", "same_int"}  # 1 and 1.0 are the same number
    assert [c["text"] for c in changed["lr"]] == ["0.001", "0.002"]
    assert [c["changed"] for c in changed["lr"]] == [False, True]
    assert [c["text"] for c in changed["warmup"]] == ["true", "1"]  # true is not 1
    assert changed["dropout"][0]["missing"] and not changed["dropout"][1]["missing"] and changed["dropout"][1]["changed"]


def test_a_hyperparameter_equal_to_the_baseline_is_not_flagged_even_when_another_column_differs():
    snapshots = [snap(1, hyperparameters={"lr": 1}), snap(2, hyperparameters={"lr": 1}), snap(3, hyperparameters={"lr": 2})]
    (row,) = parameter_rows(snapshots, 0)["changed"]
    assert [c["changed"] for c in row["cells"]] == [False, False, True]


# --- artifacts --------------------------------------------------------------------------------------------


def test_artifacts_are_keyed_by_path_and_marked_added_removed_changed_or_same():
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    snapshots = [
        snap(1, artifacts={"config.json": (a, 10), "model.bin": (b, 2048), "old.txt": (c, 3)}),
        snap(2, artifacts={"config.json": (a, 10), "model.bin": (c, 4096), "tokenizer/vocab.txt": (b, 7)}),
    ]
    result = artifact_rows(snapshots, 0)
    differing = {row["path"]: row["cells"] for row in result["differing"]}
    assert list(differing) == ["model.bin", "old.txt", "tokenizer/vocab.txt"]
    assert differing["model.bin"][1] == {"sha256": c, "size": 4096, "status": "changed", "is_baseline": False}
    assert differing["model.bin"][0] == {"sha256": b, "size": 2048, "status": None, "is_baseline": True}
    assert differing["old.txt"][1]["status"] == "removed" and differing["old.txt"][1]["sha256"] is None
    assert differing["tokenizer/vocab.txt"][1]["status"] == "added" and differing["tokenizer/vocab.txt"][0]["status"] is None
    assert [row["path"] for row in result["identical"]] == ["config.json"]
    assert result["identical"][0]["cells"][1]["status"] == "same"
    assert result["counts"] == [None, {"added": 1, "removed": 1, "changed": 1, "same": 1}]


def test_a_file_only_a_later_column_has_is_absent_in_both_for_the_others():
    snapshots = [snap(1, artifacts={}), snap(2, artifacts={}), snap(3, artifacts={"x": ("d" * 64, 1)})]
    (row,) = artifact_rows(snapshots, 0)["differing"]
    assert [c["status"] for c in row["cells"]] == [None, None, "added"]


# --- dependencies -----------------------------------------------------------------------------------------


def test_requirements_are_parsed_with_packaging_into_name_and_specifier():
    parsed = parse_requirements(
        "# pinned\nTorch==2.3.1\nnumpy>=1.26,<2  # range\nrequests[socks] >= 2.0\n"
        "pywin32==306; sys_platform == 'win32'\n-r base.txt\nnot a requirement!!\n"
        "transformers @ https://example.com/t.whl\nscipy\nflask==3.0.0 \\\n"
    )
    assert parsed == {
        "torch": "==2.3.1",
        "numpy": "<2,>=1.26",
        "requests": "[socks] >=2.0",
        'pywin32; sys_platform == "win32"': "==306",
        "-r base.txt": "(pip option)",
        "not a requirement!!": "(not a valid requirement)",
        "transformers": "@ https://example.com/t.whl",
        "scipy": "any version",
        "flask": "==3.0.0",
    }


def test_dependencies_show_added_removed_and_changed_packages_and_environment_facts():
    snapshots = [
        snap(1, requirements="torch==2.3.0\nnumpy>=1.26,<2\nscipy==1.13\n", environment={"Python": "3.11", "Framework": "torch", "Framework version": "2.3.0", "Environment image": ""}),
        snap(2, requirements="torch==2.3.1\nnumpy<2,>=1.26\nsafetensors==0.4\n", environment={"Python": "3.12", "Framework": "torch", "Framework version": "2.3.1", "Environment image": "img@sha256:1"}),
    ]
    result = dependency_rows(snapshots, 0)
    packages = {row["name"]: row["cells"] for row in result["packages"]}
    assert set(packages) == {"torch", "scipy", "safetensors"}
    assert packages["torch"][1] == {"text": "==2.3.1", "status": "changed", "is_baseline": False}
    assert packages["scipy"][1]["status"] == "removed" and packages["safetensors"][1]["status"] == "added"
    assert [row["name"] for row in result["unchanged_packages"]] == ["numpy"]  # the same specifier written in another order
    environment = {row["name"]: row for row in result["environment"]}
    assert list(environment) == ["Python", "Framework", "Framework version", "Environment image"]
    assert environment["Python"]["differs"] and not environment["Framework"]["differs"]
    assert environment["Environment image"]["cells"][1]["status"] == "added"


# --- datasets ---------------------------------------------------------------------------------------------


def test_datasets_are_keyed_by_role_name_uri_and_digest():
    imdb_v1 = ("training", "imdb", "s3://d/imdb", "v1")
    imdb_v2 = ("training", "imdb", "s3://d/imdb", "v2")
    sst = ("evaluation", "sst2", "s3://d/sst2", "")
    as_eval = ("evaluation", "imdb", "s3://d/imdb", "v1")
    snapshots = [snap(1, datasets=frozenset({imdb_v1, sst})), snap(2, datasets=frozenset({imdb_v2, sst, as_eval}))]
    rows = {(r["role"], r["name"], r["uri"], r["digest"]): r["cells"] for r in dataset_rows(snapshots, 0)}
    assert rows[imdb_v1][1] == {"present": False, "status": "removed", "is_baseline": False}
    assert rows[imdb_v2][1]["status"] == "added" and rows[imdb_v2][0] == {"present": False, "status": None, "is_baseline": True}
    assert rows[sst][1]["status"] == "same"
    assert rows[as_eval][1]["status"] == "added"  # the same data in another role is another entry


# --- format inspection ------------------------------------------------------------------------------------


def test_inspection_shows_parameter_counts_with_deltas_dtypes_and_uninspected_versions():
    inspected = {"totals": {"parameters": 1000, "tensors": 4, "dtypes": ["F32"]}, "safetensors": {"m.safetensors": {}}, "config": {"config.json": {"architectures": ["BertModel"]}}}
    bigger = {"totals": {"parameters": 1500, "tensors": 4, "dtypes": ["BF16", "F32"]}, "safetensors": {"m.safetensors": {}}, "config": {"config.json": {"model_type": "bert"}}}
    no_weights = {"totals": {"parameters": 0, "tensors": 0, "dtypes": []}, "safetensors": {}, "config": {}}
    result = inspection_rows([snap(1, inspection=inspected), snap(2, inspection=bigger), snap(3), snap(4, inspection=no_weights)], 0)
    assert result["states"] == ["inspected", "inspected", "not inspected", "nothing to read"]
    rows = {row["name"]: row["cells"] for row in result["rows"]}
    assert [c["value"] for c in rows["Parameters"]] == [1000, 1500, None, None]  # no weights read is not zero parameters
    assert rows["Parameters"][1]["delta"] == 500 and rows["Parameters"][1]["text"] == "1,500" and rows["Parameters"][1]["delta_text"] == "+500"
    assert rows["Tensors"][1]["delta"] == 0 and not rows["Tensors"][1]["changed"]
    assert [c["value"] for c in rows["Dtypes"]] == ["F32", "BF16, F32", None, None]
    assert [c["changed"] for c in rows["Dtypes"]] == [False, True, False, False]
    assert [c["value"] for c in rows["Architecture"]] == ["BertModel", "bert", None, None]


def test_no_inspection_rows_when_nothing_was_read():
    no_weights = {"totals": {"parameters": 0, "tensors": 0, "dtypes": []}, "safetensors": {}, "config": {}}
    assert inspection_rows([snap(1), snap(2, inspection=no_weights)], 0) == {"states": ["not inspected", "nothing to read"], "rows": []}


# --- history ----------------------------------------------------------------------------------------------


def test_metric_history_has_one_point_per_version_and_a_marker_per_pointer_change():
    rows = [
        (1, T0, "archived", "acc", 0.8), (1, T0, "archived", "loss", 0.5),
        (2, T0 + timedelta(days=1), "production", "acc", 0.85),
        (3, T0 + timedelta(days=2), "draft", "loss", 0.4),
    ]
    changes = [
        (T0 + timedelta(days=3), "rollback", 1, 2),
        (T0 + timedelta(hours=1), "promotion", 1, None),
        (T0 + timedelta(days=1, hours=1), "promotion", 2, 1),
        (T0 + timedelta(days=4), "retirement", None, 1),
    ]
    history = metric_history("m", rows, changes, chosen={2, 3}, preferred=["f1", "loss"])
    assert history["metrics"] == ["acc", "loss"] and history["default"] == "loss"
    assert [(p["number"], p["stage"], p["chosen"], p["values"]) for p in history["points"]] == [
        (1, "archived", False, {"acc": 0.8, "loss": 0.5}), (2, "production", True, {"acc": 0.85}), (3, "draft", True, {"loss": 0.4}),
    ]
    assert history["points"][1]["t"] == int((T0 + timedelta(days=1)).timestamp() * 1000)
    assert [m["label"] for m in history["markers"]] == ["v1 to production", "v2 to production", "rolled back to v1", "v1 out of production"]


def test_compare_puts_every_section_together():
    sections = compare([snap(1, metrics={"a": 1.0}), snap(2, metrics={"a": 2.0})], directions={"a": "lower"})
    assert set(sections) == {"metrics", "parameters", "artifacts", "dependencies", "datasets", "inspection"}
    assert sections["metrics"][0]["cells"][1]["verdict"] == "worse"


# --- the page ---------------------------------------------------------------------------------------------


def validated(version):
    validation_run(job_id=version.validation_jobs.get().pk)
    version.refresh_from_db()
    return version


def compare_url(*refs: str, **extra) -> str:
    query = "&".join([f"v={ref}" for ref in refs] + [f"{k}={v}" for k, v in extra.items()])
    return f"/compare/?{query}"


def text_of(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def chart_payload(response) -> dict:
    match = re.search(r'<script id="compare-data" type="application/json">(.*?)</script>', response.content.decode(), re.DOTALL)
    return json.loads(match.group(1))


@pytest.fixture
def three_versions(model, owner, reviewer):
    """v1 in production; v2 and v3 drafts with changed metrics, parameters, files, requirements and data."""
    v1 = register_version(
        model, owner, metrics={"accuracy": 0.90, "loss": 0.30}, hyperparameters={"lr": 0.001, "epochs": 3},
        files={"config.json": b'{"architectures": ["BertModel"]}', "model.safetensors": safetensors({"w": ("F32", [4, 4])}), "old.txt": b"old"},
        dependencies={"requirements": "torch==2.3.0\nscipy==1.13\n", "python_version": "3.11"},
        datasets=[{"name": "imdb", "uri": "s3://d/imdb", "digest": "v1", "role": "training"}],
    )
    promote(validated(v1), requester=owner, approver=reviewer)
    v2 = validated(register_version(
        model, owner, metrics={"accuracy": 0.93, "loss": 0.35}, hyperparameters={"lr": 0.002, "epochs": 3},
        files={"config.json": b'{"architectures": ["BertModel"]}', "model.safetensors": safetensors({"w": ("F32", [4, 4]), "b": ("F16", [4])}), "new.txt": b"new"},
        dependencies={"requirements": "torch==2.3.1\nsafetensors==0.4.3\n", "python_version": "3.11"},
        datasets=[{"name": "imdb", "uri": "s3://d/imdb", "digest": "v2", "role": "training"}],
    ))
    v3 = register_version(model, owner, metrics={"accuracy": 0.88, "f1": 0.7}, hyperparameters={"lr": 0.001, "epochs": 4})
    return v1, v2, v3


def test_the_owner_sees_every_section_with_deltas_against_the_first_version(web_for, owner, model, three_versions):
    validation_policy_update(model=model, actor=owner, required_file_patterns=[], pinned_baseline=None,
                             rules=[{"metric": "accuracy", "direction": "higher"}, {"metric": "loss", "direction": "lower"}])
    response = web_for(owner).get(compare_url("sentiment:1", "sentiment:2"))
    assert response.status_code == 200
    page = text_of(response)
    assert "unknown or not visible" not in page
    # Metrics: accuracy went up (better), loss went up (worse by its rule).
    assert re.search(r'<span class="delta better" data-verdict="better">\+0\.03 \(\+3\.3%\)</span>', page)
    assert re.search(r'<span class="delta worse" data-verdict="worse">\+0\.05 \(\+16\.7%\)</span>', page)
    # Hyperparameters: lr changed (highlighted), epochs equal (collapsed).
    assert re.search(r'<tr class="differs" data-param="lr">.*?<td class="changed-cell"><code>0.002</code>', page)
    assert re.search(r'<details class="equal" id="equal-parameters"><summary>1 equal hyperparameter</summary>.*?data-param="epochs"', page)
    # Artifacts by path: changed weights, a removed and an added file, the identical config set apart.
    artifacts = page[page.index('id="artifacts"'):page.index('id="dependencies"')]
    new_weights = three_versions[1].artifacts.get(path="model.safetensors")
    assert re.search(r'data-path="model.safetensors">.*?<span class="st st-changed">changed</span> <code class="digest" title="' + new_weights.sha256, artifacts)
    assert re.search(r'data-path="old.txt">.*?<span class="st st-removed">removed</span>', artifacts)
    assert re.search(r'data-path="new.txt">.*?<span class="st st-added">added</span> <code class="digest" title="' + sha256(b"new"), artifacts)
    assert re.search(r'id="identical-artifacts"><summary>1 identical file in every version</summary>.*?data-path="config.json"', artifacts)
    assert "1 added</span> <span class=\"st st-removed\">1 removed</span> <span class=\"st st-changed\">1 changed</span> <span class=\"st st-same\">1 same" in artifacts
    # Dependencies and datasets.
    assert re.search(r'data-package="torch">.*?st-changed">changed</span> <code>==2.3.1</code>', page)
    assert re.search(r'data-package="scipy">.*?st-removed">removed', page) and re.search(r'data-package="safetensors">.*?st-added">added', page)
    datasets = page[page.index('id="datasets"'):page.index('id="inspection"')]
    assert re.search(r'imdb<br><code>s3://d/imdb</code> @ <code>v1</code></th> <td class="baseline">used</td><td><span class="st st-removed">removed', datasets)
    assert re.search(r'@ <code>v2</code></th> <td class="baseline"><span class="muted">—</span></td><td><span class="st st-added">added', datasets)
    # The format inspection: parameters from the safetensors headers (16 and 16 + 4).
    inspection = page[page.index('id="inspection"'):]
    assert re.search(r'data-inspection="Parameters">.*?>16</td>.*?>20 <span class="delta neutral">\+4</span>', inspection)
    assert re.search(r'data-inspection="Dtypes">.*?>F32</td>.*?changed-cell">F16, F32</td>', inspection)
    # Chart data for the script.
    charts = chart_payload(response)
    assert [c["label"] for c in charts["columns"]] == ["sentiment v1", "sentiment v2"]
    assert {m["name"]: m["values"] for m in charts["metrics"]} == {"accuracy": [0.9, 0.93], "loss": [0.3, 0.35]}
    assert charts["history"]["default"] == "accuracy"
    assert [(p["number"], p["stage"], p["chosen"]) for p in charts["history"]["points"]] == [(1, "production", True), (2, "draft", True), (3, "draft", False)]
    assert [m["label"] for m in charts["history"]["markers"]] == ["v1 to production"]
    assert '<script src="/static/vendor/chart-4.6.1.umd.min.js">' in page and '<script src="/static/js/compare.js">' in page


def test_a_metric_without_a_quality_rule_is_never_coloured(web_for, owner, model, three_versions):
    page = text_of(web_for(owner).get(compare_url("sentiment:1", "sentiment:2")))
    assert page.count('class="delta better"') == page.count('class="delta worse"') == 0
    assert '<span class="delta neutral" data-verdict="neutral">+0.03' in page
    assert "no quality rule" in page


def test_baseline_production_adds_the_production_version_as_the_first_column(web_for, owner, model, three_versions):
    response = web_for(owner).get(compare_url("sentiment:2", "sentiment:3", baseline="production"))
    page = text_of(response)
    assert [c["label"] for c in chart_payload(response)["columns"]] == ["sentiment v1", "sentiment v2", "sentiment v3"]
    assert "sentiment v1 is in production and was added as the baseline." in page
    assert "deltas against sentiment v1, the production version" in page
    # The switch links name what was asked for, not the added column.
    assert 'href="?v=sentiment%3A2&amp;v=sentiment%3A3&amp;baseline=first"' in page
    # With the review page's link (the candidate alone), production makes the second column.
    response = web_for(owner).get(compare_url("sentiment:3", baseline="production"))
    assert response.status_code == 200 and "compare-problem" not in text_of(response)
    assert [c["label"] for c in chart_payload(response)["columns"]] == ["sentiment v1", "sentiment v3"]


def test_baseline_production_uses_a_chosen_production_version_where_it_stands(web_for, owner, model, three_versions):
    response = web_for(owner).get(compare_url("sentiment:2", "sentiment:1", baseline="production"))
    charts = chart_payload(response)
    assert [c["label"] for c in charts["columns"]] == ["sentiment v2", "sentiment v1"] and charts["baseline"] == 1
    accuracy = next(m for m in charts["metrics"] if m["name"] == "accuracy")
    assert accuracy["verdicts"] == ["neutral", None]


def test_baseline_production_without_a_production_version_says_so_and_uses_the_first(web_for, owner):
    other = model_create(name="fresh", actor=owner)
    register_version(other, owner, metrics={"acc": 0.1})
    register_version(other, owner, metrics={"acc": 0.2})
    page = text_of(web_for(owner).get(compare_url("fresh:1", "fresh:2", baseline="production")))
    assert "fresh has no version in production; deltas are against the first version." in page
    assert "deltas against fresh v1, the first version" in page


def test_versions_of_different_models_compare_where_metric_names_match(web_for, owner, model, three_versions):
    other = model_create(name="distil", actor=owner)
    register_version(other, owner, metrics={"accuracy": 0.80, "latency_ms": 12.0})
    response = web_for(owner).get(compare_url("sentiment:2", "distil:1"))
    metrics = {m["name"]: m["values"] for m in chart_payload(response)["metrics"]}
    assert metrics == {"accuracy": [0.93, 0.8], "latency_ms": [None, 12.0], "loss": [0.35, None]}
    assert chart_payload(response)["history"]["model"] == "sentiment"


def test_a_version_the_user_cannot_view_is_counted_but_never_named(web_for, owner, outsider, model, three_versions):
    secret = model_create(name="outsider-model", actor=outsider)
    register_version(secret, outsider, metrics={"accuracy": 0.5}, hyperparameters={"lr": 0.5})
    register_version(secret, outsider, metrics={"accuracy": 0.6}, hyperparameters={"lr": 0.6})
    response = web_for(outsider).get(compare_url("outsider-model:1", "sentiment:2", "outsider-model:2", "sentiment:99"))
    assert response.status_code == 200
    page = text_of(response)
    assert "2 versions are unknown or not visible to you." in page
    assert "sentiment" not in page  # not in a column, a link, the chart data or the history
    assert "0.93" not in page and "0.002" not in page
    assert [c["label"] for c in chart_payload(response)["columns"]] == ["outsider-model v1", "outsider-model v2"]
    assert 'href="?v=outsider-model%3A1&amp;v=outsider-model%3A2&amp;baseline=production"' in page


def test_an_outsider_sees_only_a_count_and_a_clear_message(web_for, outsider, model, three_versions):
    response = web_for(outsider).get(compare_url("sentiment:1", "sentiment:2", baseline="production"))
    assert response.status_code == 200
    page = text_of(response)
    assert "2 versions are unknown or not visible to you." in page
    assert "Choose at least two versions to compare" in page
    assert "sentiment" not in page and "compare-data" not in page and "chart-4.6.1" not in page


def test_a_reviewer_with_view_permission_compares_like_the_owner(web_for, reviewer, model, three_versions):
    response = web_for(reviewer).get(compare_url("sentiment:1", "sentiment:3"))
    assert response.status_code == 200 and "unknown or not visible" not in text_of(response)


def test_unknown_malformed_and_too_few_versions_get_clear_messages(web_for, owner, model, three_versions):
    client = web_for(owner)
    page = text_of(client.get(compare_url("sentiment:1", "sentiment:40")))
    assert "1 version is unknown or not visible to you." in page and "Choose at least two versions to compare" in page
    page = text_of(client.get(compare_url("sentiment:1", "sentiment", "sentiment:x")))
    assert "2 versions are unknown or not visible to you." in page
    page = text_of(client.get("/compare/"))
    assert "Choose at least two versions to compare" in page and "unknown" not in page
    # The same version twice is one column, not a comparison.
    assert "Choose at least two" in text_of(client.get(compare_url("sentiment:1", "sentiment:1")))


def test_more_than_ten_versions_are_refused(web_for, owner, model):
    response = web_for(owner).get(compare_url(*[f"sentiment:{n}" for n in range(1, 12)]))
    assert response.status_code == 400
    assert "Compare at most 10 versions at a time; this link names 11." in text_of(response)


def test_the_page_needs_a_login(client, model):
    response = client.get(compare_url("sentiment:1", "sentiment:2"))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_query_count_does_not_grow_with_the_versions_compared(web_for, owner, model):
    validation_policy_update(model=model, actor=owner, required_file_patterns=[], pinned_baseline=None, rules=[{"metric": "acc", "direction": "higher"}])
    other = model_create(name="other", actor=owner)
    for index in range(8):
        register_version(model, owner, metrics={"acc": index / 10, "f1": 0.5}, hyperparameters={"lr": index},
                         files={"config.json": b"{}", f"w{index}.bin": bytes([index])},
                         datasets=[{"name": "d", "uri": f"s3://d/{index}", "role": "training"}])
        register_version(other, owner, metrics={"acc": index / 10})
    client = web_for(owner)
    two = queries_for(client, compare_url("sentiment:1", "sentiment:2"))
    eight = queries_for(client, compare_url(*[f"sentiment:{n}" for n in range(1, 7)], "other:1", "other:2", baseline="production"))
    assert eight == two


def test_the_versions_table_has_tick_boxes_and_a_compare_button(web_for, owner, model, three_versions):
    page = text_of(web_for(owner).get(f"/models/{model.name}/"))
    assert '<form method="get" action="/compare/" id="compare-form"' in page
    for number in (1, 2, 3):
        assert f'<input type="checkbox" name="v" value="sentiment:{number}" form="compare-form"' in page


def test_the_review_page_links_to_a_comparison_with_production(web_for, owner, reviewer, model, three_versions):
    from apps.approvals.services import transition_request_create

    v2 = three_versions[1]
    transition_request_create(version=v2, to_stage="staging", actor=owner, justification="try")
    request = transition_request_create(version=v2, to_stage="production", actor=owner, justification="better accuracy")
    page = text_of(web_for(reviewer).get(f"/approvals/{request.pk}/"))
    assert 'id="compare-with-production" href="/compare/?v=sentiment:2&amp;baseline=production"' in page
