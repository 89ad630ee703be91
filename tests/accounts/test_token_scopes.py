"""API token scopes (read, register, full), expiry and model limits, through the API, the tokens page and the command."""

import json
import re
from datetime import timedelta

import pytest
from django.contrib.admindocs.views import extract_views_from_urlpatterns
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken, TokenScope
from apps.accounts.services import api_token_create
from apps.approvals.models import TransitionRequest
from apps.approvals.services import transition_request_create
from apps.audit.models import AuditEntry
from apps.lineage.models import Dataset
from apps.lineage.services import dataset_register
from apps.models.models import RegisteredModel
from apps.models.permissions import Action
from apps.models.services import model_create, model_permission_grant
from apps.validation.services import validation_run
from apps.versions.models import Deployment, ModelVersion

from ..factories import register_version, upload

pytestmark = pytest.mark.django_db


def _api(user, **options) -> APIClient:
    _, secret = api_token_create(user=user, name="test", **options)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return api


def _register(api, name: str):
    return api.post(
        f"/api/v1/models/{name}/versions/",
        {"files": [upload("config.json", b'{"hidden_size": 4}')], "metadata": json.dumps({"flavor": "pytorch"})},
        format="multipart",
    )


@pytest.fixture
def pending(model, owner, reviewer):
    """A version in staging with a pending request for production, which `reviewer` may approve."""
    version = register_version(model, owner)
    validation_run(job_id=version.validation_jobs.get().pk)
    transition_request_create(version=version, to_stage="staging", actor=owner, justification="try it")
    return transition_request_create(version=version, to_stage="production", actor=owner, justification="ship it")


def test_a_read_only_token_reads_but_every_write_is_refused_naming_the_scope(owner, model, pending):
    api = _api(owner, scope=TokenScope.READ)
    number = pending.version.number
    assert api.get(f"/api/v1/models/{model.name}/").status_code == 200
    assert api.get(f"/api/v1/models/{model.name}/versions/{number}/").status_code == 200
    assert api.get(f"/api/v1/models/{model.name}/stages/staging/").json()["number"] == number

    registration = _register(api, model.name)
    assert registration.status_code == 403
    assert "'read' scope" in registration.json()["error"]["message"]
    assert "'register' or 'full'" in registration.json()["error"]["message"]
    assert api.post("/api/v1/models/", {"name": "another"}, format="json").status_code == 403
    assert api.post("/api/v1/datasets/", {"name": "imdb", "uri": "s3://data/imdb"}, format="json").status_code == 403
    assert api.put(f"/api/v1/models/{model.name}/deployments/prod/", {"version": number}, format="json").status_code == 403
    assert api.post(f"/api/v1/transition-requests/{pending.pk}/withdraw/").status_code == 403
    assert ModelVersion.objects.filter(model=model).count() == 1
    assert not RegisteredModel.objects.filter(name="another").exists() and not Dataset.objects.filter(name="imdb").exists()
    pending.refresh_from_db()
    assert pending.status == "pending"


def test_a_reviewers_read_only_token_cannot_approve_what_the_reviewer_may(reviewer, pending):
    response = _api(reviewer).post(f"/api/v1/transition-requests/{pending.pk}/approve/", {"comment": "fine"}, format="json")
    assert response.status_code == 403
    assert "'read' scope" in response.json()["error"]["message"]
    pending.refresh_from_db()
    assert pending.status == "pending"
    # the reviewer's full token may
    approved = _api(reviewer, scope=TokenScope.FULL).post(f"/api/v1/transition-requests/{pending.pk}/approve/", {"comment": "fine"}, format="json")
    assert approved.status_code == 200
    pending.refresh_from_db()
    assert pending.status != "pending"


def test_a_register_token_registers_versions_datasets_and_deployments_but_decides_nothing(owner, reviewer, model, pending):
    api = _api(owner, scope=TokenScope.REGISTER)
    registered = _register(api, model.name)
    assert registered.status_code == 201
    assert api.post("/api/v1/datasets/", {"name": "imdb", "uri": "s3://data/imdb"}, format="json").status_code == 201
    assert api.put(f"/api/v1/models/{model.name}/deployments/prod/", {"version": 1}, format="json").status_code == 200
    refused = [
        api.post("/api/v1/models/", {"name": "another"}, format="json"),
        api.post(f"/api/v1/models/{model.name}/versions/{registered.json()['number']}/transitions/", {"to_stage": "staging"}, format="json"),
        api.post(f"/api/v1/transition-requests/{pending.pk}/withdraw/"),
        api.post(f"/api/v1/models/{model.name}/rollback/", {"reason": "bad"}, format="json"),
    ]
    assert [response.status_code for response in refused] == [403] * 4
    assert all("'register' scope" in response.json()["error"]["message"] for response in refused)
    approve = _api(reviewer, scope=TokenScope.REGISTER).post(f"/api/v1/transition-requests/{pending.pk}/approve/", format="json")
    assert approve.status_code == 403


