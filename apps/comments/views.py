from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from apps.approvals.selectors import transition_request_for
from apps.models.permissions import get_model_for
from apps.versions.selectors import version_or_404
from apps.web.forms import add_validation_errors, form_errors_text

from .forms import CommentForm
from .selectors import comment_for, comment_url
from .services import comment_create, comment_delete, comment_edit, require_author


def _post(request: HttpRequest, back: str, **target) -> HttpResponse:
    form = CommentForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Comment not posted: " + form_errors_text(form))
        return redirect(back + "#comment-form")
    try:
        comment = comment_create(actor=request.user, body=form.cleaned_data["body"], **target)
    except ValidationError as exc:
        messages.error(request, "Comment not posted: " + " ".join(exc.messages))
        return redirect(back + "#comment-form")
    return redirect(comment_url(comment))


@require_POST
def version_comment(request: HttpRequest, name: str, number: int) -> HttpResponse:
    model = get_model_for(request.user, name)
    version = version_or_404(model, number)
    return _post(request, reverse("versions:detail", args=[model.name, version.number]), version=version)


@require_POST
def request_comment(request: HttpRequest, pk: int) -> HttpResponse:
    transition_request = transition_request_for(request.user, pk)
    return _post(request, reverse("approvals:review", args=[transition_request.pk]), transition_request=transition_request)


@require_http_methods(["GET", "POST"])
def comment_edit_view(request: HttpRequest, pk: int) -> HttpResponse:
    comment = comment_for(request.user, pk)
    require_author(comment, request.user, "edit")
    form = CommentForm(request.POST or None, initial={"body": comment.body})
    if request.method == "POST" and form.is_valid():
        try:
            comment = comment_edit(comment=comment, actor=request.user, body=form.cleaned_data["body"])
        except ValidationError as exc:
            add_validation_errors(form, exc)
        else:
            messages.success(request, "Comment saved.")
            return redirect(comment_url(comment))
    return render(request, "comments/comment_edit.html", {"comment": comment, "form": form, "back": comment_url(comment)}, status=400 if form.errors else 200)


@require_POST
def comment_delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    comment = comment_for(request.user, pk)
    back = comment_url(comment).split("#")[0]
    comment_delete(comment=comment, actor=request.user)
    messages.success(request, "Comment deleted.")
    return redirect(back + "#comments")
