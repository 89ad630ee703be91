from django import forms
from django.core.exceptions import ValidationError


def add_validation_errors(form: forms.Form, exc: ValidationError) -> None:
    """Show a service's ValidationError on the form: on the named field where there is one, else on the form."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


def form_errors_text(form: forms.Form) -> str:
    """A bound form's errors as one sentence, for a message shown after a redirect (the form itself is not shown again)."""
    return " ".join(error for errors in form.errors.values() for error in errors)


class TagsField(forms.CharField):
    """Comma-separated tags: trimmed, de-duplicated, sorted, each at most 64 characters."""

    def clean(self, value):
        value = super().clean(value)
        tags = sorted({tag.strip() for tag in (value or "").split(",") if tag.strip()})
        for tag in tags:
            if len(tag) > 64:
                raise forms.ValidationError(f"Tag '{tag[:20]}…' is longer than 64 characters.")
        return tags