def test_a_full_token_does_what_its_user_may_and_no_more(owner, outsider, model):
    api = _api(owner, scope=TokenScope.FULL)
    assert api.post("/api/v1/models/", {"name": "another"}, format="json").status_code == 201
    assert _register(api, model.name).status_code == 201
    assert _register(_api(outsider, scope=TokenScope.FULL), model.name).status_code == 404


def test_a_superusers_read_only_token_is_still_read_only(make_user, model):
    admin = make_user("admin", is_superuser=True)
    api = _api(admin)
    assert api.get(f"/api/v1/models/{model.name}/").status_code == 200
    assert _register(api, model.name).status_code == 403
    assert api.post("/api/v1/models/", {"name": "another"}, format="json").status_code == 403


def test_a_token_limited_to_chosen_models_sees_no_other(owner, model, pending):
    other = model_create(name="churn", actor=owner)
    register_version(other, owner)
    api = _api(owner, scope=TokenScope.FULL, models=[other])
    assert api.get(f"/api/v1/models/{model.name}/").status_code == 404
    assert api.get(f"/api/v1/models/{model.name}/versions/").status_code == 404
    assert api.get(f"/api/v1/models/{model.name}/stages/staging/").status_code == 404
    assert api.get(f"/api/v1/transition-requests/{pending.pk}/").status_code == 404
    assert _register(api, model.name).status_code == 404
    assert [m["name"] for m in api.get("/api/v1/models/").json()["results"]] == ["churn"]
    assert api.get("/api/v1/models/churn/versions/1/").status_code == 200
    assert _register(api, "churn").status_code == 201
    # the owner's other token, not limited, still sees both
    assert len(_api(owner).get("/api/v1/models/").json()["results"]) == 2


def test_a_limited_token_whose_models_are_all_deleted_sees_nothing(owner, model):
    other = model_create(name="churn", actor=owner)
    api = _api(owner, models=[other])
    other.delete()
    assert api.get("/api/v1/models/").json()["results"] == []
    assert api.get(f"/api/v1/models/{model.name}/").status_code == 404


def test_an_auditors_limited_token_reads_only_the_audit_entries_of_its_models(make_user, owner, model):
    auditor = make_user("auditor", is_superuser=True)
    other = model_create(name="churn", actor=owner)
    entries = _api(auditor, models=[other]).get("/api/v1/audit/").json()["results"]
    assert entries and {entry["model"] for entry in entries} == {"churn"}
    assert {"sentiment", "churn"} <= {entry["model"] for entry in _api(auditor).get("/api/v1/audit/").json()["results"]}


def test_an_expired_token_is_a_401_saying_when_it_expired_and_what_to_do(owner, model):
    expiry = timezone.now() + timedelta(days=1)
    api = _api(owner, expires_at=expiry)
    assert api.get("/api/v1/models/").status_code == 200
    token = ApiToken.objects.get()
    token.expires_at = timezone.now() - timedelta(minutes=1)  # as if the day had passed
    token.save()
    response = api.get("/api/v1/models/")
    assert response.status_code == 401
    message = response.json()["error"]["message"]
    assert re.search(r"expired on \d{4}-\d\d-\d\d \d\d:\d\d UTC", message) and "/accounts/tokens/" in message


def test_a_token_cannot_be_created_already_expired(owner):
    with pytest.raises(Exception, match="future"):
        api_token_create(user=owner, name="old", expires_at=timezone.now() - timedelta(seconds=1))


def test_new_tokens_default_to_read_only(owner):
    token, _ = api_token_create(user=owner, name="pipeline")
    assert token.scope == TokenScope.READ and token.expires_at is None and not token.limited_to_models


