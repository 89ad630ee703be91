"""The upload-session API: declare a version's files, send the bytes (to S3 directly, or to the registry in offsets),
then register. Every view authorizes (register permission, the session's own creator) before it reads a body."""

from django.http import Http404, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view, parser_classes
from rest_framework.response import Response

from apps.accounts.idempotency import idempotent_call
from apps.accounts.parsers import CheckedJSONParser
from apps.catalog.upload_sessions import upload_session_abort, upload_session_create, upload_session_register
from apps.models.permissions import Action, get_model_for
from apps.web.errors import error_body
from apps.web.openapi import documented
from apps.web.serializers import validated_body

from .api import VERSION_SCHEMA, _registered_to_dict
from .blobs import blob_is_local
from .document import SHA256_HEX
from .models import UploadFileStatus, UploadSession, UploadSessionFile
from .spool import SpoolWriteFailed, spool_failure_response
from .upload_sessions import UploadConflict, file_complete, file_offset, file_part_urls, file_receive, file_uploaded_parts

TUS_CONTENT_TYPE = "application/offset+octet-stream"
SESSION_SCHEMA = inline_serializer(
    name="UploadSession",
    fields={
        "id": serializers.UUIDField(),
        "status": serializers.CharField(),
        "storage": serializers.ChoiceField(choices=["local", "s3"]),
        "expires_at": serializers.DateTimeField(),
        "files": serializers.ListField(child=serializers.DictField()),
        "register_url": serializers.CharField(),
        "version": serializers.IntegerField(allow_null=True),
    },
)


def session_for(request, name: str, session_id) -> UploadSession:
    """The caller's own open-or-registered session on a model they may register versions of; anything else is a 404."""
    model = get_model_for(request.user, name, Action.REGISTER)
    session = UploadSession.objects.filter(pk=session_id, model=model, created_by=request.user, expires_at__gt=timezone.now()).select_related("model", "version").first()
    if session is None:
        raise Http404("No such upload session (it may have expired): start a new one.")
    return session


def _file_of(session: UploadSession, index: int) -> UploadSessionFile:
    file = session.files.filter(index=index).first()
    if file is None:
        raise Http404(f"The upload session has no file #{index}.")
    file.session = session
    return file


def _file_url(request, session, file, route: str) -> str:
    return request.build_absolute_uri(reverse(f"api:{route}", kwargs={"name": session.model.name, "session_id": session.pk, "index": file.index}))


def session_to_dict(request, session: UploadSession, *, with_progress: bool = True) -> dict:
    """The session as the client needs it: per file, stored or where (and from where) to send its bytes."""
    local = blob_is_local()
    files = []
    for file in session.files.all():
        file.session = session
        item = {
            "index": file.index,
            "path": file.path,
            "size": file.size,
            "sha256": file.sha256 or file.declared_sha256 or None,
            "status": file.status,
            "deduplicated": file.deduplicated,
        }
        if file.status != UploadFileStatus.STORED:
            item["part_size"] = file.part_size
            item["complete_url"] = _file_url(request, session, file, "upload-complete")
            if local:
                item["upload_url"] = _file_url(request, session, file, "upload-file")
                if with_progress:
                    item["offset"] = file_offset(file)
            else:
                item["parts_url"] = _file_url(request, session, file, "upload-parts")
                if with_progress:
                    item["parts"] = [{"number": p["number"], "size": p["size"]} for p in file_uploaded_parts(file)]
        files.append(item)
    kwargs = {"name": session.model.name, "session_id": session.pk}
    return {
        "id": str(session.pk),
        "status": session.status,
        "storage": "local" if local else "s3",
        "expires_at": session.expires_at.isoformat(),
        "files": files,
        "register_url": request.build_absolute_uri(reverse("api:upload-register", kwargs=kwargs)),
        "version": session.version.number if session.version_id else None,
    }


class SessionBody(serializers.Serializer):
    metadata = serializers.DictField(required=False, help_text="The metadata document, as for registration (checked now).")
    files = serializers.ListField(child=serializers.DictField(), help_text='[{"path", "size", "sha256"?}], in order.')


@documented(
    summary="Open an upload session: declare the files (path, size, SHA-256) and the metadata; each file is answered "
    "'stored' (you may already read those bytes) or with where to send it",
    request=SessionBody,
    responses={201: SESSION_SCHEMA},
    errors=[400, 403, 404, 415],
)
@api_view(["POST"])
@parser_classes([CheckedJSONParser])
def upload_sessions(request, name: str):
    model = get_model_for(request.user, name, Action.REGISTER)  # before the body is read
    body = request.data if isinstance(request.data, dict) else {}
    unknown = sorted(set(body) - {"metadata", "files"})
    if unknown or not isinstance(request.data, dict):
        return Response(error_body("invalid", "Send a JSON object with 'files' and 'metadata' only.", {key: ["unknown key"] for key in unknown}), status=400)
    session = upload_session_create(model=model, actor=request.user, document=body.get("metadata") or {}, files=body.get("files"))
    return Response(session_to_dict(request, session, with_progress=False), status=status.HTTP_201_CREATED)


