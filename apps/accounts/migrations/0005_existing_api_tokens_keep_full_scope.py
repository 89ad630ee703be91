from django.db import migrations


def existing_tokens_keep_full_scope(apps, schema_editor):
    """Tokens made before scopes could do everything their user could; they keep that, so no pipeline breaks.

    Tokens created from now on default to read only (the field's default).
    """
    apps.get_model("accounts", "ApiToken").objects.update(scope="full")


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0004_api_token_scope_expiry_models"),
    ]

    operations = [
        migrations.RunPython(existing_tokens_keep_full_scope, migrations.RunPython.noop),
    ]
