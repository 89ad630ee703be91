"""The comparison page in a real browser: Chart.js (served from static/vendor) draws the bar charts and the metric
history; the versions table's tick boxes and the review page's link lead to it."""

import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.approvals.services import transition_request_create
from apps.models.permissions import Action
from apps.models.services import model_create, model_permission_grant
from apps.validation.services import validation_policy_update, validation_run
from apps.versions.models import ModelVersion
from tests.factories import promote, register_version
from tests.helpers import safetensors

pytestmark = pytest.mark.browser
PASSWORD = "browser-compare-pass-3307"
# Set COMPARE_SCREENSHOT_DIR to keep the screenshot for a look; by default it goes to the test's tmp_path.
SCREENSHOT_DIR = os.environ.get("COMPARE_SCREENSHOT_DIR", "")


def log_in(page, base_url: str, username: str) -> None:
    page.context.clear_cookies()
    page.goto(base_url + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base_url + "/")


def screenshots(tmp_path: Path) -> Path:
    folder = Path(SCREENSHOT_DIR) if SCREENSHOT_DIR else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chart_points(page, selector: str) -> int:
    """How many data points the Chart.js chart drawn on `selector`'s canvas holds (-1: no chart there)."""
    return page.evaluate(
        "(selector) => { const chart = Chart.getChart(document.querySelector(selector)); return chart ? chart.data.datasets[0].data.length : -1; }",
        selector,
    )


