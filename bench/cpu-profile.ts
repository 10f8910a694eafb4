// Summarises a .cpuprofile of the server's main thread into the few places ingest time goes
// (door, aggregator drain, checkpoint and its parts, queries): first category, in priority order, with a frame on the stack.

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

const CATEGORIES: Array<[string, (fn: string, url: string) => boolean]> = [
  ["checkpoint", (f) => f.includes("runCheckpoint")],
  ["door (parse, validate, wire form, log append)", (_f, u) => u.endsWith("/door.ts")],
  ["aggregator drain (apply, advance)", (_f, u) => u.endsWith("/worker-pool.ts")],
  ["queries and live views", (_f, u) => u.endsWith("/query.ts") || u.endsWith("/engine.ts")],
];

// inside a checkpoint: the first frame below runCheckpoint that says what part it is
const CHECKPOINT_PARTS: Array<[string, (fn: string, url: string) => boolean]> = [
  ["checkpoint: corrections read back (readWindows)", (f) => f === "readWindows"],
  ["checkpoint: corrections merge (mergeEncoded, mergePane)", (f) => f === "mergeEncoded" || f === "mergePane"],
  ["checkpoint: encode panes (encodePane)", (f) => f === "encodePane"],
  ["checkpoint: capture (packPane, sessions)", (f) => f === "capture" || f === "packPane"],
  ["checkpoint: sqlite commit (history)", (f, u) => f === "commit" || f === "commitSync" || u.endsWith("/sqlite-history.ts")],
  ["checkpoint: log truncate", (f, u) => f === "truncateBefore" || u.endsWith("/local-log.ts")],
  ["checkpoint: worker-pool commit", (_f, u) => u.endsWith("/worker-pool.ts")],
];

/** Shares of main-thread samples per category, from the newest .cpuprofile in `dir`. */
export function summariseProfile(dir: string): { file: string; samples: number; shares: Record<string, number> } | null {
  const files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")).sort();
  if (files.length === 0) return null;
  const file = join(dir, files[files.length - 1]);
  const p = JSON.parse(readFileSync(file, "utf8")) as { nodes: Node[]; samples: number[] };
  const parent = new Map<number, number>();
  const byId = new Map<number, Node>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const counts = new Map<string, number>();
  let total = 0;
  for (const s of p.samples) {
    const stack: Node[] = [];
    for (let id: number | undefined = s; id !== undefined; id = parent.get(id)) stack.push(byId.get(id)!);
    stack.reverse(); // root first
    const leaf = stack[stack.length - 1].callFrame.functionName;
    if (leaf === "(idle)" || leaf === "(program)" || leaf === "(root)") continue;
    total++;
    let cat = leaf === "(garbage collector)" ? "garbage collector" : "";
    let at = -1;
    // categories in priority order: a checkpoint started from a timer in engine.ts is a checkpoint
    for (const [name, rule] of CATEGORIES) {
      if (cat !== "") break;
      at = stack.findIndex((n) => rule(n.callFrame.functionName, n.callFrame.url));
      if (at >= 0) cat = name;
    }
    if (cat === "checkpoint") {
      let part = "checkpoint: other (runCheckpoint itself)";
      outer: for (let i = at + 1; i < stack.length; i++) {
        const { url } = stack[i].callFrame;
        const functionName = stack[i].callFrame.functionName.replace(/^async /, "");
        for (const [name, rule] of CHECKPOINT_PARTS) {
          if (rule(functionName, url)) {
            part = name;
            break outer;
          }
        }
      }
      cat = part;
    }
    if (cat === "") cat = "other (HTTP, Elysia, timers)";
    counts.set(cat, (counts.get(cat) ?? 0) + 1);
  }
  const shares: Record<string, number> = {};
  for (const [k, v] of [...counts].sort((a, b) => b[1] - a[1])) shares[k] = Math.round((v / total) * 1000) / 1000;
  return { file, samples: total, shares };
}
