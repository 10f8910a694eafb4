// `rtae migrate` against a real Cassandra: the command creates the keyspace and tables, twice without harm.
// Skips only when Cassandra is not reachable and CI is not set (CI starts it with scripts/services.sh).

import { afterAll, describe, expect, it } from "bun:test";
import cassandra from "cassandra-driver";
import { tcpReachable } from "../helpers.ts";

const reachable = () => tcpReachable(9042);
const skip = !(await reachable()) && !process.env.CI;
const keyspace = `rtae_migrate_${Math.random().toString(36).slice(2, 10)}`;
const client = new cassandra.Client({ contactPoints: ["127.0.0.1:9042"], localDataCenter: "datacenter1" });

afterAll(async () => {
  if (skip) return;
  await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => {});
  await client.shutdown();
});

const migrate = (ks = keyspace, extra: string[] = []) =>
  Bun.spawn(
    [process.execPath, "src/main.ts", "migrate", "--cassandra-contact-points", "127.0.0.1:9042", "--cassandra-keyspace", ks, "--log-level", "warn", ...extra],
    { cwd: `${import.meta.dir}/../..`, stdout: "pipe", stderr: "pipe" },
  );

describe.skipIf(skip)("rtae migrate with Cassandra", () => {
  it("creates the keyspace with the replication given by --cassandra-replication", async () => {
    const ks = `${keyspace}_nts`;
    try {
      const m = migrate(ks, ["--cassandra-replication", "{'class': 'NetworkTopologyStrategy', 'datacenter1': 1}"]);
      expect(await m.exited).toBe(0);
      const row = (await client.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?", [ks], { prepare: true })).first();
      expect(row.get("replication")).toEqual({ class: "org.apache.cassandra.locator.NetworkTopologyStrategy", datacenter1: "1" });
    } finally {
      await client.execute(`DROP KEYSPACE IF EXISTS ${ks}`).catch(() => {});
    }
  }, 60_000);

  it("creates the keyspace and its tables, and running it again changes nothing", async () => {
    const first = migrate();
    expect(await first.exited).toBe(0);
    const tables = async () =>
      (await client.execute("SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?", [keyspace], { prepare: true })).rows
        .map((r) => r.table_name as string)
        .sort();
    const created = await tables();
    expect(created).toContain("windows");
    expect(created).toContain("offsets");
    const again = migrate();
    expect(await again.exited).toBe(0);
    expect(await tables()).toEqual(created);
  }, 90_000);
});
