"""Uploads (invoices, closing documents): accepted by content, stored by sha256."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, UploadFile, status
from fastapi.responses import FileResponse

from api import policy
from api.deps import SessionDep, SettingsDep
from models.core import StaffUser
from models.files import StoredFile, StoredFilePublic, detect_kind

router = APIRouter(prefix="/v1/files", tags=["files"])
Staff = Annotated[StaffUser, policy.may("files", "upload")]
CHUNK = 1024 * 1024
ACCEPTED = "PDF, JPEG, PNG, DOC or DOCX"


def file_path(data_dir: Path, sha256: str) -> Path:
    return data_dir / "files" / sha256[:2] / sha256


def may_see(user: StaffUser, f: StoredFile) -> bool:
    # Besides the uploader, finance roles see every file (they act on every invoice).
    return policy.can(user, "files", "read-all") or f.uploaded_by == user.id


def _is_docx(path: str) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except zipfile.BadZipFile:
        return False
    return "[Content_Types].xml" in names and any(n.startswith("word/") for n in names)


@router.post("", response_model=StoredFilePublic, status_code=status.HTTP_201_CREATED)
async def upload(file: UploadFile, session: SessionDep, settings: SettingsDep, user: Staff) -> StoredFile:
    limit = settings.max_upload_bytes
    tmp_dir = settings.data_dir / "files" / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    digest, size, head = hashlib.sha256(), 0, b""
    fd, tmp = tempfile.mkstemp(dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await file.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"file is larger than the {limit} byte limit")
                if len(head) < 16:
                    head += chunk[: 16 - len(head)]
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise HTTPException(422, detail=[{"loc": ["body", "file"], "msg": "file is empty", "type": "value_error"}])
        kind = detect_kind(head)
        if kind and kind[0] == "docx" and not _is_docx(tmp):
            kind = None
        if kind is None:
            raise HTTPException(
                status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"unsupported file content; send a {ACCEPTED} file"
            )
        sha = digest.hexdigest()
        dest = file_path(settings.data_dir, sha)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():  # same bytes uploaded before: one copy on disk
            os.unlink(tmp)
        else:
            os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    name = os.path.basename(file.filename or "") or f"upload.{kind[0]}"
    row = StoredFile(name=name[:255], kind=kind[0], content_type=kind[1], size=size, sha256=sha, uploaded_by=user.id)
    session.add(row)
    await session.commit()
    return row


@router.get("/{file_id}")
async def download(file_id: str, session: SessionDep, settings: SettingsDep, user: Staff) -> FileResponse:
    f = await session.get(StoredFile, file_id)
    if f is None:
        raise HTTPException(404, f"file {file_id} not found")
    if not may_see(user, f):
        raise HTTPException(403, "only the uploader and finance roles may download this file")
    return FileResponse(file_path(settings.data_dir, f.sha256), media_type=f.content_type, filename=f.name)
