from django import forms

from .models import EventType


class WebhookForm(forms.Form):
    url = forms.CharField(
        max_length=2000, label="Payload URL", widget=forms.TextInput(attrs={"placeholder": "https://deploy.example.com/hooks/registry"}),
        help_text="http or https, no credentials. Internal addresses are refused.",
    )
    secret = forms.CharField(
        max_length=200, required=False, widget=forms.PasswordInput(render_value=False),
        help_text="At least 16 characters. Leave empty to have one generated; it is shown once.",
    )
    event_types = forms.MultipleChoiceField(
        choices=EventType.choices, required=False, widget=forms.CheckboxSelectMultiple, label="Events",
        help_text="None checked: every event.",
    )
    active = forms.BooleanField(required=False, initial=True, label="Active")
