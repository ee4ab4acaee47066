"""Uploads: recognised by content, size-limited, stored by sha256, downloads role-checked."""

from __future__ import annotations

import hashlib
import io
import zipfile

from core.settings import Settings
from models.core import Role
from tests.support.api import Api

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(40)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(40)
DOC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(40)


def _zip(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n in names:
            z.writestr(n, "<x/>")
    return buf.getvalue()


DOCX = _zip(["[Content_Types].xml", "word/document.xml"])


async def _up(api: Api, role: Role, content: bytes, name: str, ctype: str = "application/pdf"):  # type: ignore[no-untyped-def]
    return await api.as_(role).post("/v1/files", files={"file": (name, content, ctype)})


async def test_accepted_kinds_by_content(api: Api, settings: Settings) -> None:
    for content, kind in [(PDF, "pdf"), (JPEG, "jpeg"), (PNG, "png"), (DOC, "doc"), (DOCX, "docx")]:
        # The name and the declared type are ignored: only the bytes count.
        r = await _up(api, Role.front_desk, content, "scan.bin", "text/plain")
        assert r.status_code == 201, (kind, r.text)
        body = r.json()
        assert body["kind"] == kind and body["size"] == len(content)
        assert body["sha256"] == hashlib.sha256(content).hexdigest()
        assert body["name"] == "scan.bin"
        stored = settings.data_dir / "files" / body["sha256"][:2] / body["sha256"]
        assert stored.read_bytes() == content


async def test_rejected_content(api: Api) -> None:
    for content, name in [
        (b"MZ\x90\x00 windows exe", "invoice.pdf"),
        (b"just some text", "invoice.docx"),
        (_zip(["[Content_Types].xml", "xl/workbook.xml"]), "book.docx"),
        (b"PK\x03\x04 not really a zip", "x.docx"),
    ]:
        r = await _up(api, Role.front_desk, content, name)
        assert r.status_code == 415, (name, r.text)
        assert "PDF" in r.json()["detail"]
    r = await _up(api, Role.front_desk, b"", "empty.pdf")
    assert r.status_code == 422


async def test_size_limit_is_413(api: Api, settings: Settings) -> None:
    old = settings.max_upload_bytes
    settings.max_upload_bytes = 1000  # the live API reads the same settings object
    try:
        r = await _up(api, Role.front_desk, PDF + bytes(1000), "big.pdf")
        assert r.status_code == 413, r.text
        r = await _up(api, Role.front_desk, PDF, "small.pdf")
        assert r.status_code == 201
    finally:
        settings.max_upload_bytes = old


async def test_download_for_uploader_and_finance_only(api: Api) -> None:
    r = await _up(api, Role.doctor, JPEG, "receipt.jpg")
    fid = r.json()["id"]
    for role in (Role.doctor, Role.accountant, Role.deputy_director, Role.admin):
        r = await api.as_(role).get(f"/v1/files/{fid}")
        assert r.status_code == 200, role
        assert r.content == JPEG and r.headers["content-type"] == "image/jpeg"
        assert "receipt.jpg" in r.headers["content-disposition"]
    assert (await api.as_(Role.operator).get(f"/v1/files/{fid}")).status_code == 403
    assert (await api.as_(Role.operator).get("/v1/files/nope")).status_code == 404
    assert (await api.http.get(f"/v1/files/{fid}")).status_code == 401


async def test_same_bytes_twice_one_copy(api: Api) -> None:
    a = (await _up(api, Role.front_desk, PNG + b"dup", "a.png")).json()
    b = (await _up(api, Role.operator, PNG + b"dup", "b.png")).json()
    assert a["id"] != b["id"] and a["sha256"] == b["sha256"]
    assert (await api.as_(Role.operator).get(f"/v1/files/{b['id']}")).content == PNG + b"dup"
