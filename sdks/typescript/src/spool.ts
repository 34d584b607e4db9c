/**
 * A bounded, append-only, on-disk spool for events Kafka could not take: the Python SDK's wire
 * format (`inferwatch.sdk.spool`), so its files read the same in both SDKs.
 *
 * Wire format (little-endian). A spool directory holds `cursor` (`<segment index> <byte offset>`:
 * everything before it was replayed) and segment files `seg-<12-digit index>.spool`, each a
 * sequence of records:
 *
 *     magic "IWS1" | body length u32 | crc32(body) u32 | body
 *     body = kind u8 | key length u16 | key bytes | value bytes   (kind 0 = prediction, 1 = feedback)
 *
 * Each record is one `writeSync` (it survives the process being killed; the page cache keeps it).
 * A writer never appends to a segment that existed before it started (its tail may be torn); a
 * reader skips a record whose magic, length or checksum is wrong and resynchronises on the next
 * magic. When the spool holds `maxBytes`, `append` refuses (the event is dropped and counted).
 *
 * Differences from the Python spool, documented in the README: the directory is owned through a
 * `.lock-ts` file holding the owner's pid (Node has no `flock`), taken over when that process is
 * gone; spools of other dead processes are not adopted.
 */

import {
  closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync,
  writeFileSync, writeSync,
} from "node:fs";
import { join } from "node:path";
import { crc32 } from "./crc32.js";
import type { EventKind } from "./transport.js";

const MAGIC = Buffer.from("IWS1");
const HEAD = 12;
const SEG_RE = /^seg-(\d{12})\.spool$/;
export const DEFAULT_MAX_BYTES = 1 << 30;
const SEGMENT_BYTES = 16 << 20;
const KINDS: EventKind[] = ["prediction", "feedback"];

/** One spooled event. */
export interface SpoolRecord {
  kind: EventKind;
  key: Buffer;
  payload: Buffer;
}

/** One record in the spool's wire format. */
export function frame(kind: EventKind, key: Buffer, value: Buffer): Buffer {
  const body = Buffer.alloc(3 + key.length + value.length);
  body.writeUInt8(KINDS.indexOf(kind), 0);
  body.writeUInt16LE(key.length, 1);
  key.copy(body, 3);
  value.copy(body, 3 + key.length);
  const head = Buffer.alloc(HEAD);
  MAGIC.copy(head, 0);
  head.writeUInt32LE(body.length, 4);
  head.writeUInt32LE(crc32(body), 8);
  return Buffer.concat([head, body]);
}

/** Records of `buf` from `offset`; corrupt stretches are skipped and counted. */
export function parse(buf: Buffer, offset = 0): { records: SpoolRecord[]; ends: number[]; corrupt: number } {
  const records: SpoolRecord[] = [];
  const ends: number[] = [];
  let corrupt = 0;
  let i = offset;
  while (i + HEAD <= buf.length) {
    if (!buf.subarray(i, i + 4).equals(MAGIC)) {
      const next = buf.indexOf(MAGIC, i + 1);
      corrupt++;
      if (next < 0) break;
      i = next;
      continue;
    }
    const len = buf.readUInt32LE(i + 4);
    const sum = buf.readUInt32LE(i + 8);
    const body = buf.subarray(i + HEAD, i + HEAD + len);
    if (body.length < len || len < 3 || crc32(body) !== sum || body[0] > 1 || 3 + body.readUInt16LE(1) > len) {
      corrupt++;
      const next = buf.indexOf(MAGIC, i + 1);
      if (next < 0) break;
      i = next;
      continue;
    }
    const klen = body.readUInt16LE(1);
    records.push({ kind: KINDS[body[0]], key: Buffer.from(body.subarray(3, 3 + klen)), payload: Buffer.from(body.subarray(3 + klen)) });
    i += HEAD + len;
    ends.push(i);
  }
  return { records, ends, corrupt };
}

const segName = (i: number): string => `seg-${String(i).padStart(12, "0")}.spool`;

/** One spool directory owned by this process: appends at the tail, reads from the cursor. */
export class Spool {
  readonly directory: string;
  readonly maxBytes: number;
  private fd: number | null = null;
  private tail: number;
  private tailBytes = 0;
  private cursor: [number, number];
  private batchEnd: [number, number] | null = null;
  private total = 0;
  /** Corrupt records skipped while reading. */
  corruptSkipped = 0;

