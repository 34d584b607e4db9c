"""A bounded, append-only, on-disk spool for events that could not be handed to Kafka.

Wire format (little-endian). A spool directory holds ``.lock`` (an exclusive ``flock`` held by
the owning process), ``cursor`` (``<segment index> <byte offset>``: everything before it was
replayed) and segment files ``seg-<12-digit index>.spool``, each a sequence of records::

    magic b"IWS1" | body length u32 | crc32(body) u32 | body
    body = kind u8 | key length u16 | key bytes | value bytes   (kind 0 = prediction, 1 = feedback)

Writes are whole records with one ``os.write`` under a lock, so they survive the process being
killed (the page cache keeps them; ``fsync=True`` also survives power loss, at a cost). A writer
never appends to a segment that existed before it started (its tail may be torn); a reader
skips a record whose magic, length or checksum is wrong, resynchronises on the next magic and
counts it — corruption is never fatal. When the spool holds ``max_bytes``, ``append`` refuses.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import struct
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from inferwatch.sdk.errors import SpoolError

MAGIC = b"IWS1"
_HEAD = struct.Struct("<4sII")
_KEYLEN = struct.Struct("<BH")
_SEG_RE = re.compile(r"^seg-(\d{12})\.spool$")
DEFAULT_MAX_BYTES = 1 << 30
DEFAULT_SEGMENT_BYTES = 16 << 20


class Record(NamedTuple):
    """One spooled message: its kind (0 prediction, 1 feedback), key and value bytes."""

    kind: int
    key: bytes
    value: bytes


@dataclass
class Batch:
    """Records read from one segment; ``ends[i]`` is the offset just after record ``i``."""

    segment: int
    records: list[Record] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    end: int = 0
    corrupt: int = 0


def frame(kind: int, key: bytes, value: bytes) -> bytes:
    """One record in the spool's wire format."""
    body = _KEYLEN.pack(kind, len(key)) + key + value
    return _HEAD.pack(MAGIC, len(body), zlib.crc32(body)) + body


def _seg_name(index: int) -> str:
    return f"seg-{index:012d}.spool"


