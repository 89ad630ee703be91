from django import forms

from .models import Kind


class EmailPreferencesForm(forms.Form):
    email_kinds = forms.MultipleChoiceField(
        choices=Kind.choices, required=False, widget=forms.CheckboxSelectMultiple, label="Email me when",
        help_text="Every notification shows on the Notifications page; ticked kinds are also emailed to you.",
    )
