"""``/api/mappings``: the mapping versions, and editing them from the console.

An edit (validate, preview, diff, publish) changes, adds and deletes files of the active
set at once (``files``, ``add``, ``delete``: :class:`FilesBody`). Reading, validating,
previewing and diffing need the viewer role; publishing and rolling back the editor role
(the version store puts each new version on the audit trail with the user). Validation
and preview are CPU work: the routes are plain functions, run in a worker thread. Their
bodies may be up to :data:`MAX_MAPPINGS_BODY` (a mapping set, a pasted batch of
messages); the rest of the API keeps the smaller cap.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from broker.admin.mapping_models import (
    FilesBody,
    MappingProblem,
    PreviewAnswer,
    VersionInfo,
    message_preview,
    problem,
    version_info,
)
from broker.admin.problems import ApiProblem
from broker.admin.security import Caller, authenticated
from broker.errors import ConflictError
from broker.services.application import Services
from broker.services.auth import Role
from broker.services.mapping_changes import ChangeRefused
from broker.services.mappings import MappingChanges, MappingService
from broker.store.mapping_versions import MappingVersion, PublishResult

__all__ = ["MAX_MAPPINGS_BODY", "PREFIX", "router"]

PREFIX = "/api/mappings"
MAX_MAPPINGS_BODY = 1024 * 1024  # bytes: a whole mapping set, or a batch of messages
MAX_MESSAGES_TEXT = 1_000_000  # characters of pasted HL7
MAX_PREVIEW_MESSAGES = 100  # messages in one preview

router = APIRouter(prefix=PREFIX, tags=["mappings"])

Viewer = Annotated[Caller, Depends(authenticated(Role.VIEWER))]
Editor = Annotated[Caller, Depends(authenticated(Role.EDITOR))]
Number = Annotated[int, Path(ge=1, le=2**53, description="a version number")]
_Comment = Field(default="", max_length=1000)


class VersionFiles(BaseModel):
    version: VersionInfo
    files: dict[str, str] = Field(description="file name -> YAML text")


class History(BaseModel):
    active: int | None
    versions: list[VersionInfo]
    next_before: int | None = Field(description="'before' for the next page; None: no more")


class Checked(BaseModel):
    valid: bool
    problems: list[MappingProblem]


class PreviewBody(FilesBody):
    message: str = Field(max_length=MAX_MESSAGES_TEXT, description="HL7, \\r or \\n separated")
    peer: str = Field(default="", max_length=200, description="as if sent from this address")


class DiffBody(FilesBody):
    from_: int | None = Field(default=None, alias="from", ge=1, le=2**53)
    to: int | None = Field(default=None, ge=1, le=2**53)


class Diff(BaseModel):
    old: str
    new: str
    text: str = Field(description="unified diff; empty when equal")


class PublishBody(FilesBody):
    comment: str = _Comment
    expect: int | None = Field(default=None, ge=1, le=2**53, description="the version edited")


class RollbackBody(BaseModel):
    comment: str = _Comment
    expect: int | None = Field(default=None, ge=1, le=2**53, description="the active version")


class Published(BaseModel):
    created: bool = Field(description="false: the active version already had these files")
    version: VersionInfo


def _mappings(request: Request) -> MappingService:
    services: Services = request.app.state.services
    return services.mappings


def _version(request: Request, number: int) -> MappingVersion:
    services: Services = request.app.state.services
    version = services.mapping_versions.get(number)
    if version is None:
        raise ApiProblem(404, f"there is no mapping version {number}")
    return version


@contextmanager
def _refused_changes() -> Iterator[None]:
    """An edit that cannot be applied (a new file's name taken, a deleted one unknown) is
    422 naming the body field."""
    try:
        yield
    except ChangeRefused as e:
        raise ApiProblem(422, str(e), extra={"errors": [str(e)]}) from e


def _refuse_invalid(service: MappingService, changes: MappingChanges) -> None:
    with _refused_changes():
        found = service.check(changes)
    if found:
        errors: list[dict[str, Any]] = [problem(p).model_dump() for p in found]
        first = found[0]
        where = f"{first.file}:{first.line}" if first.file and first.line else first.file or "set"
        detail = f"the mapping set does not validate: {where}: {first.message}"
        raise ApiProblem(422, detail, extra={"problems": errors})


def _published(result: PublishResult, response: Response) -> Published:
    response.status_code = 201 if result.created else 200
    return Published(created=result.created, version=version_info(result.version))


@router.get("", summary="the active mapping version")
def active(request: Request, _: Viewer) -> VersionInfo:
    services: Services = request.app.state.services
    version = services.mapping_versions.active()
    if version is None:
        raise ApiProblem(404, "no mapping version is published yet")
    return version_info(version)


@router.get("/history", summary="the newest mapping versions, newest first")
def history(
    request: Request,
    _: Viewer,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**53, description="next page")] = None,
) -> History:
    versions, number = _mappings(request).history(limit, before)
    following = versions[-1].number if len(versions) == limit and versions[-1].number > 1 else None
    return History(
        active=number, versions=[version_info(v) for v in versions], next_before=following
    )


@router.get("/versions/{number}", summary="a mapping version and its files")
def version(request: Request, _: Viewer, number: Number) -> VersionFiles:
    found = _version(request, number)
    return VersionFiles(version=version_info(found), files=dict(found.files))


@router.post(
    "/validate", summary="check changed, new and deleted files, alone and over the active version"
)
def validate(request: Request, _: Viewer, body: FilesBody) -> Checked:
    with _refused_changes():
        found = _mappings(request).check(body.changes())
    return Checked(valid=not found, problems=[problem(p) for p in found])


@router.post("/preview", summary="what messages would become with the active or edited set")
def preview(request: Request, _: Viewer, body: PreviewBody) -> PreviewAnswer:
    service = _mappings(request)
    changes = body.changes()
    if changes:
        _refuse_invalid(service, changes)
    data = body.message.encode("utf-8")
    found = service.preview(
        data,
        "the message text",
        peer=body.peer,
        changes=changes,
        max_messages=MAX_PREVIEW_MESSAGES,
    )
    return message_preview(found)


@router.post("/diff", summary="a unified diff of two versions, or of an edit of the active one")
def diff(request: Request, _: Viewer, body: DiffBody) -> Diff:
    service = _mappings(request)
    changes = body.changes()
    if changes:
        with _refused_changes():
            found = service.diff_edited(changes)
    else:
        numbers = [n for n in (body.from_, body.to) if n is not None]
        for number in numbers:
            _version(request, number)
        if body.from_ is None and body.to is not None:
            numbers = [service.active().number, body.to]
        found = service.diff(numbers)
    return Diff(old=found.old, new=found.new, text=found.text)


@router.post(
    "/publish",
    status_code=201,
    summary="publish changed, new and deleted files as a new version (editor)",
    responses={200: {"description": "unchanged: the active version has these files"}},
)
def publish(request: Request, caller: Editor, body: PublishBody, response: Response) -> Published:
    service = _mappings(request)
    changes = body.changes()
    if not changes:
        raise ApiProblem(400, "files: give at least one mapping file to change, add or delete")
    _refuse_invalid(service, changes)
    name = caller.principal.name
    try:
        with _refused_changes():
            result = service.publish(
                changes=changes, author=name, comment=body.comment, expect=body.expect, user=name
            )
    except ConflictError as e:
        raise ApiProblem(409, str(e)) from e
    return _published(result, response)


@router.post(
    "/versions/{number}/rollback",
    status_code=201,
    summary="publish an earlier version's files again (editor)",
    responses={200: {"description": "unchanged: the active version has these files"}},
)
def rollback(
    request: Request, caller: Editor, number: Number, body: RollbackBody, response: Response
) -> Published:
    _version(request, number)
    name = caller.principal.name
    try:
        result = _mappings(request).rollback(
            number, author=name, comment=body.comment, expect=body.expect, user=name
        )
    except ConflictError as e:
        raise ApiProblem(409, str(e)) from e
    return _published(result, response)


@router.get(
    "/versions/{number}/export",
    summary="a version's files as a zip",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}, "description": "the YAML files"}},
)
def export(request: Request, _: Viewer, number: Number) -> Response:
    _version(request, number)
    found, data = _mappings(request).archive(number)
    name = f"mappings-v{found.number}.zip"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return Response(data, media_type="application/zip", headers=headers)
