"""`model-registry alias ...` in a subprocess against a live server: set, get, move, a governed alias refused then
requested, history, delete."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from apps.accounts.models import TokenScope
from apps.accounts.services import api_token_create
from apps.approvals.models import TransitionRequest
from apps.approvals.services import alias_policy_update
from apps.versions.models import AliasChange, ModelAlias
from tests.factories import register_version

pytestmark = pytest.mark.django_db(transaction=True)
CLI = str(Path(sys.executable).with_name("model-registry"))


def test_the_cli_sets_gets_moves_requests_and_deletes_aliases(live_server, owner, model):
    register_version(model, owner), register_version(model, owner)
    alias_policy_update(model=model, alias="champion", actor=owner, required_approvals=1)
    _, token = api_token_create(user=owner, name="pipeline", scope=TokenScope.FULL)

    def run(*argv):
        done = subprocess.run([CLI, *argv], env={"REGISTRY_URL": live_server.url, "REGISTRY_TOKEN": token}, capture_output=True, text=True, timeout=60)
        return done.returncode, (json.loads(done.stdout) if done.returncode == 0 else done.stderr)

    assert run("alias", "set", model.name, "canary", "1", "--comment", "try it")[1]["version"] == 1
    assert run("alias", "get", model.name, "canary")[1]["number"] == 1
    assert run("alias", "set", model.name, "canary", "2")[1]["version"] == 2
    status, error = run("alias", "set", model.name, "champion", "2")
    assert status == 1 and "409" in error and "needs 1 approval(s)" in error and error.count("\n") == 1
    status, requested = run("alias", "set", model.name, "champion", "2", "--request", "--comment", "best AUC")
    assert requested["status"] == "pending" and requested["alias"] == "champion" and TransitionRequest.objects.get().alias == "champion"
    history = run("alias", "history", model.name, "canary")[1]["history"]
    assert [h["version"] for h in history] == [2, 1]
    assert run("alias", "history", model.name, "canary", "--at", history[1]["changed_at"])[1]["version"] == 1
    assert run("alias", "list", model.name)[1]["results"][0]["alias"] == "canary"
    assert run("alias", "delete", model.name, "canary")[1]["deleted"] is True
    status, error = run("alias", "get", model.name, "canary")
    assert status == 1 and "404" in error


def test_alias_list_and_history_follow_the_pages_to_the_end(live_server, owner, model):
    first, second = register_version(model, owner), register_version(model, owner)
    moves = [AliasChange(model=model, alias="canary", version=(first, second)[i % 2], previous_version=(second, first)[i % 2]) for i in range(520)]
    AliasChange.objects.bulk_create(moves)  # more than the 500 rows the history once stopped at
    ModelAlias.objects.bulk_create(ModelAlias(model=model, name=f"alias-{i:02}", version=first) for i in range(60))  # more than a page
    _, token = api_token_create(user=owner, name="reader", scope=TokenScope.READ)

    def run(*argv):
        done = subprocess.run([CLI, *argv], env={"REGISTRY_URL": live_server.url, "REGISTRY_TOKEN": token}, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    history = run("alias", "history", model.name, "canary")
    assert len(history["history"]) == 520 and history["next"] is None
    assert [h["changed_at"] for h in history["history"]] == sorted((h["changed_at"] for h in history["history"]), reverse=True)
    listed = run("alias", "list", model.name)
    assert [a["alias"] for a in listed["results"]] == [f"alias-{i:02}" for i in range(60)] and listed["count"] == 60
