// Typed errors of the alerting layer: a `code` discriminant and the HTTP status as data, so the
// routes map them in one place and the rules file loader can print the same messages at start.

export type AlertErrorCode = "invalid_rule" | "rule_exists" | "rule_not_found" | "rule_read_only" | "rules_file_invalid";

const STATUS: Record<AlertErrorCode, 400 | 404 | 409> = {
  invalid_rule: 400,
  rule_exists: 409,
  rule_not_found: 404,
  rule_read_only: 409,
  rules_file_invalid: 400,
};

/** A refused rule or rule operation; `issues` holds one line per problem. */
export class AlertError extends Error {
  readonly status: 400 | 404 | 409;
  readonly issues: readonly string[];
  constructor(
    readonly code: AlertErrorCode,
    issues: readonly string[] | string,
  ) {
    const list = typeof issues === "string" ? [issues] : issues;
    // the rules file is read at start, where one problem per line reads best; API answers stay on one line
    const sep = code === "rules_file_invalid" ? "\n  - " : "; ";
    super(list.length === 1 ? list[0] : `${list.length} problems:${code === "rules_file_invalid" ? sep : " "}${list.join(sep)}`);
    this.name = "AlertError";
    this.status = STATUS[code];
    this.issues = Object.freeze([...list]);
  }
}
