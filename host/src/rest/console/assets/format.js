// How numbers read on the page.

const integer = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });

export const count = (n) => (n === undefined || n === null ? "–" : integer.format(n));

export function rate(perSecond) {
  if (perSecond === undefined || perSecond === null) return "–";
  return `${perSecond >= 100 ? integer.format(perSecond) : decimal.format(perSecond)}/s`;
}

export function seconds(s) {
  if (s === undefined || s === null) return "–";
  if (s < 1) return `${integer.format(s * 1000)} ms`;
  if (s < 120) return `${decimal.format(s)} s`;
  if (s < 7200) return `${decimal.format(s / 60)} min`;
  if (s < 172800) return `${decimal.format(s / 3600)} h`;
  return `${decimal.format(s / 86400)} d`;
}

export function bytes(n) {
  if (n === undefined || n === null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? integer.format(value) : decimal.format(value)} ${units[unit]}`;
}

/** The last part of a class name (`io.debezium.connector.postgresql.PostgresConnector` → `PostgresConnector`). */
export const shortClass = (name) => (name ? name.split(".").pop() : "–");

/** An epoch-milliseconds time as `2026-12-06 21:16:12` (UTC). */
export const timestamp = (ms) => `${new Date(ms).toISOString().replace("T", " ").slice(0, 19)} UTC`;
