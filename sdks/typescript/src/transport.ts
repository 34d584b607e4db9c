/**
 * Where serialised events go. The logger hands each event to a `Transport` and never waits:
 * `send()` only enqueues. `KafkaTransport` (./kafka.ts) is the real one; `MemoryTransport` keeps
 * what it is given, for the shared test vectors and for callers that want to inspect events
 * without a broker.
 */

/** The kind of an event, which picks its topic. */
export type EventKind = "prediction" | "feedback";

/** Counters every transport reports (merged into `InferenceLogger.stats()`). */
export interface TransportStats {
  /** Events handed to the transport. */
  logged: number;
  /** Events the broker acknowledged. */
  delivered: number;
  /** Delivery reports with an error (the event was then spooled or dropped). */
  failed: number;
  /** Events written to the disk spool. */
  spooled: number;
  /** Events lost: queue and spool full (or no spool), logged after close. */
  dropped: number;
  /** Spooled events delivered later. */
  replayed: number;
  /** Events waiting in memory (before the broker acknowledged them). */
  in_queue: number;
  /** Bytes in the disk spool. */
  spool_bytes: number;
}

/** What the logger needs from a transport. */
export interface Transport {
  /** Enqueue one event; never throws on transport trouble, never blocks. */
  send(kind: EventKind, key: Buffer, payload: Buffer): void;
  /** Resolves true once nothing is left in memory or in the spool, false after `timeoutMs`. */
  flush(timeoutMs: number): Promise<boolean>;
  /** Delivers what it can in `timeoutMs`, spools the rest, releases sockets and timers. */
  close(timeoutMs: number): Promise<void>;
  /** The transport's counters. */
  stats(): TransportStats;
}

/** A sent event, as `MemoryTransport` keeps it. */
export interface SentEvent {
  kind: EventKind;
  key: Buffer;
  payload: Buffer;
}

/** Keeps every event in memory (tests, dry runs). */
export class MemoryTransport implements Transport {
  readonly sent: SentEvent[] = [];
  private closed = false;
  private droppedAfterClose = 0;

  send(kind: EventKind, key: Buffer, payload: Buffer): void {
    if (this.closed) {
      this.droppedAfterClose++;
      return;
    }
    this.sent.push({ kind, key, payload });
  }

  async flush(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  stats(): TransportStats {
    return {
      logged: this.sent.length, delivered: this.sent.length, failed: 0, spooled: 0,
      dropped: this.droppedAfterClose, replayed: 0, in_queue: 0, spool_bytes: 0,
    };
  }
}
