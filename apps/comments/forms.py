from django import forms

from .models import MAX_BODY


class CommentForm(forms.Form):
    body = forms.CharField(
        label="Comment", max_length=MAX_BODY, widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Markdown. @username notifies that person if they may view this model.",
        error_messages={"required": "Write something first; Markdown is welcome."},
    )
