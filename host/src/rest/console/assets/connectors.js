// The connectors page: every connector with its state, throughput, lag, freshness and dead
// letters; failed ones first; filtered by name and state.

import * as api from "./api.js";
import { badge, h, replace, sparkline } from "./dom.js";
import * as format from "./format.js";
import * as status from "./status.js";

const STATES = ["FAILED", "RUNNING", "PAUSED", "STOPPED", "RESTARTING", "UNASSIGNED"];

// Kept across visits to the page, so the sparklines continue where they were.
const rates = new status.Rates();

export function mount(container) {
  const nameFilter = h("input", { id: "filter-name", type: "search", autocomplete: "off" });
  const stateFilter = h(
    "select",
    { id: "filter-state" },
    h("option", { value: "" }, "Any state"),
    STATES.map((state) => h("option", { value: state }, state)),
  );
  const summary = h("p", { class: "summary", role: "status" });
  const body = h("tbody");
  const table = h(
    "table",
    { class: "connectors" },
    h("caption", { class: "visually-hidden" }, "Connectors, failed first"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Name", "State", "Type", "Class", "Throughput", "Lag", "Freshness", "Dead letters"].map(
          (title) => h("th", { scope: "col" }, title),
        ),
      ),
    ),
    body,
  );
  let last = null;
  const render = () => last && renderRows(body, summary, last, nameFilter.value, stateFilter.value);
  nameFilter.addEventListener("input", render);
  stateFilter.addEventListener("change", render);
  replace(
    container,
    h("h1", {}, "Connectors"),
    h(
      "div",
      { class: "filters" },
      h("div", { class: "field" }, h("label", { for: "filter-name" }, "Filter by name"), nameFilter),
      h("div", { class: "field" }, h("label", { for: "filter-state" }, "State"), stateFilter),
    ),
    summary,
    table,
  );
  return {
    async refresh() {
      last = await api.get("/connectors?expand=status&expand=info");
      for (const [name, entry] of Object.entries(last)) {
        rates.observe(name, status.counters(entry.status));
      }
      rates.forgetAllBut(new Set(Object.keys(last)));
      render();
    },
  };
}

function renderRows(body, summary, connectors, nameFilter, stateFilter) {
  const needle = nameFilter.trim().toLowerCase();
  const rows = Object.entries(connectors)
    .map(([name, entry]) => ({ name, ...entry, state: status.shownState(entry.status) }))
    .filter((c) => !needle || c.name.toLowerCase().includes(needle))
    .filter((c) => !stateFilter || c.state === stateFilter)
    .sort((a, b) => (a.state === "FAILED") !== (b.state === "FAILED")
      ? (a.state === "FAILED" ? -1 : 1)
      : a.name.localeCompare(b.name));
  const total = Object.keys(connectors).length;
  const failed = Object.values(connectors).filter((e) => status.shownState(e.status) === "FAILED").length;
  summary.textContent = `${total} connector${total === 1 ? "" : "s"}, ${failed} failed` +
    (rows.length === total ? "" : `; ${rows.length} shown`);
  if (total === 0) {
    replace(body, h("tr", {}, h("td", { colspan: 8 },
      "No connectors yet: drop a config into connectors.d/ or POST one to /connectors.")));
    return;
  }
  replace(body, rows.map(row));
}

/** A source holding its records until a sink reads its topic says so beside its name. */
function waitingBadge(current) {
  const waiting = status.waitingForSink(current);
  return waiting ? h("span", { class: "badge conflict waiting", title: waiting.message }, "waiting for a sink") : null;
}

function row(c) {
  const config = (c.info && c.info.config) || {};
  const counters = status.counters(c.status);
  const throughput = rates.rate(c.name, "records_out");
  const cell = (label, ...content) => h("td", { "data-label": label }, h("div", { class: "cell" }, ...content));
  return h(
    "tr",
    { class: c.state === "FAILED" ? "failed" : null, "data-connector": c.name },
    cell("Name", h("a", { href: `#/c/${encodeURIComponent(c.name)}` }, c.name),
      c.status && c.status.conflict ? h("span", { class: "badge conflict", title: c.status.conflict.reason }, "file conflict") : null,
      waitingBadge(c.status)),
    cell("State", badge(c.state)),
    cell("Type", (c.status && c.status.type) || "–"),
    cell("Class", h("span", { title: config["connector.class"] || "" }, format.shortClass(config["connector.class"]))),
    cell("Throughput",
      h("span", { class: "rate" }, format.rate(throughput)),
      sparkline(rates.history(c.name, "records_out"), `records out per second, last two minutes, for ${c.name}`)),
    cell("Lag", status.lagText(c.status)),
    cell("Freshness", status.freshnessText(c.status)),
    cell("Dead letters", format.count(counters ? counters.dead_letters : undefined)),
  );
}
