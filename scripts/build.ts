// Compiles rtae into one executable (dist/rtae). The worker is a separate entry point: Bun bundles
export {};
// each entry into the binary, and `new Worker(...)` finds it there. No --minify/--bytecode: untested with Elysia.

const result = await Bun.build({
  entrypoints: ["./src/main.ts", "./src/ingest/worker.ts"],
  compile: { outfile: "./dist/rtae" },
  define: { "process.env.NODE_ENV": JSON.stringify("production") },
  sourcemap: "none",
});
if (!result.success) {
  for (const log of result.logs) console.error(log);
  process.exit(1);
}
console.log("built dist/rtae");
