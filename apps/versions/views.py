from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from apps.approvals.forms import ArchiveForm, TransitionRequestForm
from apps.approvals.models import RequestStatus
from apps.approvals.selectors import aliases_with_policies, approver_shortfall, archive_plan, requests_for_version
from apps.approvals.services import transition_request_create, versions_archive
from apps.catalog.compare_selectors import comparison_context
from apps.catalog.files import artifact_preview, clean_folder, version_folder
from apps.catalog.selectors import version_details_or_404
from apps.accounts.parsers import json_loads_checked
from apps.catalog.services import version_register
from apps.catalog.upload_sessions import upload_session_create, upload_session_register
from apps.web.errors import error_body
from apps.models.permissions import Action, actions_for, get_model_for
from apps.web.forms import add_validation_errors

from .downloads import artifact_response
from .forms import VersionEditForm, VersionUploadForm, labelled_for
from .lifecycle import allowed_targets
from .selectors import artifact_or_404, picked_versions, version_or_404
from .serializers import latest_job
from .services import incoming_from_upload, version_update
from .upload_api import session_for, session_to_dict


@require_http_methods(["GET", "POST"])
def version_upload(request: HttpRequest, name: str) -> HttpResponse:
    model = get_model_for(request.user, name, Action.REGISTER)
    form = VersionUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        uploads = form.cleaned_data["files"]
        paths = request.POST.getlist("paths")  # relative paths the page's script sends for folder uploads
        try:
            metadata = form.cleaned_data["metadata"]
            incoming = [incoming_from_upload(f, path=paths[i] if i < len(paths) and paths[i] else None) for i, f in enumerate(uploads)]
            version = version_register(model=model, files=incoming, metadata=metadata, actor=request.user)
        except ValidationError as exc:
            add_validation_errors(form, labelled_for(form, exc))
        else:
            messages.success(request, f"Registered {model.name} v{version.number} with {len(incoming)} file(s).")
            return redirect("versions:detail", name=model.name, number=version.number)
    return render(request, "versions/version_upload.html", {"model": model, "form": form}, status=400 if form.errors else 200)


@require_POST
def version_upload_session(request: HttpRequest, name: str) -> HttpResponse:
    """The page's script posts the form's fields and the chosen files' paths and sizes: the form is checked (errors come
    back as the page, to show without losing the chosen files), then an upload session answers where the bytes go."""
    model = get_model_for(request.user, name, Action.REGISTER)
    form = VersionUploadForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            declared = json_loads_checked(request.POST.get("declared") or "[]", field="declared")
            session = upload_session_create(model=model, actor=request.user, document=form.cleaned_data["document"], files=declared)
        except ValidationError as exc:
            add_validation_errors(form, labelled_for(form, exc))
        else:
            register = reverse("versions:upload-register", kwargs={"name": model.name, "session_id": session.pk})
            return JsonResponse({"session": session_to_dict(request, session, with_progress=False), "register_url": register}, status=201)
    return render(request, "versions/version_upload.html", {"model": model, "form": form}, status=400)


@require_POST
def version_upload_register(request: HttpRequest, name: str, session_id) -> HttpResponse:
    """The page's script, once every byte is stored: register the session and go to the new version."""
    session = session_for(request, name, session_id)
    try:
        version = upload_session_register(session=session, actor=request.user)
    except ValidationError as exc:
        return JsonResponse(error_body("invalid", " ".join(exc.messages)), status=400)
    messages.success(request, f"Registered {session.model.name} v{version.number} with {session.files.count()} file(s).")
    return JsonResponse({"redirect": reverse("versions:detail", kwargs={"name": session.model.name, "number": version.number})})


def version_detail(request: HttpRequest, name: str, number: int) -> HttpResponse:
    model = get_model_for(request.user, name, for_page=True)
    version = version_details_or_404(model, number)
    transitions = version.transitions.select_related("actor")
    return render(
        request,
        "versions/version_detail.html",
        {
            "model": model,
            "version": version,
            "transitions": transitions,
            "actions": actions_for(request.user, model),
            "transition_form": TransitionRequestForm(targets=allowed_targets(version.stage)),
            "targets": allowed_targets(version.stage),
            "requests": requests_for_version(version),
            "job": latest_job(version),
            "aliases": aliases_with_policies(model),
        },
    )


