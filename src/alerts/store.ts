// Durable alerting state in <data-dir>/alerts.db (bun:sqlite): rules created through the API, each
// rule's evaluation state (so a restart neither re-fires nor forgets an open alert) and the
// firing/resolved history with each notification's delivery outcome.

import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { RuleState } from "./evaluate.ts";
import type { AlertRule } from "./rules.ts";

/** none: no webhook configured; interrupted: the process stopped before the delivery finished */
export type Delivery = "pending" | "delivered" | "failed" | "none" | "interrupted";

/** One firing or resolved message, as kept in the history. */
export interface HistoryEntry {
  seq: number;
  ruleId: string;
  ruleName: string;
  severity: string;
  status: "firing" | "resolved";
  fingerprint: string;
  metric: string;
  value: number | null;
  reference: number | null;
  window: { from: number; to: number };
  startsAt: number;
  endsAt: number | null;
  /** processing time the transition was recorded */
  at: number;
  /** why a resolve happened without a healthy window: rule_changed, rule_deleted, rule_removed */
  reason: string | null;
  delivery: Delivery;
}

export interface StoredState {
  rule: AlertRule;
  state: RuleState;
}

export interface AlertStore {
  apiRules(): AlertRule[];
  putRule(rule: AlertRule): void;
  deleteRule(id: string): boolean;
  /** each rule's state with the definition it was evaluated under (to resolve alerts of rules that are gone) */
  states(): Map<string, StoredState>;
  saveState(id: string, stored: StoredState): void;
  deleteState(id: string): void;
  /** appends and returns the entry with its sequence number */
  append(entry: Omit<HistoryEntry, "seq">): HistoryEntry;
  setDelivery(seq: number, delivery: Delivery): void;
  /** marks deliveries a previous process left pending; returns how many */
  interruptPending(): number;
  /** newest first */
  history(limit: number): HistoryEntry[];
  close(): void;
}

/** History rows kept; older ones are pruned as new ones arrive. */
const KEEP_HISTORY = 10_000;

export function openAlertStore(dataDir: string): AlertStore {
  mkdirSync(dataDir, { recursive: true });
  const db = new Database(join(dataDir, "alerts.db"), { create: true });
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
  db.exec(`
    CREATE TABLE IF NOT EXISTS api_rules (id TEXT PRIMARY KEY, body TEXT NOT NULL, updated_at INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS rule_state (id TEXT PRIMARY KEY, body TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS history (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, delivery TEXT NOT NULL);
  `);
  const qRules = db.query<{ body: string }, []>("SELECT body FROM api_rules ORDER BY id");
  const qPutRule = db.query("INSERT INTO api_rules (id, body, updated_at) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at");
  const qDelRule = db.query("DELETE FROM api_rules WHERE id = ?");
  const qStates = db.query<{ id: string; body: string }, []>("SELECT id, body FROM rule_state");
  const qPutState = db.query("INSERT INTO rule_state (id, body) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET body = excluded.body");
  const qDelState = db.query("DELETE FROM rule_state WHERE id = ?");
  const qAppend = db.query<{ seq: number }, [string, string]>("INSERT INTO history (body, delivery) VALUES (?, ?) RETURNING seq");
  const qPrune = db.query("DELETE FROM history WHERE seq <= ?");
  const qDelivery = db.query("UPDATE history SET delivery = ? WHERE seq = ?");
  const qHistory = db.query<{ seq: number; body: string; delivery: string }, [number]>("SELECT seq, body, delivery FROM history ORDER BY seq DESC LIMIT ?");

  return {
    apiRules: () => qRules.all().map((r) => JSON.parse(r.body) as AlertRule),
    putRule: (rule) => void qPutRule.run(rule.id, JSON.stringify(rule), Date.now()),
    deleteRule: (id) => qDelRule.run(id).changes > 0,
    states: () => new Map(qStates.all().map((r) => [r.id, JSON.parse(r.body) as StoredState])),
    saveState: (id, stored) => void qPutState.run(id, JSON.stringify(stored)),
    deleteState: (id) => void qDelState.run(id),
    append(entry) {
      const { delivery, ...rest } = entry;
      const seq = qAppend.get(JSON.stringify(rest), delivery)!.seq;
      if (seq % 100 === 0) qPrune.run(seq - KEEP_HISTORY);
      return { ...entry, seq };
    },
    setDelivery: (seq, delivery) => void qDelivery.run(delivery, seq),
    interruptPending: () => db.query("UPDATE history SET delivery = 'interrupted' WHERE delivery = 'pending'").run().changes,
    history: (limit) => qHistory.all(limit).map((r) => ({ ...(JSON.parse(r.body) as Omit<HistoryEntry, "seq" | "delivery">), seq: r.seq, delivery: r.delivery as Delivery })),
    close: () => db.close(),
  };
}
