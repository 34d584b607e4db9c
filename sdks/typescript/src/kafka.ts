/**
 * The Kafka transport: node-rdkafka (librdkafka, the C client the Python SDK uses through
 * confluent-kafka), idempotent producer, acks=all, lz4.
 *
 * Wire format: each event is its JSON (UTF-8) as the message value, keyed by the model name, on
 * `<prefix>inferwatch.predictions` / `<prefix>inferwatch.feedback`.
 *
 * `send()` never blocks and never throws: before the producer is connected events wait in a
 * bounded in-memory list; librdkafka's queue full, a delivery failure or an unreachable broker
 * send the event to the disk spool (./spool.ts) when one is configured, else count it as dropped.
 * Delivery reports are served by node-rdkafka's poll timer on the event loop.
 */

import Kafka from "node-rdkafka";
import { CONTRACT as C } from "./contract.generated.js";
import type { LoggerOptions } from "./logger.js";
import { Spool } from "./spool.js";
import type { EventKind, Transport, TransportStats } from "./transport.js";

/** librdkafka defaults, as the Python SDK's (`inferwatch.sdk.producer_config.DEFAULTS`). */
export const PRODUCER_DEFAULTS: Record<string, string | number | boolean> = {
  // No duplicates from retries, in-order per partition, all in-sync replicas ack.
  "enable.idempotence": true,
  acks: "all",
  // lz4: librdkafka's bundled codec (zstd needs libzstd at build time) and what the processor reads.
  "compression.type": "lz4",
  "linger.ms": 10,
  "batch.size": 1_000_000,
  "batch.num.messages": 10_000,
  // Bounded memory whatever the broker does: beyond this, produce() throws QUEUE_FULL -> spool.
  "queue.buffering.max.messages": 200_000,
  "queue.buffering.max.kbytes": 32_768,
  // An unreachable broker turns queued events into delivery failures (-> spool) within 30 s.
  "message.timeout.ms": 30_000,
  "socket.keepalive.enable": true,
  "client.id": "inferwatch-sdk-ts",
};

/** Events held in memory before the producer is connected, at most. */
const PENDING_MAX = 100_000;
const POLL_INTERVAL_MS = 50;
const ERR_QUEUE_FULL = -184;

interface Pending {
  kind: EventKind;
  key: Buffer;
  payload: Buffer;
}

// node-rdkafka is CommonJS with a native addon (librdkafka built from source at install).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type RdKafka = any;

/** The topics of a deployment: the registry's names under the prefix. */
export function topicsFor(prefix: string): Record<EventKind, string> {
  return { prediction: `${prefix}${C.PREDICTIONS_TOPIC}`, feedback: `${prefix}${C.FEEDBACK_TOPIC}` };
}

/** Sends events to Kafka with node-rdkafka; see the module comment. */
export class KafkaTransport implements Transport {
  readonly topics: Record<EventKind, string>;
  readonly config: Record<string, string | number | boolean>;
  private readonly producer: RdKafka;
  private readonly spool: Spool | null;
  private ready = false;
  private closed = false;
  private pending: Pending[] = [];
  private inflight = 0;
  private counts = { logged: 0, delivered: 0, failed: 0, spooled: 0, dropped: 0, replayed: 0 };
  private replaying = false;
  private replayTimer: NodeJS.Timeout | null = null;
  private connectTimer: NodeJS.Timeout | null = null;
  private lastError = "";

  constructor(opts: {
    bootstrap?: string;
    topicPrefix?: string;
    producerConfig?: Record<string, string | number | boolean>;
    spoolDir?: string;
    spoolMaxBytes?: number;
  }) {
    this.topics = topicsFor(opts.topicPrefix ?? process.env.INFERWATCH_TOPIC_PREFIX ?? "");
    this.config = {
      ...PRODUCER_DEFAULTS,
      "bootstrap.servers": opts.bootstrap ?? process.env.INFERWATCH_KAFKA_BOOTSTRAP ?? "127.0.0.1:9092",
      ...(opts.producerConfig ?? {}),
      dr_cb: true,
    };
    this.spool = opts.spoolDir ? new Spool(opts.spoolDir, opts.spoolMaxBytes) : null;
    this.producer = new Kafka.Producer(this.config, {});
    this.producer.on("delivery-report", (err: Error | null, report: { opaque?: Pending }) => this.onDelivery(err, report));
    this.producer.on("event.error", (err: Error) => {
      this.lastError = err.message;
    });
    this.producer.on("ready", () => {
      this.ready = true;
      this.producer.setPollInterval(POLL_INTERVAL_MS);
      const waiting = this.pending;
      this.pending = [];
      for (const p of waiting) this.produce(p);
      this.scheduleReplay(0);
    });
    this.connect();
  }

  /**
   * Connect (node-rdkafka produces only once it has the cluster's metadata). A broker away at
   * start fails the attempt after `message.timeout.ms`: the events waiting meanwhile are then
   * treated as librdkafka treats queued events at that timeout -- spooled, or dropped without a
   * spool -- and the next attempt starts a second later.
   */
  private connect(): void {
    if (this.closed) return;
    const timeout = Number(this.config["message.timeout.ms"] ?? 30_000);
    this.producer.connect({ timeout }, (err: Error | null) => {
      if (!err || this.closed) return;
      this.lastError = err.message;
      const waiting = this.pending;
      this.pending = [];
      this.counts.failed += waiting.length;
      for (const p of waiting) this.spoolOrDrop(p);
      this.connectTimer = setTimeout(() => {
        this.connectTimer = null;
        this.connect();
      }, 1000);
      this.connectTimer.unref();
    });
  }