def test_three_versions_side_by_side_with_charts(live_server, transactional_db, page, tmp_path):
    users = {name: get_user_model().objects.create_user(username=name, password=PASSWORD) for name in ("lead", "scientist")}
    model = model_create(name="churn", actor=users["lead"], description="Churn model")
    for action in (Action.VIEW, Action.REGISTER, Action.REQUEST_TRANSITION, Action.APPROVE_TRANSITION):
        model_permission_grant(model=model, actor=users["lead"], action=action, user=users["scientist"])
    validation_policy_update(model=model, actor=users["lead"], required_file_patterns=[], pinned_baseline=None,
                             rules=[{"metric": "auc", "direction": "higher"}, {"metric": "logloss", "direction": "lower"}])
    versions = [
        register_version(model, users["scientist"], metrics=metrics, hyperparameters=params,
                         dependencies={"requirements": requirements}, files=files)
        for metrics, params, requirements, files in [
            ({"auc": 0.88, "logloss": 0.41, "recall": 0.70}, {"depth": 6, "eta": 0.3}, "xgboost==2.0.3\nnumpy==1.26.4\n",
             {"model.json": b'{"trees": 100}', "features.txt": b"age\nplan\n", "head.safetensors": safetensors({"w": ("F32", [8, 4])})}),
            ({"auc": 0.91, "logloss": 0.37, "recall": 0.74}, {"depth": 8, "eta": 0.3}, "xgboost==2.1.0\nnumpy==1.26.4\n",
             {"model.json": b'{"trees": 140}', "features.txt": b"age\nplan\n", "head.safetensors": safetensors({"w": ("F32", [8, 4]), "b": ("F16", [8])})}),
            ({"auc": 0.90, "logloss": 0.44, "recall": 0.78}, {"depth": 8, "eta": 0.1}, "xgboost==2.1.0\nnumpy==2.0.0\npandas==2.2.2\n",
             {"model.json": b'{"trees": 300}', "features.txt": b"age\nplan\ntenure\n", "calibration.json": b"{}"}),
        ]
    ]
    for days_ago, version in zip((30, 20, 10), versions):
        validation_run(job_id=version.validation_jobs.get().pk)
        # Registered weeks apart, as real versions are (test data only: created_at has no update path in the services).
        ModelVersion.objects.filter(pk=version.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    promote(versions[0], requester=users["scientist"], approver=users["lead"])
    base = live_server.url
    log_in(page, base, "lead")

    # Tick three versions in the model's versions table and press "Compare selected".
    page.goto(f"{base}/models/churn/")
    for number in (1, 2, 3):
        page.get_by_label(f"Compare v{number}").check()
    page.screenshot(path=str(screenshots(tmp_path) / "model-page.png"), full_page=True)
    page.get_by_role("button", name="Compare selected").click()
    page.wait_for_url(re.compile(r"/compare/\?"))
    asked = parse_qs(urlparse(page.url).query)["v"]
    assert sorted(asked) == ["churn:1", "churn:2", "churn:3"]

    # Open the shareable URL directly: three columns, one bar chart per metric, each with three bars.
    page.goto(f"{base}/compare/?v=churn:1&v=churn:2&v=churn:3")
    page.locator("canvas.metric-bars").first.wait_for()
    page.wait_for_function("() => typeof Chart !== 'undefined' && Chart.getChart(document.querySelector('canvas.metric-bars'))")
    assert page.locator("canvas.metric-bars").count() == 3
    assert page.evaluate("() => Chart.getChart(document.querySelector('canvas.metric-bars')).data.datasets[0].data.length === 3")
    assert page.evaluate("() => Chart.getChart(document.querySelector('canvas.metric-bars')).data.datasets[0].data") == [0.88, 0.91, 0.90]
    assert page.locator("#metrics thead th.col").count() == 3
    assert page.locator("#metrics tr[data-metric=auc] .delta.better").count() == 2
    assert page.locator("#metrics tr[data-metric=logloss] .delta.worse").count() == 1
    assert page.locator("#metrics tr[data-metric=recall] .delta.neutral").count() == 2  # no rule: no colour
    assert page.locator("#artifacts tr[data-path='calibration.json'] .st-added").count() == 1
    assert page.locator("#dependencies tr[data-package=pandas] .st-added").count() == 1
    assert page.locator("#inspection tr[data-inspection=Parameters] td").all_inner_texts() == ["32", "40 +8", "no safetensors"]

    # The history chart: every version of the model, the production pointer's change passed to the marker plugin.
    assert chart_points(page, "#history-chart") == 3
    assert page.evaluate("() => Chart.getChart(document.querySelector('#history-chart')).options.plugins.pointerChanges.markers.map(m => m.label)") == ["v1 to production"]
    assert page.locator("#history-metric").input_value() == "auc"
    page.select_option("#history-metric", "logloss")
    assert page.evaluate("() => Chart.getChart(document.querySelector('#history-chart')).data.datasets[0].data.map(p => p.y)") == [0.41, 0.37, 0.44]
    # Canvas pixels were drawn (not a blank canvas).
    assert page.evaluate(
        "() => { const c = document.querySelector('canvas.metric-bars'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " for (let i = 3; i < d.length; i += 4) { if (d[i] !== 0) return true; } return false; }"
    )
    page.wait_for_timeout(200)
    page.screenshot(path=str(screenshots(tmp_path) / "compare.png"), full_page=True)

    # The review page of a transition request links to a comparison with production.
    transition_request_create(version=versions[2], to_stage="staging", actor=users["scientist"], justification="recall +8 points")
    request = transition_request_create(version=versions[2], to_stage="production", actor=users["scientist"], justification="recall +8 points")
    page.goto(f"{base}/approvals/{request.pk}/")
    page.screenshot(path=str(screenshots(tmp_path) / "review.png"), full_page=True)
    page.get_by_role("link", name="Compare with production").click()
    page.wait_for_url(re.compile(r"/compare/\?v=churn:3&baseline=production$"))
    page.wait_for_function("() => typeof Chart !== 'undefined' && Chart.getChart(document.querySelector('canvas.metric-bars'))")
    assert page.locator("#metrics thead th.col").all_inner_texts()[0].split()[:2] == ["churn", "v1"]
    assert chart_points(page, "canvas.metric-bars") == 2
    assert "churn v1 is in production and was added as the baseline." in page.locator(".compare-note").inner_text()
    page.screenshot(path=str(screenshots(tmp_path) / "compare-with-production.png"), full_page=True)