@override_settings(API_TOKEN_CACHE_SECONDS=0)  # every request looks its token up
def test_a_limited_token_costs_one_more_query_and_an_unlimited_one_none(owner, model):
    unlimited, limited = _api(owner), _api(owner, models=[model])
    unlimited.get("/api/v1/models/")  # the first use writes the last-used time
    limited.get("/api/v1/models/")

    def count(api) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert api.get(f"/api/v1/models/{model.name}/").status_code == 200
        return len(ctx.captured_queries)

    with CaptureQueriesContext(connection) as ctx:
        unlimited.get(f"/api/v1/models/{model.name}/")
    assert sum("accounts_apitoken" in query["sql"] for query in ctx.captured_queries) == 1  # the one token look-up
    assert count(limited) == count(unlimited) + 1


# Every API URL, every writing method, with a superuser's read-only token: refused, and nothing written.

def _path(route: str, values: dict) -> str:
    route = route.lstrip("^").rstrip("$").replace("\\Z", "").replace(".*", "anything")
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda match: str(values.get(match.group(1), "x")), route)


def _counts() -> list[int]:
    return [table.objects.count() for table in (AuditEntry, RegisteredModel, ModelVersion, Dataset, TransitionRequest, Deployment, ApiToken)]


READS_SENT_AS_POST = {"/api/2.0/mlflow/registered-models/get-latest-versions"}  # MLflow's client reads this one with a POST


def test_no_write_through_any_api_url_succeeds_with_a_read_only_token(make_user, owner, model, pending):
    admin = make_user("admin", is_superuser=True)
    dataset, _ = dataset_register(actor=owner, name="imdb", uri="s3://data/imdb")
    number = pending.version.number
    body = {
        "name": "another", "uri": "s3://data/other", "description": "d", "tags": ["a"], "to_stage": "production",
        "comment": "c", "reason": "r", "version": number, "to_version": number,
    }
    api = _api(admin, scope=TokenScope.READ)
    before = _counts()
    routes = sorted({route for _, route, _, _ in extract_views_from_urlpatterns(get_resolver().url_patterns) if route.startswith("api/")})
    assert len(routes) >= 20
    refused = set()
    for route in routes:
        pk = dataset.pk if "datasets/" in route else pending.pk
        path = _path(route, {"name": model.name, "number": number, "pk": pk, "stage": "staging", "environment": "prod", "path": "config.json", "rest": "anything", "session_id": "0b7e0d3c-5d7e-4a5e-9b55-1f0e7f2d6a11", "index": 0})
        catch_all = "anything" in path
        if path in READS_SENT_AS_POST:
            continue
        for method in ("post", "put", "patch", "delete"):
            response = getattr(api, method)(path, body if "datasets/" not in route else {"name": "x", "uri": "s3://x"}, format="json")
            if catch_all:
                assert response.status_code == 404, (method, path)
                continue
            assert response.status_code in (403, 405), (method, path, response.status_code, response.content[:300])
            if response.status_code == 403:
                payload = response.json()
                message = payload["message"] if route.startswith("api/2.0/") else payload["error"]["message"]  # MLflow's paths answer in MLflow's shape
                assert "'read' scope" in message, (method, path)
                refused.add(f"{method.upper()} {route.removeprefix('api/v1/')}")
    assert _counts() == before
    assert refused >= {  # every write the API had when this was written reached its check and was refused there
        "POST datasets/", "POST models/", "POST models/<str:name>/versions/", "POST models/<str:name>/versions/<int:number>/transitions/",
        "POST models/<str:name>/rollback/", "PUT models/<str:name>/deployments/<str:environment>/",
        "POST transition-requests/<int:pk>/approve/", "POST transition-requests/<int:pk>/reject/",
        "POST transition-requests/<int:pk>/withdraw/", "POST transition-requests/<int:pk>/override-quality/",
    }


# The tokens page

def test_the_tokens_page_creates_a_token_with_scope_expiry_and_models_and_lists_them(web_for, owner, model, client):
    other = model_create(name="churn", actor=owner)
    web = web_for(owner)
    page = web.get("/accounts/tokens/").content.decode()
    assert 'value="read" checked' in page.replace("\n", " ") or re.search(r'value="read"[^>]*checked', page)
    day = (timezone.now() + timedelta(days=30)).date()
    created = web.post("/accounts/tokens/", {"name": "deployer", "scope": "register", "expires_on": day.isoformat(), "models": ["churn"]})
    assert created.status_code == 200 and created.context["new_secret"]
    token = ApiToken.objects.get(user=owner)
    assert (token.scope, token.expires_at.date(), list(token.allowed_models.all())) == ("register", day, [other])
    row = re.search(rf'<tr class="token" data-prefix="{token.prefix}">.*?</tr>', web.get("/accounts/tokens/").content.decode(), re.S).group(0)
    assert "Register versions" in row and "churn" in row and "sentiment" not in row and f"{day:%Y-%m-%d} 00:00 UTC" in row
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {created.context['new_secret']}")
    assert _register(api, "churn").status_code == 201
    assert _register(api, model.name).status_code == 404


