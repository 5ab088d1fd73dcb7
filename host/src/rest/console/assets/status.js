// What the page derives from a connector's status (GET /connectors/{name}/status, or one entry
// of GET /connectors?expand=status): the state to show, the trace, lag, freshness and rates.

import * as format from "./format.js";

const task = (status) => (status && status.tasks && status.tasks[0]) || null;

/** FAILED when the connector or its task failed (Kafka Connect keeps a connector RUNNING whose task failed). */
export function shownState(status) {
  if (!status) return "UNKNOWN";
  const t = task(status);
  if (status.connector.state === "FAILED" || (t && t.state === "FAILED")) return "FAILED";
  if (t && t.state === "RESTARTING") return "RESTARTING";
  return status.connector.state;
}

/** The error trace of the connector, else of its task. */
export function trace(status) {
  if (!status) return null;
  const t = task(status);
  return status.connector.trace || (t && t.trace) || null;
}

export const counters = (status) => (task(status) && task(status).counters) || null;

/** What a source holding records no sink reads waits for: `{topics, message}`, else null. */
export const waitingForSink = (status) => (task(status) && task(status).waiting_for_sink) || null;

/** Records not yet consumed, summed over a Kafka-fed sink's partitions (null for others). */
export function consumerLag(status) {
  const t = task(status);
  if (!t || !t.consumer_lag) return null;
  return t.consumer_lag.reduce((sum, p) => sum + p.lag, 0);
}

/** How far behind the connector is, in words: a source's lag, or a sink's consumer lag. */
export function lagText(status) {
  const t = task(status);
  if (!t) return "–";
  if (t.source_lag) {
    const parts = [];
    if (t.source_lag.seconds !== undefined) parts.push(format.seconds(t.source_lag.seconds));
    if (t.source_lag.bytes !== undefined) parts.push(format.bytes(t.source_lag.bytes));
    return parts.join(" · ");
  }
  const lag = consumerLag(status);
  return lag === null ? "–" : `${format.count(lag)} records`;
}

/** How old the newest record a sink made durable is, else how long its oldest unflushed one has waited. */
export function freshnessText(status) {
  const t = task(status);
  if (!t) return "–";
  if (t.freshness_seconds !== undefined) return format.seconds(t.freshness_seconds);
  if (t.oldest_unflushed_seconds) return `${format.seconds(t.oldest_unflushed_seconds)} unflushed`;
  return "–";
}

/**
 * Rates from successive readings of each connector's counters: `observe(name, counters)`
 * records one, `rate(name, key)` is the latest per-second rate, `history(name, key)` the last
 * `size` rates for a sparkline.
 */
export class Rates {
  constructor(size = 60) {
    this.size = size;
    this.readings = new Map();
  }

  observe(name, values, now = performance.now()) {
    if (!values) return;
    const entry = this.readings.get(name) || { last: null, history: {} };
    if (entry.last) {
      const elapsed = (now - entry.last.at) / 1000;
      if (elapsed > 0) {
        for (const [key, value] of Object.entries(values)) {
          const previous = entry.last.values[key];
          // A counter that went down restarted with the host: no rate for that interval.
          const perSecond = value >= previous ? (value - previous) / elapsed : 0;
          const history = entry.history[key] || (entry.history[key] = []);
          history.push(perSecond);
          if (history.length > this.size) history.shift();
        }
      }
    }
    entry.last = { at: now, values };
    this.readings.set(name, entry);
  }

  history(name, key) {
    const entry = this.readings.get(name);
    return (entry && entry.history[key]) || [];
  }

  rate(name, key) {
    const history = this.history(name, key);
    return history.length ? history[history.length - 1] : null;
  }

  forgetAllBut(names) {
    for (const name of this.readings.keys()) if (!names.has(name)) this.readings.delete(name);
  }
}
