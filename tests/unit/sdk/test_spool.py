"""The spool's framing, cursor, corruption handling, size limit and ownership (pure file I/O)."""

from __future__ import annotations

from pathlib import Path

from inferwatch.sdk.spool import Record, Spool, adoptable_spools, open_spool


def _drain(sp: Spool) -> tuple[list[Record], int]:
    out: list[Record] = []
    corrupt = 0
    for _ in range(1000):
        b = sp.read_batch(max_records=7)
        corrupt += b.corrupt
        out.extend(b.records)
        sp.commit(b.segment, b.end)
        if not b.records and not sp.has_pending():
            break
    return out, corrupt


def test_records_come_back_in_order_across_segments(tmp_path: Path) -> None:
    sp = Spool(tmp_path, segment_bytes=200)
    for i in range(50):
        assert sp.append(i % 2, b"m", f"v{i}".encode())
    assert len(list(tmp_path.glob("seg-*.spool"))) > 3
    recs, corrupt = _drain(sp)
    assert [r.value for r in recs] == [f"v{i}".encode() for i in range(50)]
    assert [r.kind for r in recs] == [i % 2 for i in range(50)]
    assert corrupt == 0
    assert sp.disk_bytes == 0 and not list(tmp_path.glob("seg-*.spool"))


def test_a_new_owner_resumes_from_the_cursor(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    for i in range(10):
        sp.append(0, b"k", str(i).encode())
    b = sp.read_batch(max_records=4)
    sp.commit(b.segment, b.end)
    sp.close()
    sp2 = Spool(tmp_path)
    recs, _ = _drain(sp2)
    assert [r.value for r in recs] == [str(i).encode() for i in range(4, 10)]


def test_a_corrupt_record_is_skipped_and_counted(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    for i in range(5):
        sp.append(0, b"k", f"value-{i}".encode())
    sp.close()
    seg = next(tmp_path.glob("seg-*.spool"))
    data = bytearray(seg.read_bytes())
    rec_len = len(data) // 5
    data[2 * rec_len + 20] ^= 0xFF  # flip a byte inside the third record's body
    seg.write_bytes(bytes(data))
    recs, corrupt = _drain(Spool(tmp_path))
    assert [r.value for r in recs] == [b"value-0", b"value-1", b"value-3", b"value-4"]
    assert corrupt == 1


def test_a_torn_tail_is_skipped(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    for i in range(3):
        sp.append(1, b"k", f"value-{i}".encode())
    sp.close()
    seg = next(tmp_path.glob("seg-*.spool"))
    seg.write_bytes(seg.read_bytes()[:-5])
    recs, corrupt = _drain(Spool(tmp_path))
    assert [r.value for r in recs] == [b"value-0", b"value-1"]
    assert corrupt == 1


def test_the_size_limit_refuses_appends(tmp_path: Path) -> None:
    sp = Spool(tmp_path, max_bytes=500)
    accepted = sum(sp.append(0, b"k", b"x" * 50) for _ in range(100))
    assert 0 < accepted < 100
    assert sp.disk_bytes <= 500


def test_a_busy_directory_gives_a_subdirectory_that_is_adopted_later(tmp_path: Path) -> None:
    owner = open_spool(tmp_path, 1 << 20)
    second = open_spool(tmp_path, 1 << 20)
    assert second.directory.parent == tmp_path
    second.append(0, b"k", b"orphaned")
    second.close()  # its process "died"
    adopted = adoptable_spools(tmp_path, owner)
    assert [s.directory for s in adopted] == [second.directory]
    recs, _ = _drain(adopted[0])
    assert [r.value for r in recs] == [b"orphaned"]
