// The door's bounded reason classes for rejected events (the /metrics label), against the validator's real
// messages: every class is reached by some hostile input, and the full reason stays in the response.

import { describe, expect, it } from "bun:test";
import { createDoor, rejectReason, REJECT_REASONS } from "./door.ts";

const now = Date.parse("2026-11-30T12:00:00Z");
const door = () =>
  createDoor({
    sink: { partitions: 2, append() {} },
    context: () => ({ now, maxAgeMs: 400 * 86_400_000, currency: "USD" }),
    maxEvents: 1000,
  });
const ok = { eventId: "e-1", type: "page_view", timestamp: now - 1000, userId: "u1", sessionId: "s1", page: "/" };

describe("rejected events by reason class", () => {
  it("classifies the validator's messages into the bounded set", async () => {
    const d = door();
    const lines = [
      "{not json", // malformed
      JSON.stringify([1, 2]), // not an object: malformed
      JSON.stringify({ ...ok, eventId: "e-2", page: "x".repeat(5000) }), // oversized
      JSON.stringify({ ...ok, eventId: "e-3", type: "purchase", items: [{ price: 1, quantity: 1 }] }), // missing productId
      JSON.stringify({ ...ok, eventId: "e-4", type: "teleport" }), // unknown type
      JSON.stringify({ ...ok, eventId: "e-5", timestamp: now + 3_600_000 }), // future
      JSON.stringify({ ...ok, eventId: "e-6", sessionId: 42 }), // wrong type
      JSON.stringify(ok),
    ];
    const r = await d.ingest(new TextEncoder().encode(lines.join("\n")), "application/x-ndjson");
    expect(r.status).toBe(202);
    const body = r.body as { accepted: number; rejected: number; errors: Array<{ index: number; reason: string }> };
    expect([body.accepted, body.rejected]).toEqual([1, 7]);
    expect(body.errors.map((e) => rejectReason(e.reason))).toEqual([
      "malformed", "malformed", "oversized", "missing_field", "unknown_type", "timestamp", "invalid_field",
    ]);
    expect(d.stats.rejectedBy).toEqual({ malformed: 2, oversized: 1, missing_field: 1, unknown_type: 1, timestamp: 1, invalid_field: 1 });
    expect(Object.keys(d.stats.rejectedBy)).toEqual([...REJECT_REASONS]);
  });

  it("refuses new requests after close() with 503 shutting_down and waits for appends in flight", async () => {
    let release!: () => void;
    const d = createDoor({
      sink: { partitions: 1, append: () => new Promise<void>((r) => (release = r)) },
      context: () => ({ now, maxAgeMs: 400 * 86_400_000, currency: "USD" }),
      maxEvents: 10,
    });
    const first = d.ingest(new TextEncoder().encode(JSON.stringify(ok)), "application/json");
    let closed = false;
    const closing = d.close().then(() => (closed = true));
    const late = await d.ingest(new TextEncoder().encode(JSON.stringify({ ...ok, eventId: "e-9" })), "application/json");
    expect(late.status).toBe(503);
    expect((late.body as { error: { code: string } }).error.code).toBe("shutting_down");
    await Bun.sleep(10);
    expect(closed).toBe(false); // the first append is still in flight
    release();
    expect((await first).status).toBe(202);
    await closing;
    expect(closed).toBe(true);
  });
});
