"""Uploaded files (invoices, closing documents): stored under DATA_DIR/files by sha256,
recognised by content (magic bytes), never by the name the client sent."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.core import TZ, new_id, utcnow


class StoredFile(SQLModel, table=True):
    __tablename__ = "stored_file"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    name: str = Field(max_length=255)  # the client's file name, for downloads only
    kind: str = Field(max_length=8)  # pdf, jpeg, png, doc, docx (detected from the bytes)
    content_type: str = Field(max_length=100)
    size: int
    sha256: str = Field(index=True, max_length=64)
    uploaded_by: str = Field(index=True, max_length=32)
    created_at: datetime = TZ(nullable=False, default=utcnow)


class StoredFilePublic(SQLModel):
    id: str
    name: str
    size: int
    sha256: str
    kind: str
    content_type: str


def detect_kind(head: bytes) -> tuple[str, str] | None:
    """(kind, content type) from the first bytes, or None for anything we do not accept.
    A .docx is a zip; whether it holds `word/` entries is checked on the whole file."""
    if head.startswith(b"%PDF-"):
        return "pdf", "application/pdf"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg", "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png", "image/png"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):  # OLE2 compound file
        return "doc", "application/msword"
    if head.startswith(b"PK\x03\x04"):
        return "docx", ("application/vnd.openxmlformats-officedocument.wordprocessingml.document")
    return None
