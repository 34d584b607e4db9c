/**
 * CRC-32 (the zlib/PNG polynomial, as Python's `zlib.crc32`): node:zlib's own where it has one
 * (Node ≥ 20.15), else a table-driven twin (Debian's Node 18).
 */
import * as zlib from "node:zlib";

let table: Uint32Array | null = null;

function crc32Js(data: Buffer): number {
  if (table === null) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = table[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

const native = (zlib as unknown as { crc32?: (d: Buffer | string) => number }).crc32;

/** The CRC-32 of `data` (a string is hashed as its UTF-8 bytes). */
export function crc32(data: Buffer | string): number {
  const buf = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  return native ? native(buf) : crc32Js(buf);
}

/** @internal The JavaScript twin, exported so the tests compare it with node:zlib's. */
export const crc32Fallback = crc32Js;
