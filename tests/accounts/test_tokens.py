import pytest
from django.core.management import CommandError, call_command

from apps.accounts.models import ApiToken

pytestmark = pytest.mark.django_db


def test_a_user_creates_a_token_sees_it_once_and_revokes_it(web_for, owner, client):
    web = web_for(owner)
    created = web.post("/accounts/tokens/", {"name": "pipeline"})
    secret = created.context["new_secret"]
    assert secret.startswith("mr_") and secret in created.content.decode()
    assert secret not in web.get("/accounts/tokens/").content.decode()
    assert client.get("/api/v1/models/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200
    token = ApiToken.objects.get(user=owner)
    web.post(f"/accounts/tokens/{token.pk}/revoke/")
    assert client.get("/api/v1/models/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401


def test_nobody_revokes_another_users_token(web_for, owner, outsider):
    web_for(owner).post("/accounts/tokens/", {"name": "mine"})
    token = ApiToken.objects.get(user=owner)
    assert web_for(outsider).post(f"/accounts/tokens/{token.pk}/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_the_management_command_creates_lists_and_revokes(owner, capsys):
    call_command("api_token", "create", "owner", "--name", "ci")
    secret = capsys.readouterr().out.strip()
    token = ApiToken.objects.get(user=owner)
    assert token.prefix == secret[:10]
    call_command("api_token", "list", "owner")
    assert "ci  active" in capsys.readouterr().out
    call_command("api_token", "revoke", "owner", token.prefix)
    token.refresh_from_db()
    assert token.revoked_at is not None
    with pytest.raises(CommandError, match="No user named"):
        call_command("api_token", "create", "ghost")


def test_using_a_token_records_when_it_was_last_used(api_for, owner):
    api = api_for(owner)
    token = ApiToken.objects.get(user=owner)
    assert token.last_used_at is None
    assert api.get("/api/v1/models/").status_code == 200
    token.refresh_from_db()
    first_use = token.last_used_at
    assert first_use is not None
    api.get("/api/v1/models/")
    token.refresh_from_db()
    assert token.last_used_at == first_use  # recorded at most every five minutes, not on every request


def test_a_deactivated_users_token_is_refused(api_for, owner):
    api = api_for(owner)
    owner.is_active = False
    owner.save()
    assert api.get("/api/v1/models/").status_code == 401
