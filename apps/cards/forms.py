from django import forms

from .services import MAX_BODY_CHARS, MAX_FIELD_CHARS


class ModelCardForm(forms.Form):
    license = forms.CharField(required=False, max_length=100, help_text="An SPDX identifier (apache-2.0, mit) or a name.")
    intended_use = forms.CharField(required=False, max_length=MAX_FIELD_CHARS, widget=forms.Textarea(attrs={"rows": 3}), label="Intended use")
    limitations = forms.CharField(required=False, max_length=MAX_FIELD_CHARS, widget=forms.Textarea(attrs={"rows": 3}))
    training_data = forms.CharField(
        required=False, max_length=MAX_FIELD_CHARS, widget=forms.Textarea(attrs={"rows": 2}), label="Training data",
        help_text="What it was trained on, in a few sentences.",
    )
    body = forms.CharField(
        required=False, max_length=MAX_BODY_CHARS, label="Card (Markdown)",
        widget=forms.Textarea(attrs={"rows": 14, "class": "card-body"}), help_text="Markdown; raw HTML is shown as text. The preview follows as you type.",
    )
    source = forms.CharField(required=False, max_length=200, widget=forms.HiddenInput)


class CardPreviewForm(forms.Form):
    body = forms.CharField(required=False, max_length=MAX_BODY_CHARS)