@documented(methods=["GET"], summary="An upload session's state: per file stored or not, and what arrived (offset, or S3 parts)", responses={200: SESSION_SCHEMA}, errors=[404])
@documented(methods=["DELETE"], summary="Abandon an upload session (what it left behind is removed)", responses={204: None}, errors=[403, 404])
@api_view(["GET", "DELETE"])
def upload_session_detail(request, name: str, session_id):
    session = session_for(request, name, session_id)
    if request.method == "DELETE":
        upload_session_abort(session=session, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
    return Response(session_to_dict(request, session))


def _conflict(exc: UploadConflict) -> JsonResponse:
    response = JsonResponse(error_body(exc.code, str(exc)), status=409)
    if exc.offset is not None:
        response["Upload-Offset"] = str(exc.offset)
    return response


@documented(
    methods=["HEAD"],
    summary="How many bytes of the file the registry holds (header Upload-Offset; local-disk storage)",
    responses={200: None},
    errors=[404],
)
@documented(
    methods=["PATCH"],
    summary="Append bytes at Upload-Offset (Content-Type application/offset+octet-stream; local-disk storage, tus-style). "
    "The last bytes complete the file: checked against its SHA-256 and stored, or discarded (409 checksum_mismatch)",
    request={TUS_CONTENT_TYPE: OpenApiTypes.BINARY},
    responses={204: None},
    errors=[400, 403, 404, 409, 415],
)
@api_view(["HEAD", "PATCH"])
def upload_file(request, name: str, session_id, index: int):
    session = session_for(request, name, session_id)
    file = _file_of(session, index)
    if not blob_is_local():
        return JsonResponse(error_body("wrong_protocol", "Artifacts are on S3: ask parts_url for presigned part URLs and send the parts there."), status=409)
    if request.method == "HEAD":
        return HttpResponse(status=200, headers={"Upload-Offset": str(file_offset(file)), "Upload-Length": str(file.size), "Cache-Control": "no-store"})
    if request.content_type != TUS_CONTENT_TYPE:
        return JsonResponse(error_body("unsupported_media_type", f"Send the bytes as {TUS_CONTENT_TYPE}."), status=415)
    offset, length = request.headers.get("Upload-Offset", ""), request.headers.get("Content-Length", "")
    if not offset.isdigit() or not length.isdigit():
        return JsonResponse(error_body("invalid", "Send Upload-Offset (the offset HEAD gave) and Content-Length headers."), status=400)
    try:
        new_offset = file_receive(file=file, offset=int(offset), length=int(length), read=request._request.read)
    except UploadConflict as exc:
        return _conflict(exc)
    except SpoolWriteFailed as exc:  # 507 when the disk is full, as for a multipart upload
        return spool_failure_response(request, exc)
    return HttpResponse(status=204, headers={"Upload-Offset": str(new_offset), "Upload-Status": str(file.status)})


class PartBody(serializers.Serializer):
    number = serializers.IntegerField(min_value=1, help_text="The part's number, from 1.")
    sha256 = serializers.RegexField(
        SHA256_HEX,
        required=False,
        error_messages={"invalid": "Give the part's SHA-256 as 64 lowercase hexadecimal characters, or leave it out."},
        help_text="The part's SHA-256 (64 lowercase hex): S3 then refuses other bytes.",
    )


class PartsBody(serializers.Serializer):
    parts = serializers.ListField(child=PartBody(), min_length=1, max_length=100, help_text='[{"number": 1, "sha256": "<hex>"?}], at most 100 at a time.')


@documented(
    summary="Presigned URLs to send parts of a file straight to S3 (with a part's SHA-256, S3 refuses other bytes); "
    "send the headers given with each URL",
    request=PartsBody,
    responses={200: inline_serializer(name="UploadParts", fields={"parts": serializers.ListField(child=serializers.DictField())})},
    errors=[400, 403, 404, 409, 415],
)
@api_view(["POST"])
@parser_classes([CheckedJSONParser])
def upload_parts(request, name: str, session_id, index: int):
    session = session_for(request, name, session_id)
    file = _file_of(session, index)
    parts = [(part["number"], part.get("sha256")) for part in validated_body(PartsBody, request)["parts"]]
    try:
        return Response({"parts": file_part_urls(file=file, parts=parts)})
    except UploadConflict as exc:
        return _conflict(exc)


class CompleteBody(serializers.Serializer):
    sha256 = serializers.RegexField(
        SHA256_HEX,
        required=False,
        error_messages={"invalid": "Give the file's SHA-256 as 64 lowercase hexadecimal characters, or leave it out."},
        help_text="The SHA-256 of the bytes the client sent (required in practice when the file was declared without one): "
        "the stored bytes must have it.",
    )


@documented(
    summary="Finish a file: on S3 the parts are joined and the SHA-256 checked; stored, or discarded (409 checksum_mismatch). "
    "A file declared without a SHA-256 gets its digest here: send the one you computed while sending",
    request=CompleteBody,
    responses={200: SESSION_SCHEMA},
    errors=[400, 403, 404, 409, 415],
)
@api_view(["POST"])
@parser_classes([CheckedJSONParser])
def upload_complete(request, name: str, session_id, index: int):
    session = session_for(request, name, session_id)
    file = _file_of(session, index)
    digest = validated_body(CompleteBody, request).get("sha256", "") if request.body else ""
    try:
        file_complete(file=file, sha256=digest)
    except UploadConflict as exc:
        return _conflict(exc)
    return Response({"index": file.index, "path": file.path, "status": file.status, "sha256": file.sha256})


@documented(
    summary="Register the session's files and metadata as a new version (atomic; Idempotency-Key honoured)",
    request=None,
    responses={201: VERSION_SCHEMA},
    errors=[400, 403, 404, 409],
)
@api_view(["POST"])
def upload_register(request, name: str, session_id):
    session = session_for(request, name, session_id)
    with idempotent_call(request) as call:
        if call.replayed is not None:
            return call.replayed
        upload_session_register(
            session=session,
            actor=request.user,
            before_commit=lambda version: call.record(status=status.HTTP_201_CREATED, body=_registered_to_dict(version, request)),
        )
        return call.respond()