def test_the_tokens_page_defaults_to_read_only_for_every_model(web_for, owner, model):
    web_for(owner).post("/accounts/tokens/", {"name": "pipeline", "scope": "read"})
    token = ApiToken.objects.get(user=owner)
    assert token.scope == "read" and not token.limited_to_models and token.expires_at is None
    row = web_for(owner).get("/accounts/tokens/").content.decode()
    assert "Read only" in row and "all you may see" in row and "never" in row


def test_the_tokens_page_refuses_a_past_expiry_an_unknown_scope_and_a_model_the_user_cannot_see(web_for, owner, outsider, model):
    web = web_for(outsider)
    yesterday = (timezone.now() - timedelta(days=1)).date().isoformat()
    response = web.post("/accounts/tokens/", {"name": "x", "scope": "admin", "expires_on": yesterday, "models": [model.name]})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert set(errors) == {"scope", "expires_on", "models"}
    assert "after today" in errors["expires_on"][0]
    assert not ApiToken.objects.exists()


# The management command

def test_the_command_creates_a_scoped_expiring_limited_token_and_lists_it(owner, model, capsys):
    other = model_create(name="churn", actor=owner)
    day = (timezone.now() + timedelta(days=7)).date().isoformat()
    call_command("api_token", "create", "owner", "--name", "deploy", "--scope", "register", "--expires-on", day, "--model", "churn")
    secret = capsys.readouterr().out.strip()
    token = ApiToken.objects.get(user=owner)
    assert (token.prefix, token.scope, list(token.allowed_models.all())) == (secret[:10], "register", [other])
    call_command("api_token", "list", "owner")
    assert f"{token.prefix}  deploy  active  register  expires {day} 00:00 UTC  churn" in capsys.readouterr().out
    call_command("api_token", "create", "owner")
    capsys.readouterr()
    assert ApiToken.objects.filter(user=owner, name="cli").get().scope == "read"


def test_the_command_refuses_a_model_the_user_cannot_see_and_a_bad_date(owner, outsider, model):
    with pytest.raises(CommandError, match="may not see or has no model named sentiment"):
        call_command("api_token", "create", "outsider", "--model", "sentiment")
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("api_token", "create", "owner", "--expires-on", "next week")
    with pytest.raises(CommandError, match="future"):
        call_command("api_token", "create", "owner", "--expires-on", "2000-01-01")
    assert not ApiToken.objects.exists()


# The migration

@pytest.mark.django_db(transaction=True)
def test_tokens_made_before_scopes_migrate_to_full_scope():
    executor = MigrationExecutor(connection)
    executor.migrate([("accounts", "0004_api_token_scope_expiry_models")])
    apps = executor.loader.project_state([("accounts", "0004_api_token_scope_expiry_models")]).apps
    user = apps.get_model("auth", "User").objects.create(username="old-timer")
    apps.get_model("accounts", "ApiToken").objects.create(user_id=user.pk, name="old", prefix="mr_old", digest="0" * 64)
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert ApiToken.objects.get(prefix="mr_old").scope == TokenScope.FULL
    assert get_user_model().objects.filter(username="old-timer").exists()


def test_granting_a_user_more_widens_a_scoped_token_only_within_its_scope(owner, outsider, model):
    api = _api(outsider, scope=TokenScope.REGISTER)
    assert api.get(f"/api/v1/models/{model.name}/").status_code == 404
    model_permission_grant(model=model, actor=owner, action=Action.VIEW, user=outsider)
    model_permission_grant(model=model, actor=owner, action=Action.REGISTER, user=outsider)
    model_permission_grant(model=model, actor=owner, action=Action.MANAGE, user=outsider)
    assert _register(api, model.name).status_code == 201
    assert api.post(f"/api/v1/models/{model.name}/rollback/", {"reason": "x"}, format="json").status_code == 403
