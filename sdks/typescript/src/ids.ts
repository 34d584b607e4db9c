/**
 * Event ids like the Python SDK's (`inferwatch.sdk.ids`): `<16 hex random>-<decimal counter>`.
 * The prefix is 64 random bits per generator, so two processes collide only if their prefixes do.
 */
import { randomBytes } from "node:crypto";

/** Generates `<prefix><counter>` ids; tests inject a fixed prefix (and start) to get fixed ids. */
export class IdGenerator {
  /** The id prefix, `<16 hex>-` unless given. */
  readonly prefix: string;
  private counter: number;

  constructor(prefix?: string, start = 1) {
    this.prefix = prefix ?? `${randomBytes(8).toString("hex")}-`;
    this.counter = start;
  }

  /** A new id, unique within this generator and (with overwhelming probability) across processes. */
  nextId(): string {
    return this.prefix + this.counter++;
  }
}
