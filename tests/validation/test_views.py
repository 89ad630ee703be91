import pickle

import pytest

from apps.validation.models import QualityRule, ValidationJob
from apps.validation.services import validation_run
from tests.factories import register_version
from tests.helpers import RunsSystem

pytestmark = pytest.mark.django_db


def _validated(model, owner, **kwargs):
    version = register_version(model, owner, **kwargs)
    validation_run(job_id=version.validation_jobs.get().pk)
    return version


def test_the_version_page_shows_the_report_and_stops_polling_when_done(web_for, owner, model):
    _validated(model, owner, files={"model.pkl": pickle.dumps(RunsSystem(), protocol=2)}, flavor="sklearn")
    page = web_for(owner).get(f"/models/{model.name}/versions/1/").content.decode()
    assert 'data-status="failed"' in page and "unsafe_serialization" in page and "cannot leave draft" in page
    assert "hx-trigger" not in page
    assert "Re-run" in page


def test_an_unfinished_job_polls_its_panel(web_for, owner, model):
    register_version(model, owner)
    client = web_for(owner)
    page = client.get(f"/models/{model.name}/versions/1/").content.decode()
    assert 'hx-trigger="every 2s"' in page and f'hx-get="/models/{model.name}/versions/1/validation/"' in page
    fragment = client.get(f"/models/{model.name}/versions/1/validation/").content.decode()
    assert fragment.lstrip().startswith("{#") is False and 'id="validation-panel"' in fragment and "Waiting for a worker" in fragment


def test_the_model_page_shows_a_badge_per_version(web_for, owner, model):
    _validated(model, owner)
    register_version(model, owner)
    page = web_for(owner).get(f"/models/{model.name}/").content.decode()
    assert 'class="badge job-passed"' in page and 'class="badge job-queued"' in page


def test_a_manager_reruns_a_job_and_a_viewer_cannot(web_for, owner, reviewer, model):
    version = _validated(model, owner)
    assert web_for(reviewer).post(f"/models/{model.name}/versions/1/validation/rerun/").status_code == 403
    response = web_for(owner).post(f"/models/{model.name}/versions/1/validation/rerun/")
    assert response.status_code == 302
    assert list(ValidationJob.objects.filter(version=version).values_list("status", flat=True)) == ["queued", "passed"]


def test_outsiders_get_404_for_panels_reruns_and_policies(web_for, outsider, owner, model):
    register_version(model, owner)
    client = web_for(outsider)
    assert client.get(f"/models/{model.name}/versions/1/validation/").status_code == 404
    assert client.post(f"/models/{model.name}/versions/1/validation/rerun/").status_code == 404
    assert client.get(f"/models/{model.name}/policy/").status_code == 404


def test_a_manager_edits_the_quality_rules_in_the_ui(web_for, owner, reviewer, model):
    register_version(model, owner, metrics={"acc": 0.9})
    client = web_for(owner)
    assert client.get(f"/models/{model.name}/policy/").status_code == 200
    data = {
        "required_file_patterns": "config.json\ntokenizer/*.json",
        "pinned_baseline": "1",
        "rules-TOTAL_FORMS": "2", "rules-INITIAL_FORMS": "0",
        "rules-0-metric": "acc", "rules-0-direction": "higher", "rules-0-allowed_regression": "0.01", "rules-0-regression_kind": "absolute",
        "rules-1-metric": "", "rules-1-direction": "higher", "rules-1-allowed_regression": "0", "rules-1-regression_kind": "absolute",
    }
    response = client.post(f"/models/{model.name}/policy/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    rule = QualityRule.objects.get()
    assert (rule.metric, rule.allowed_regression, rule.policy.pinned_baseline.number) == ("acc", 0.01, 1)
    assert rule.policy.required_file_patterns == ["config.json", "tokenizer/*.json"]
    assert web_for(reviewer).get(f"/models/{model.name}/policy/").status_code == 403


def test_bad_rules_are_explained(web_for, owner, model):
    data = {
        "required_file_patterns": "../escape", "pinned_baseline": "",
        "rules-TOTAL_FORMS": "1", "rules-INITIAL_FORMS": "0",
        "rules-0-metric": "acc", "rules-0-direction": "higher", "rules-0-allowed_regression": "-1", "rules-0-regression_kind": "absolute",
        "rules-0-min_value": "2", "rules-0-max_value": "1",
    }
    page = web_for(owner).post(f"/models/{model.name}/policy/", data)
    text = page.content.decode()
    assert page.status_code == 400 and "without &#x27;..&#x27;" in text and "greater than or equal to 0" in text
    assert not QualityRule.objects.exists()
