"""The approvals inbox decides faster: validation, the quality gate against today's production, unsafe findings, age,
requester and justification per row; filters (mine to review, my requests, model, stage); query count flat. The review
page shows parents, the training run and what changed in the data against production."""

import pickle

import pytest

from apps.approvals.services import approval_policy_update, transition_request_create
from apps.models.permissions import Action
from apps.models.services import model_create, model_permission_grant
from apps.validation.services import validation_policy_update, validation_run
from tests.factories import promote, register_version
from tests.helpers import RunsSystem, pending_production_request, queries_for

pytestmark = pytest.mark.django_db

IMDB_TEST = {"name": "imdb-reviews-test", "uri": "s3://data/imdb/test", "digest": "v1", "role": "evaluation"}
IMDB_TRAIN = {"name": "imdb-reviews-train", "uri": "s3://data/imdb/train", "digest": "v1", "role": "training"}


def row_of(page: str, request_id: int) -> str:
    start = page.index(f'data-request="{request_id}"')
    return page[start:page.index("</tr>", start)]


def test_each_row_shows_validation_the_gate_against_production_unsafe_age_requester_and_justification(web_for, owner, reviewer, model):
    validation_policy_update(model=model, actor=owner, required_file_patterns=[], pinned_baseline=None, rules=[{"metric": "accuracy", "direction": "higher"}])
    promote(register_version(model, owner, metrics={"accuracy": 0.90}), requester=owner, approver=reviewer)
    better = pending_production_request(model, owner, metrics={"accuracy": 0.93})
    worse = transition_request_create(
        version=promote_to_staging(model, owner, metrics={"accuracy": 0.85}), to_stage="production", actor=owner,
        justification="Smaller and faster; " + "accuracy is close enough. " * 10,
    )
    approval_policy_update(model=model, actor=owner, policies={"staging": (1, None), "production": (1, None)})
    unsafe_version = register_version(model, owner, files={"model.pkl": pickle.dumps(RunsSystem())})
    unsafe = transition_request_create(version=unsafe_version, to_stage="staging", actor=owner, justification="try it")
    validation_run(job_id=unsafe_version.validation_jobs.get().pk)
    page = web_for(reviewer).get("/approvals/").content.decode()
    assert 'data-gate="passed"' in row_of(page, better.pk) and "vs v1" in row_of(page, better.pk)
    assert 'data-gate="failed"' in row_of(page, worse.pk)
    assert "accuracy is close enough" in row_of(page, worse.pk) and "…" in row_of(page, worse.pk)  # a preview, not the whole text
    assert 'data-unsafe="true"' in row_of(page, unsafe.pk) and "not gated" in row_of(page, unsafe.pk)
    assert "job-passed" in row_of(page, better.pk) and "owner" in row_of(page, better.pk) and "minute" in row_of(page, better.pk)


def promote_to_staging(model, owner, **metadata):
    version = register_version(model, owner, **metadata)
    validation_run(job_id=version.validation_jobs.get().pk)
    transition_request_create(version=version, to_stage="staging", actor=owner, justification="ready")
    return version


def test_filters_mine_to_review_my_requests_model_and_stage(web_for, owner, reviewer, model):
    other = model_create(name="ranker", actor=owner)
    for action in (Action.VIEW, Action.APPROVE_TRANSITION, Action.REQUEST_TRANSITION, Action.REGISTER):
        model_permission_grant(model=other, actor=owner, action=action, user=reviewer)
    approval_policy_update(model=other, actor=owner, policies={"staging": (1, None), "production": (1, None)})
    on_sentiment = pending_production_request(model, owner)
    on_ranker = transition_request_create(version=register_version(other, owner), to_stage="staging", actor=owner, justification="look")
    mine = transition_request_create(version=register_version(other, reviewer), to_stage="staging", actor=reviewer, justification="mine")
    client = web_for(reviewer)
    review = client.get("/approvals/").content.decode()
    assert f'data-request="{on_sentiment.pk}"' in review and f'data-request="{on_ranker.pk}"' in review and f'data-request="{mine.pk}"' not in review
    assert f'data-request="{mine.pk}"' in client.get("/approvals/?view=mine").content.decode()
    by_model = client.get("/approvals/?model=ranker").content.decode()
    assert f'data-request="{on_ranker.pk}"' in by_model and f'data-request="{on_sentiment.pk}"' not in by_model
    by_stage = client.get("/approvals/?stage=production").content.decode()
    assert f'data-request="{on_sentiment.pk}"' in by_stage and f'data-request="{on_ranker.pk}"' not in by_stage
    newest_first = client.get("/approvals/?sort=-requested").content.decode()
    assert newest_first.index(f'data-request="{on_ranker.pk}"') < newest_first.index(f'data-request="{on_sentiment.pk}"')
    assert client.get("/approvals/?stage=prod").status_code == 400
    assert client.get("/approvals/?view=everyone").status_code == 400
    assert client.get("/approvals/?sort=size").status_code == 400
    assert client.get("/approvals/?sort=metric.accuracy").status_code == 400


def test_the_inbox_query_count_does_not_grow_with_requests_models_or_gates(web_for, owner, reviewer, model):
    validation_policy_update(model=model, actor=owner, required_file_patterns=[], pinned_baseline=None, rules=[{"metric": "accuracy", "direction": "higher"}])
    promote(register_version(model, owner, metrics={"accuracy": 0.9}), requester=owner, approver=reviewer)
    client = web_for(reviewer)
    pending_production_request(model, owner, metrics={"accuracy": 0.95})
    few = queries_for(client, "/approvals/?stage=production&sort=model")
    for index in range(2):
        other = model_create(name=f"m{index}", actor=owner)
        for action in (Action.VIEW, Action.APPROVE_TRANSITION):
            model_permission_grant(model=other, actor=owner, action=action, user=reviewer)
        pending_production_request(model, owner, metrics={"accuracy": 0.8 + index / 100})
        pending_production_request(other, owner, metrics={"accuracy": 0.9})
    assert queries_for(client, "/approvals/?stage=production&sort=model") == few


def test_the_review_page_shows_parents_the_run_and_flags_a_missing_evaluation_dataset(web_for, owner, reviewer, model):
    base = model_create(name="bert-base", actor=owner)
    register_version(base, owner)
    secret = model_create(name="secret-base", actor=owner)
    register_version(secret, owner)
    promote(register_version(model, owner, datasets=[IMDB_TEST, IMDB_TRAIN]), requester=owner, approver=reviewer)
    model_permission_grant(model=base, actor=owner, action=Action.VIEW, user=reviewer)
    request = pending_production_request(
        model, owner, datasets=[IMDB_TRAIN | {"digest": "v2"}],
        run={"id": "mlflow-7f3a", "url": "https://mlflow.example.com/#/runs/7f3a"},
        parents=[{"model": "bert-base", "version": 1, "relation": "fine_tuned_from"}, {"model": "secret-base", "version": 1, "relation": "distilled_from"}],
    )
    page = web_for(reviewer).get(f"/approvals/{request.pk}/").content.decode()
    changes = page[page.index('id="data-changes"'):page.index("</div>", page.index('id="data-changes"'))]
    assert "records no evaluation dataset; production (v1) was evaluated on imdb-reviews-test" in changes
    assert "imdb-reviews-train changed: v1 in production, v2 here" in changes
    assert "fine-tuned from" in page and "bert-base v1" in page and "secret-base" not in page and "1 parent on models you cannot view" in page
    assert "mlflow-7f3a" in page and 'href="https://mlflow.example.com/#/runs/7f3a"' in page
