from datetime import datetime, time
from datetime import timezone as dt_timezone

from django import forms
from django.utils import timezone

from apps.models.permissions import visible_models

from .models import TokenScope


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses this token, e.g. 'training pipeline'.")
    scope = forms.ChoiceField(
        choices=TokenScope.choices,
        initial=TokenScope.READ,
        required=False,
        widget=forms.RadioSelect,
        help_text="Read only is enough for deployment pipelines; register adds registering versions and reporting deployments;"
        " full can do everything you can. A token never does more than you may.",
    )
    expires_on = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        label="Expires on",
        help_text="The token stops working at 00:00 UTC that day. Leave empty for a token that does not expire.",
    )
    models = forms.ModelMultipleChoiceField(
        queryset=None,
        required=False,
        to_field_name="name",
        widget=forms.CheckboxSelectMultiple,
        label="Only these models",
        help_text="Leave all unticked for every model you may see; ticked, the token sees no other model.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["models"].queryset = visible_models(user).order_by("name")

    def clean_scope(self) -> str:
        return self.cleaned_data["scope"] or TokenScope.READ  # a form sent without one gets the default, as on screen

    def clean_expires_on(self):
        day = self.cleaned_data["expires_on"]
        if day is not None and day <= timezone.now().astimezone(dt_timezone.utc).date():
            raise forms.ValidationError("Pick a day after today (UTC).")
        return day

    def token_options(self) -> dict:
        """The keyword arguments of `api_token_create` this form chose."""
        day = self.cleaned_data["expires_on"]
        chosen = list(self.cleaned_data["models"])
        return {
            "name": self.cleaned_data["name"],
            "scope": self.cleaned_data["scope"],
            "expires_at": datetime.combine(day, time.min, tzinfo=dt_timezone.utc) if day else None,
            "models": chosen or None,
        }