  constructor(directory: string, maxBytes: number = DEFAULT_MAX_BYTES) {
    this.directory = directory;
    this.maxBytes = maxBytes;
    mkdirSync(directory, { recursive: true });
    this.lock();
    this.cursor = this.loadCursor();
    const segs = this.segments();
    for (const s of segs) this.total += statSync(join(directory, segName(s))).size;
    // Never append to a segment that existed before: its tail may be torn.
    this.tail = segs.length ? segs[segs.length - 1] + 1 : Math.max(1, this.cursor[0]);
  }

  private lock(): void {
    const path = join(this.directory, ".lock-ts");
    if (existsSync(path)) {
      const pid = Number(readFileSync(path, "utf8").trim());
      if (pid && pid !== process.pid && alive(pid)) {
        throw new Error(`inferwatch: the spool ${this.directory} is used by process ${pid}`);
      }
    }
    writeFileSync(path, `${process.pid}\n`);
  }

  private segments(): number[] {
    return readdirSync(this.directory)
      .map((n) => SEG_RE.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
  }

  private loadCursor(): [number, number] {
    try {
      const [a, b] = readFileSync(join(this.directory, "cursor"), "utf8").split(/\s+/).map(Number);
      if (Number.isInteger(a) && Number.isInteger(b)) return [a, b];
    } catch {
      // no cursor yet: start at the first segment
    }
    const segs = this.segments();
    return [segs.length ? segs[0] : 1, 0];
  }

  private saveCursor(): void {
    const tmp = join(this.directory, "cursor.tmp");
    writeFileSync(tmp, `${this.cursor[0]} ${this.cursor[1]}\n`);
    renameSync(tmp, join(this.directory, "cursor"));
  }

  /** Append one event; false when the spool is full or the disk refuses (the caller counts a drop). */
  append(kind: EventKind, key: Buffer, payload: Buffer): boolean {
    const rec = frame(kind, key, payload);
    if (this.total + rec.length > this.maxBytes) return false;
    try {
      if (this.fd === null || this.tailBytes + rec.length > SEGMENT_BYTES) {
        if (this.fd !== null) {
          closeSync(this.fd);
          this.tail++;
        }
        this.fd = openSync(join(this.directory, segName(this.tail)), "a");
        this.tailBytes = 0;
      }
      writeSync(this.fd, rec);
    } catch {
      return false;
    }
    this.tailBytes += rec.length;
    this.total += rec.length;
    return true;
  }

  /** Whether records (or unread bytes) lie after the cursor. */
  isEmpty(): boolean {
    const segs = this.segments();
    for (const s of segs) {
      if (s < this.cursor[0]) continue;
      const size = statSync(join(this.directory, segName(s))).size;
      if (size > (s === this.cursor[0] ? this.cursor[1] : 0)) return false;
    }
    return true;
  }

  /** Up to `max` records after the cursor, from one segment; `commitBatch()` marks them replayed. */
  readBatch(max = 1000): SpoolRecord[] {
    for (const s of this.segments()) {
      if (s < this.cursor[0]) continue;
      const off = s === this.cursor[0] ? this.cursor[1] : 0;
      const buf = readFileSync(join(this.directory, segName(s)));
      if (buf.length <= off) {
        if (s !== this.tail) this.finishSegment(s);
        continue;
      }
      const { records, ends, corrupt } = parse(buf, off);
      this.corruptSkipped += corrupt;
      const n = Math.min(max, records.length);
      if (n === 0) {
        // only corrupt bytes (or a torn tail) left in an old segment: skip past them
        if (s !== this.tail) this.finishSegment(s);
        continue;
      }
      this.batchEnd = [s, n === records.length && s !== this.tail ? buf.length : ends[n - 1]];
      return records.slice(0, n);
    }
    return [];
  }

  /** Move the cursor past the last batch read; delete finished segments. */
  commitBatch(): void {
    if (this.batchEnd === null) return;
    const [s, off] = this.batchEnd;
    this.batchEnd = null;
    this.cursor = [s, off];
    if (s !== this.tail && off >= statSync(join(this.directory, segName(s))).size) this.finishSegment(s);
    else this.saveCursor();
  }

  private finishSegment(s: number): void {
    const path = join(this.directory, segName(s));
    try {
      this.total -= statSync(path).size;
      unlinkSync(path);
    } catch {
      // already gone
    }
    const next = this.segments().find((x) => x > s) ?? this.tail;
    this.cursor = [next, 0];
    this.saveCursor();
  }

  /** Bytes held. */
  bytes(): number {
    return Math.max(0, this.total);
  }

  /** Close the tail file and release the directory (records stay for the next process). */
  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    try {
      unlinkSync(join(this.directory, ".lock-ts"));
    } catch {
      // not ours any more
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (exc) {
    return (exc as NodeJS.ErrnoException).code === "EPERM";
  }
}