class Spool:
    """One spool directory, owned (locked) by this process: appends at the tail, reads from the cursor."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        max_bytes: int = DEFAULT_MAX_BYTES,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        fsync: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self._lock = threading.Lock()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SpoolError(f"cannot open spool {self.directory}: {exc}") from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._lock_fd)
            raise SpoolError(f"spool {self.directory} is in use by another process") from exc
        self._sizes: dict[int, int] = {}
        for p in self.directory.iterdir():
            m = _SEG_RE.match(p.name)
            if m:
                self._sizes[int(m.group(1))] = p.stat().st_size
        self.disk_bytes = sum(self._sizes.values())
        self._active = max(self._sizes, default=0) + 1  # never append to a pre-existing segment
        self._fd: int | None = None
        self._cursor = self._load_cursor()
        self.closed = False

    # -- writer -------------------------------------------------------------------------------
    def append(self, kind: int, key: bytes, value: bytes) -> bool:
        """Append one record; False when the size limit is reached (the caller counts a drop)."""
        rec = frame(kind, key, value)
        with self._lock:
            if self.closed or self.disk_bytes + len(rec) > self.max_bytes:
                return False
            if self._fd is None or self._sizes.get(self._active, 0) >= self.segment_bytes:
                self._roll()
            assert self._fd is not None
            view = memoryview(rec)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            if self.fsync:
                os.fsync(self._fd)
            self._sizes[self._active] = self._sizes.get(self._active, 0) + len(rec)
            self.disk_bytes += len(rec)
        return True

    def _roll(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            if self._sizes.get(self._active, 0) > 0:
                self._active += 1
        self._fd = os.open(self.directory / _seg_name(self._active), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._sizes.setdefault(self._active, 0)

    # -- reader -------------------------------------------------------------------------------
    def has_pending(self) -> bool:
        """Whether records (or unread bytes) lie after the cursor."""
        with self._lock:
            seg, off = self._cursor
            return any(i > seg and s > 0 for i, s in self._sizes.items()) or self._sizes.get(seg, 0) > off

    def read_batch(self, max_records: int = 5000, max_bytes: int = 4 << 20) -> Batch:
        """Read up to ``max_records`` records after the cursor, from one segment."""
        with self._lock:
            seg, off = self._cursor
            while True:
                size = self._sizes.get(seg)
                if size is not None:
                    if off < size:
                        break
                    if seg == self._active:
                        return Batch(seg, end=off)
                    self._delete_segment(seg)  # a finished segment the writer no longer uses
                nxt = min((i for i in self._sizes if i > seg), default=None)
                if nxt is None:
                    return Batch(seg, end=off)
                seg, off = nxt, 0
                self._cursor = (seg, off)
            end = size
        return self._parse_segment(seg, off, end, max_records, max_bytes)

    def _parse_segment(self, seg: int, off: int, end: int, max_records: int, max_bytes: int) -> Batch:
        batch = Batch(seg, end=off)
        want = min(end - off, max_bytes)
        with open(self.directory / _seg_name(seg), "rb") as f:
            while True:
                f.seek(off)
                buf = f.read(want)
                final = off + len(buf) >= end
                p, need = self._parse(buf, off, final, max_records, batch)
                if need and not batch.records and not final:
                    want = need  # one record bigger than max_bytes: read it whole
                    continue
                batch.end = off + p
                return batch

    @staticmethod
    def _parse(buf: bytes, base: int, final: bool, max_records: int, batch: Batch) -> tuple[int, int]:
        """Parse records from ``buf``; returns (bytes consumed, bytes needed for the next record or 0)."""
        p, n_buf = 0, len(buf)
        crc32, head, keylen = zlib.crc32, _HEAD, _KEYLEN
        while p < n_buf and len(batch.records) < max_records:
            if n_buf - p < head.size:
                if final:
                    batch.corrupt += 1  # a torn header at the end of the file
                    p = n_buf
                    break
                return p, head.size
            magic, n, crc = head.unpack_from(buf, p)
            if magic != MAGIC:
                batch.corrupt += 1
                q = buf.find(MAGIC, p + 1)
                p = q if q >= 0 else n_buf
                continue
            stop = p + head.size + n
            if stop > n_buf:
                if not final:
                    return p, head.size + n
                batch.corrupt += 1  # a torn record (or a corrupt length) at the end of the file
                q = buf.find(MAGIC, p + 1)
                p = q if q >= 0 else n_buf
                continue
            body = buf[p + head.size : stop]
            if n < keylen.size or crc32(body) != crc:
                batch.corrupt += 1
                q = buf.find(MAGIC, p + 1)
                p = q if q >= 0 else n_buf
                continue
            kind, klen = keylen.unpack_from(body, 0)
            if keylen.size + klen > n:
                batch.corrupt += 1
                p = stop
                continue
            k0 = keylen.size + klen
            batch.records.append(Record(kind, body[keylen.size : k0], body[k0:]))
            p = stop
            batch.ends.append(base + p)
        return p, 0

    def commit(self, segment: int, offset: int) -> None:
        """Everything before ``offset`` of ``segment`` was replayed: move the cursor, free finished files."""
        with self._lock:
            if (segment, offset) <= self._cursor:
                return
            self._cursor = (segment, offset)
            size = self._sizes.get(segment, 0)
            if offset >= size and size > 0:
                if segment == self._active and self._fd is not None:
                    # The writer's segment is fully replayed: start a fresh one so this can go.
                    os.close(self._fd)
                    self._fd = None
                    self._active += 1
                self._delete_segment(segment)
                nxt = min((i for i in self._sizes if i > segment), default=self._active)
                self._cursor = (nxt, 0)
            self._save_cursor()

    def _delete_segment(self, index: int) -> None:
        size = self._sizes.pop(index, 0)
        self.disk_bytes -= size
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.directory / _seg_name(index))

    def _load_cursor(self) -> tuple[int, int]:
        first = min(self._sizes, default=self._active)
        try:
            seg_s, off_s = (self.directory / "cursor").read_text().split()
            seg, off = int(seg_s), int(off_s)
        except (OSError, ValueError):
            return (first, 0)
        return (seg, off) if seg in self._sizes else (first, 0)

    def _save_cursor(self) -> None:
        tmp = self.directory / "cursor.tmp"
        tmp.write_text(f"{self._cursor[0]} {self._cursor[1]}\n")
        os.replace(tmp, self.directory / "cursor")

    def close(self) -> None:
        """Close the files and release the directory lock (records stay for the next process)."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)


def open_spool(root: str | os.PathLike[str], max_bytes: int, fsync: bool = False) -> Spool:
    """Own ``root`` if free; else (another process owns it) a fresh ``root/w-<pid>-<rand>`` subdirectory.

    Orphaned subdirectories are adopted and replayed by :func:`adoptable_spools`.
    """
    try:
        return Spool(root, max_bytes=max_bytes, fsync=fsync)
    except SpoolError:
        sub = Path(root) / f"w-{os.getpid()}-{os.urandom(3).hex()}"
        return Spool(sub, max_bytes=max_bytes, fsync=fsync)


def adoptable_spools(root: str | os.PathLike[str], own: Spool) -> list[Spool]:
    """Spools under ``root`` (root itself and ``w-*`` subdirs) that no live process owns."""
    rootp = Path(root)
    candidates = [rootp] + sorted(p for p in rootp.glob("w-*") if p.is_dir()) if rootp.is_dir() else []
    out = []
    for d in candidates:
        if d.resolve() == own.directory.resolve():
            continue
        try:
            out.append(Spool(d, max_bytes=0))
        except SpoolError:
            continue
    return out