@require_http_methods(["GET", "POST"])
def version_edit(request: HttpRequest, name: str, number: int) -> HttpResponse:
    model = get_model_for(request.user, name, Action.REGISTER)
    version = version_details_or_404(model, number)
    initial = {"description": version.description, "tags": ", ".join(sorted(t.name for t in version.tags.all()))}
    form = VersionEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        version_update(version=version, actor=request.user, **form.cleaned_data)
        messages.success(request, "Version updated.")
        return redirect("versions:detail", name=model.name, number=version.number)
    return render(request, "versions/version_edit.html", {"model": model, "version": version, "form": form})


@require_POST
def version_transition_view(request: HttpRequest, name: str, number: int) -> HttpResponse:
    model = get_model_for(request.user, name)
    version = version_details_or_404(model, number)
    form = TransitionRequestForm(request.POST, targets=allowed_targets(version.stage))
    if not form.is_valid():
        messages.error(request, "Choose a stage and say why the version should move.")
        return redirect("versions:detail", name=model.name, number=version.number)
    try:
        created = transition_request_create(version=version, actor=request.user, **form.cleaned_data)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("versions:detail", name=model.name, number=version.number)
    if created.status == RequestStatus.APPLIED:
        messages.success(request, f"v{version.number} moved to {created.to_stage}.")
        return redirect("versions:detail", name=model.name, number=version.number)
    whom = "Approvers see it in their inbox." if approver_shortfall(created) is None else "Nobody else may approve it yet: see below who can fix that."
    messages.success(request, f"Requested: v{version.number} to {created.to_stage}. {whom}")
    return redirect("approvals:review", pk=created.pk)


def artifact_download(request: HttpRequest, name: str, number: int, path: str) -> HttpResponse:
    model = get_model_for(request.user, name)
    return artifact_response(request, artifact_or_404(model, number, path))


def version_compare(request: HttpRequest) -> HttpResponse:
    """`/compare/?v=<model>:<number>&v=...&baseline=first|production`: versions side by side, only those the user may view."""
    context = comparison_context(request.user, request.GET.getlist("v"), request.GET.get("baseline", "first"))
    return render(request, "versions/compare.html", context, status=400 if context["too_many"] else 200)


@require_http_methods(["GET", "POST"])
def versions_archive_view(request: HttpRequest, name: str) -> HttpResponse:
    """Archive the versions ticked on the model page (`?v=<model>:<number>`), after a page that says what each move does."""
    model = get_model_for(request.user, name, Action.REQUEST_TRANSITION)
    data = request.POST if request.method == "POST" else request.GET
    versions, pick_errors = picked_versions(model, data.getlist("v"))
    form = ArchiveForm(request.POST or None)
    if request.method == "POST" and not pick_errors and form.is_valid():
        try:
            created = versions_archive(versions=versions, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_validation_errors(form, exc)
        else:
            waiting = sum(1 for item in created if item.status == RequestStatus.PENDING)
            archived = ", ".join(f"v{item.version.number}" for item in created if item.status == RequestStatus.APPLIED) or "none"
            messages.success(request, f"Archived: {archived}." + (f" {waiting} request(s) wait for review in the Approvals inbox." if waiting else ""))
            return redirect("models:detail", name=model.name)
    context = {"model": model, "plan": archive_plan(model, versions, request.user), "pick_errors": pick_errors, "form": form}
    return render(request, "versions/archive_confirm.html", context, status=400 if pick_errors or form.errors else 200)


TENSORS_PER_PAGE = 200
ENTRIES_PER_PAGE = 200


def version_files(request: HttpRequest, name: str, number: int) -> HttpResponse:
    """A version's files tab: one folder (`?dir=`, its entries paged by `?page=`), and a preview of the file `?path=`
    names (a safetensors file's tensors paged by `?tensors=`)."""
    model = get_model_for(request.user, name)
    version = version_or_404(model, number)
    selected = artifact_or_404(model, number, request.GET["path"]) if request.GET.get("path") else None
    folder_path = clean_folder(request.GET.get("dir", selected.path.rpartition("/")[0] if selected else ""))
    folder = version_folder(version, folder_path)
    if folder is None:
        raise Http404(f"v{number} of '{model.name}' has no folder '{folder_path}'.")
    preview = artifact_preview(selected) if selected is not None else None
    tensors = Paginator(preview["tensors"], TENSORS_PER_PAGE).get_page(request.GET.get("tensors")) if preview and preview["tensors"] else None
    entries = Paginator([*folder.folders, *folder.files], ENTRIES_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "model": model, "version": version, "folder": folder, "entries": entries, "selected": selected, "preview": preview, "tensors": tensors,
    }
    return render(request, "versions/version_files.html", context)
