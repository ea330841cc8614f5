"""WARC / WET reader (Common Crawl layout) and the WARC writer the crawler uses.

Reads ``response`` records (HTTP 200, HTML / plain text / PDF), ``resource`` records and WET
``conversion`` records (already plain text). Gzipped (per-record, as Common Crawl ships) and
plain files both work; http(s) paths are streamed into a temporary file first.
"""

from __future__ import annotations

import glob
import gzip
import io
import os
import tempfile
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Iterator

from secfoundry.corpus.collect.content import to_text
from secfoundry.core.errors import Quarantine
from secfoundry.core.documents import Document, doc_id


def expand_paths(paths: list[str], base: str = "") -> list[str]:
    """Globs, Common Crawl ``*.paths[.gz]`` manifests and URLs -> a sorted, de-duplicated list."""
    out: list[str] = []
    for p in paths:
        if p.endswith((".paths", ".paths.gz")):  # local or remote manifest
            with open_stream(p) as raw:
                data = raw.read()
            if p.endswith(".gz"):
                data = gzip.decompress(data)
            for line in data.decode("utf-8").splitlines():
                line = line.strip()
                if line:
                    out.append(_join(base, line))
        elif p.startswith(("http://", "https://")):
            out.append(p)
        elif any(ch in p for ch in "*?["):
            out += sorted(glob.glob(p, recursive=True))
        else:
            out.append(p)
    seen: set[str] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def _join(base: str, rel: str) -> str:
    if not base:
        return rel
    if base.startswith(("http://", "https://")):
        return base.rstrip("/") + "/" + rel.lstrip("/")
    return str(Path(base) / rel)


@contextmanager
def open_stream(path: str):
    """A binary file object for a local path or an http(s) URL (downloaded to a temp file)."""
    if path.startswith(("http://", "https://")):
        import httpx

        with tempfile.TemporaryFile() as tmp:
            with httpx.stream("GET", path, follow_redirects=True, timeout=60.0) as r:
                r.raise_for_status()
                for chunk in r.iter_bytes(1 << 20):
                    tmp.write(chunk)
            tmp.seek(0)
            yield tmp
    else:
        with open(path, "rb") as f:
            yield f


def iter_warc_documents(path: str, *, source: str = "web", license: str = "", max_docs: int | None = None,
                        quarantine: Quarantine | None = None) -> Iterator[Document]:
    from warcio.archiveiterator import ArchiveIterator

    name = os.path.basename(path)
    n = 0
    with open_stream(path) as stream:
        records = enumerate(ArchiveIterator(stream))
        while True:
            try:
                i, record = next(records)
            except StopIteration:
                return
            except Exception as e:  # a truncated tail (interrupted download or crawl): stop here
                if quarantine is not None:
                    quarantine.add(source, path, "tail", f"unreadable from here on: {type(e).__name__}: {e}")
                return
            if max_docs is not None and n >= max_docs:
                return
            try:
                doc = _record_document(record, name, source, license)
            except Exception as e:  # one broken record never stops the file
                if quarantine is not None:
                    quarantine.add(source, path, i, f"{type(e).__name__}: {e}")
                continue
            if doc is not None:
                n += 1
                yield doc


def _record_document(record: Any, file_name: str, source: str, license: str) -> Document | None:
    rtype = record.rec_type
    if rtype not in ("response", "resource", "conversion"):
        return None
    h = record.rec_headers
    url = h.get_header("WARC-Target-URI") or ""
    rid = h.get_header("WARC-Record-ID") or f"{file_name}:{url}"
    meta: dict[str, Any] = {"warc_file": file_name, "warc_record_id": rid,
                            "warc_date": h.get_header("WARC-Date") or "", "collect": "warc"}
    if rtype == "response":
        if record.http_headers is None:
            return None
        status = record.http_headers.get_statuscode()
        meta["http_status"] = int(status) if str(status).isdigit() else status
        if str(status) != "200":
            return None
        ctype = record.http_headers.get_header("Content-Type") or ""
        if record.http_headers.get_header("Last-Modified"):  # the page's own date (date cutoff)
            meta["last_modified"] = record.http_headers.get_header("Last-Modified")
    elif rtype == "conversion":
        ctype = h.get_header("Content-Type") or "text/plain"
        meta["warc_refers_to"] = h.get_header("WARC-Refers-To") or ""
    else:
        ctype = h.get_header("Content-Type") or ""
    body = record.content_stream().read()
    if rtype == "conversion":
        converted = (body.decode("utf-8", errors="replace"), "text/plain", "text")
    else:
        converted = to_text(body, ctype)
    if converted is None:
        return None
    text, mime, fmt = converted
    if not text.strip():
        return None
    meta.update(mime=mime, format=fmt)
    if h.get_header("WARC-Identified-Content-Language"):
        meta["cc_languages"] = h.get_header("WARC-Identified-Content-Language")
    return Document(id=f"{source}:{doc_id(rid)}", text=text, source=source, url=url, license=license,
                    version=meta["warc_date"][:10], metadata=meta)


class WarcSink(AbstractContextManager):
    """Append-only WARC writer (gzip per record) with a warcinfo header; used by the crawler."""

    def __init__(self, path: Path, info: dict[str, str] | None = None):
        from warcio.warcwriter import WARCWriter

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "wb")
        self._w = WARCWriter(self._f, gzip=str(self.path).endswith(".gz"))
        rec = self._w.create_warcinfo_record(self.path.name, info or {"software": "secfoundry"})
        self._w.write_record(rec)

    def write_response(self, url: str, status: int, reason: str, headers: list[tuple[str, str]],
                       body: bytes, extra: dict[str, str] | None = None) -> None:
        from warcio.statusandheaders import StatusAndHeaders

        # Bodies are stored decoded (httpx undoes Content-Encoding), so drop encoding headers
        # that would make a replay try to decode them twice.
        skip = {"content-encoding", "transfer-encoding", "content-length"}
        hdrs = [(k, v) for k, v in headers if k.lower() not in skip]
        hdrs.append(("Content-Length", str(len(body))))
        http = StatusAndHeaders(f"{status} {reason or 'OK'}", hdrs, protocol="HTTP/1.1")
        rec = self._w.create_warc_record(url, "response", payload=io.BytesIO(body),
                                         http_headers=http, warc_headers_dict=extra or {})
        self._w.write_record(rec)
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __exit__(self, *exc: Any) -> None:
        self.close()
