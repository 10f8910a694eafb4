// Public surface of alerting: rules evaluated on each closed window, webhook notifications, the rules
// API and the Alerts view. `serve` loads the rules file before the engine starts, then starts alerting over it.

import { ConfigError, type Config } from "../config.ts";
import type { Engine } from "../engine.ts";
import { liveFreshness } from "../views/index.ts";
import { createAlerting, type Alerting, type AlertingOptions } from "./alerting.ts";
import { AlertError } from "./errors.ts";
import { engineSource } from "./metrics.ts";
import { alertsPlugin } from "./plugin.ts";
import { loadRulesFile, type AlertRule } from "./rules.ts";
import { literalHostProblem } from "./webhook-target.ts";

export { createAlerting, type Alerting, type AlertingOptions, type RuleSource } from "./alerting.ts";
export { AlertError, type AlertErrorCode } from "./errors.ts";
export { evaluateWindow, fingerprintOf, initialState, observe, type ActiveAlert, type Observation, type RuleState, type Transition } from "./evaluate.ts";
export { FUNNEL_STEPS, METRICS, engineSource, isMetric, metricValue, type MetricSource, type WindowSample } from "./metrics.ts";
export { createNotifier, type Delivery, type DeliveryResult, type Notifier, type WebhookOptions } from "./notifier.ts";
export { alertsPlugin, type AlertsPluginOptions } from "./plugin.ts";
export { KINDS, WINDOWS, loadRulesFile, parseRule, ruleMetric, type AlertRule } from "./rules.ts";
export { openAlertStore, type AlertStore, type HistoryEntry } from "./store.ts";
export { classify, literalHostProblem, resolveTarget, systemLookup, type AddressClass, type Lookup } from "./webhook-target.ts";

/**
 * The rules of --alert-rules (none when unset). Throws AlertError whose message names the option,
 * the file, the rule and the field, for `serve` to print before it starts anything; and ConfigError when
 * --alert-webhook-url targets a non-public address without --alert-allow-private.
 */
export function loadAlertRules(config: Pick<Config, "alertRulesPath" | "alertWebhookUrl" | "alertAllowPrivate">): AlertRule[] {
  if (config.alertWebhookUrl !== null && !config.alertAllowPrivate) {
    // the URL is a secret (it may carry a token); the problem names only its host
    const problem = literalHostProblem(new URL(config.alertWebhookUrl));
    if (problem !== null) throw new ConfigError([`--alert-webhook-url (RTAE_ALERT_WEBHOOK_URL): ${problem}`]);
  }
  if (config.alertRulesPath === null) return [];
  try {
    return loadRulesFile(config.alertRulesPath, { allowPrivate: config.alertAllowPrivate });
  } catch (err) {
    if (err instanceof AlertError) throw new AlertError(err.code, err.issues.map((i) => `--alert-rules (RTAE_ALERT_RULES): ${i}`));
    throw err;
  }
}

/** Alerting over a running engine, with its HTTP plugin; stop it before the engine. */
export function startAlerting(
  engine: Engine,
  fileRules: readonly AlertRule[],
  overrides: Partial<Pick<AlertingOptions, "pollMs" | "webhook" | "now" | "allowPrivateWebhooks">> = {},
): { alerting: Alerting; plugin: ReturnType<typeof alertsPlugin>; stop(): Promise<void> } {
  const cfg = engine.config;
  const alerting = createAlerting({
    dataDir: cfg.dataDir,
    fileRules,
    defaultWebhookUrl: cfg.alertWebhookUrl,
    allowPrivateWebhooks: cfg.alertAllowPrivate,
    source: engineSource(engine),
    watermark: () => engine.aggregator.watermark.value,
    ...overrides,
  });
  const plugin = alertsPlugin(alerting, { config: cfg, freshness: () => liveFreshness(engine) });
  return { alerting, plugin, stop: () => alerting.stop() };
}