  send(kind: EventKind, key: Buffer, payload: Buffer): void {
    if (this.closed) {
      this.counts.dropped++;
      return;
    }
    this.counts.logged++;
    const p: Pending = { kind, key, payload };
    if (!this.ready) {
      if (this.pending.length < PENDING_MAX) this.pending.push(p);
      else this.spoolOrDrop(p);
      return;
    }
    this.produce(p);
  }

  private produce(p: Pending): void {
    try {
      // The Pending is the opaque: a failed delivery report gives back what to spool.
      this.producer.produce(this.topics[p.kind], null, p.payload, p.key, null, p);
      this.inflight++;
    } catch (exc) {
      const code = (exc as { code?: number }).code;
      this.lastError = (exc as Error).message;
      if (code !== ERR_QUEUE_FULL) this.counts.failed++;
      this.spoolOrDrop(p);
    }
  }

  private onDelivery(err: Error | null, report: { opaque?: Pending | { replay: (ok: boolean) => void } }): void {
    this.inflight--;
    const op = report?.opaque;
    if (op && "replay" in op) {
      // A spooled event sent again: on failure it stays in the spool (not counted again).
      if (err) this.lastError = err.message;
      op.replay(!err);
      return;
    }
    if (!err) {
      this.counts.delivered++;
      return;
    }
    this.counts.failed++;
    this.lastError = err.message;
    if (op) this.spoolOrDrop(op);
    else this.counts.dropped++;
  }

  private spoolOrDrop(p: Pending): void {
    if (this.spool !== null && this.spool.append(p.kind, p.key, p.payload)) {
      this.counts.spooled++;
      this.scheduleReplay(1000);
    } else {
      this.counts.dropped++;
    }
  }

  /** Replays the spool (oldest first) while the producer takes events; retried every second. */
  private scheduleReplay(delayMs: number): void {
    if (this.spool === null || this.replayTimer !== null || this.closed) return;
    this.replayTimer = setTimeout(() => {
      this.replayTimer = null;
      this.replay();
    }, delayMs);
    this.replayTimer.unref();
  }

  private replay(): void {
    if (this.spool === null || !this.ready || this.replaying || this.spool.isEmpty()) return;
    this.replaying = true;
    const records = this.spool.readBatch(1000);
    let sent = 0;
    let pendingReports = records.length;
    const settle = (ok: boolean): void => {
      if (ok) sent++;
      if (--pendingReports > 0) return;
      this.replaying = false;
      if (sent === records.length) {
        this.spool!.commitBatch();
        this.counts.replayed += sent;
        if (!this.spool!.isEmpty()) this.scheduleReplay(0);
      } else {
        // The broker is still away: the batch stays in the spool (at-least-once) and is retried.
        this.scheduleReplay(1000);
      }
    };
    if (records.length === 0) {
      this.replaying = false;
      return;
    }
    for (const r of records) {
      const opaque = { replay: settle };
      try {
        this.producer.produce(this.topics[r.kind], null, r.payload, r.key, null, opaque);
        this.inflight++;
      } catch {
        settle(false);
      }
    }
  }

  /** Resolves true when nothing is left in memory or in the spool; false after `timeoutMs`. */
  async flush(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.ready && this.pending.length === 0 && this.inflight === 0 && (this.spool === null || this.spool.isEmpty())) {
        return true;
      }
      if (this.spool !== null && !this.spool.isEmpty()) this.scheduleReplay(0);
      const left = deadline - Date.now();
      if (left <= 0) return false;
      if (this.ready && this.inflight > 0) {
        await new Promise<void>((res) => this.producer.flush(Math.min(left, 200), () => res()));
      } else {
        await new Promise((res) => setTimeout(res, Math.min(left, 20)));
      }
    }
  }

  /** Flushes for `timeoutMs`, spools what is still in memory, disconnects. */
  async close(timeoutMs = 5000): Promise<void> {
    if (this.closed) return;
    await this.flush(timeoutMs);
    this.closed = true;
    if (this.replayTimer !== null) clearTimeout(this.replayTimer);
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    for (const p of this.pending) this.spoolOrDrop(p);
    this.pending = [];
    if (this.producer.isConnected()) {
      await new Promise<void>((res) => {
        try {
          this.producer.disconnect(1000, () => res());
        } catch {
          res();
        }
      });
    }
    this.spool?.close();
  }

  stats(): TransportStats {
    return {
      ...this.counts,
      in_queue: this.pending.length + Math.max(0, this.inflight),
      spool_bytes: this.spool?.bytes() ?? 0,
    };
  }

  /** The last error librdkafka reported (empty when none), for diagnostics. */
  get lastErrorText(): string {
    return this.lastError;
  }
}

/** The default transport of `new InferenceLogger()` (registered by index.ts). */
export function kafkaTransportFor(opts: LoggerOptions): Transport {
  return new KafkaTransport(opts);
}
