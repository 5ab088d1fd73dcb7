// One connector's page: its state and error trace, live rates and lag, its config (editable
// when it was created over REST), offsets, last dead letters, and the actions an operator
// takes on it.

import * as api from "./api.js";
import { badge, h, replace, sparkline } from "./dom.js";
import * as format from "./format.js";
import * as status from "./status.js";

const rates = new status.Rates();

export function mount(container, session) {
  const name = session.argument;
  const canAct = session.access !== "read";
  const path = (rest) => api.connectorPath(name, rest);

  const headline = h("p", { class: "headline" });
  const traceSection = h("section", { class: "card", hidden: true, "aria-labelledby": "trace-title" },
    h("h2", { id: "trace-title" }, "Error"));
  const tracePre = h("pre", { class: "trace", id: "trace", tabindex: 0 });
  traceSection.append(tracePre);
  const live = h("dl", { class: "stats", id: "live" });
  const partitions = h("div", { id: "partitions" });
  const offsetsPre = h("pre", { id: "offsets", tabindex: 0 }, "…");
  const deadLetters = h("div", { id: "dead-letters" }, "…");

  const action = (label, method, rest, { confirmation, done } = {}) =>
    h("button", {
      type: "button",
      disabled: !canAct,
      title: canAct ? null : "The read-only token may view but not act",
      onclick: async () => {
        if (confirmation && !window.confirm(confirmation)) return;
        try {
          const answer = await api.call(method, path(rest));
          session.notify(done ? done(answer) : `${label}: done.`, "success");
        } catch (e) {
          session.notify(`${label} refused: ${e.message}`, "error");
        }
        await refresh(true);
      },
    }, label);
  const actions = h("div", { class: "actions", role: "group", "aria-label": "Actions" },
    action("Pause", "PUT", "/pause"),
    action("Resume", "PUT", "/resume"),
    action("Stop", "PUT", "/stop"),
    action("Restart failed", "POST", "/restart?includeTasks=true&onlyFailed=true"),
    action("Reset offsets", "DELETE", "/offsets", {
      confirmation: `Reset the offsets of ${name}? It reads its input again from the start when resumed.`,
      done: (answer) => (answer && answer.message) || "Offsets reset.",
    }),
    action("Replay dead letters", "POST", "/dlq/replay", {
      confirmation: `Replay the dead letters of ${name} through its transforms and sink?`,
      done: (r) => `Replayed ${r.replayed} dead letter(s) from ${r.from}; ${r.refused} refused again.`,
    }));

  const editor = configEditor(name, canAct, session.notify, () => refresh(true));

  replace(container,
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Connectors"), " / "),
    h("h1", { class: "name" }, name),
    headline,
    canAct ? null : h("p", { class: "note" }, "Signed in with the read-only token: actions and editing are disabled."),
    actions,
    traceSection,
    h("section", { class: "card", "aria-labelledby": "live-title" },
      h("h2", { id: "live-title" }, "Live"), live, partitions),
    editor.section,
    h("section", { class: "card", "aria-labelledby": "offsets-title" },
      h("h2", { id: "offsets-title" }, "Offsets"), offsetsPre),
    h("section", { class: "card", "aria-labelledby": "dlq-title" },
      h("h2", { id: "dlq-title" }, "Last dead letters"), deadLetters));

  let ticks = 0;
  async function refresh(everything = false) {
    if (!editor.loaded()) await editor.load();
    const current = await api.get(path("/status"));
    rates.observe(name, status.counters(current));
    showHeadline(headline, current, editor.info());
    showTrace(traceSection, tracePre, status.trace(current));
    showLive(live, partitions, name, current);
    if (everything || ticks % 3 === 0) {
      const [offsets, letters] = await Promise.all([
        api.get(path("/offsets")).catch((e) => ({ error: e.message })),
        api.get(path("/dlq?limit=20")).catch((e) => ({ error: e.message })),
      ]);
      offsetsPre.textContent = offsets.error
        || (offsets.offsets.length === 0 ? "None yet." : JSON.stringify(offsets.offsets, null, 2));
      showDeadLetters(deadLetters, letters);
    }
    ticks += 1;
  }
  return { refresh: () => refresh(false) };
}

function showHeadline(headline, current, info) {
  const origin = info && info.origin;
  replace(headline,
    badge(status.shownState(current)), " ",
    h("span", {}, current.type || "–"), " · ",
    h("span", { title: (info && info.config["connector.class"]) || "" },
      format.shortClass(info && info.config["connector.class"])), " · ",
    origin ? (origin.kind === "file" ? `from the file ${origin.file}` : "created over REST") : "",
    current.conflict ? h("span", { class: "error" },
      ` · the file ${current.conflict.file} also names it: ${current.conflict.reason}`) : null,
    status.waitingForSink(current) ? h("span", { class: "error waiting" },
      ` · waiting: ${status.waitingForSink(current).message}`) : null);
}

function showTrace(section, pre, trace) {
  section.hidden = !trace;
  if (pre.textContent !== (trace || "")) pre.textContent = trace || "";
}

function showLive(live, partitions, name, current) {
  const task = (current.tasks && current.tasks[0]) || {};
  const latency = task.end_to_end_latency;
  const counters = task.counters || {};
  const stat = (term, ...value) => [h("dt", {}, term), h("dd", {}, ...value)];
  replace(live,
    stat("Records in", format.rate(rates.rate(name, "records_in")),
      sparkline(rates.history(name, "records_in"), "records in per second")),
    stat("Records out", format.rate(rates.rate(name, "records_out")),
      sparkline(rates.history(name, "records_out"), "records out per second")),
    stat("Totals", `${format.count(counters.records_in)} in, ${format.count(counters.records_out)} out`),
    stat("Errors", format.count(counters.errors)),
    stat("Dead letters", format.count(counters.dead_letters)),
    stat("Lag", status.lagText(current)),
    stat("Freshness", status.freshnessText(current)),
    stat("End-to-end latency", latency
      ? `p50 ≤ ${format.seconds(latency.p50_seconds_at_most)}, p99 ≤ ${format.seconds(latency.p99_seconds_at_most)}`
      : "–"),
  );
  if (!task.consumer_lag || task.consumer_lag.length === 0) {
    replace(partitions);
    return;
  }
  replace(partitions, h("table", { class: "partitions" },
    h("caption", {}, "Consumer lag per partition"),
    h("thead", {}, h("tr", {}, ["Topic", "Partition", "Lag"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, task.consumer_lag.map((p) => h("tr", {},
      h("td", { "data-label": "Topic" }, p.topic),
      h("td", { "data-label": "Partition" }, String(p.partition)),
      h("td", { "data-label": "Lag" }, format.count(p.lag)))))));
}

function showDeadLetters(container, answer) {
  if (answer.error) {
    replace(container, h("p", { class: "error" }, answer.error));
    return;
  }
  const letters = answer.dead_letters.slice().reverse();
  if (letters.length === 0) {
    replace(container, h("p", {}, "None."));
    return;
  }
  const cell = (label, value) => h("td", { "data-label": label }, value === null || value === undefined ? "–" : String(value));
  replace(container,
    h("p", { class: "note" }, `Newest first, from ${answer.file}.`),
    h("table", { class: "dead-letters" },
      h("thead", {}, h("tr", {}, ["When", "Stage", "Class", "Message", "Source"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, letters.map((l) => h("tr", {},
        cell("When", l.timestamp ? format.timestamp(l.timestamp) : null),
        cell("Stage", l.stage),
        h("td", { "data-label": "Class", title: l.class || "" }, format.shortClass(l.class)),
        cell("Message", l.message || l.exception),
        cell("Source", l.topic === null || l.topic === undefined ? null : `${l.topic} [${l.partition}] @ ${l.offset}`))))));
}

/** The config as JSON: shown always, saved (after validation) only for REST-owned connectors. */
function configEditor(name, canAct, notify, refresh) {
  let info = null;
  const textarea = h("textarea", { id: "config", rows: 14, spellcheck: "false", autocomplete: "off" });
  const errors = h("ul", { id: "config-errors", class: "errors", role: "alert" });
  const note = h("p", { class: "note", id: "config-note" });
  const save = h("button", { type: "button", id: "save-config" }, "Validate and save");
  const reload = h("button", { type: "button", class: "quiet" }, "Discard edits");
  const section = h("section", { class: "card", "aria-labelledby": "config-title" },
    h("h2", { id: "config-title" }, "Config"),
    note,
    h("label", { for: "config" }, "Config as JSON (secrets show as [hidden] and keep their value when saved)"),
    textarea, errors, h("div", { class: "actions" }, save, reload));

  async function load() {
    info = await api.get(api.connectorPath(name));
    textarea.value = JSON.stringify(info.config, null, 2);
    replace(errors);
    const editable = canAct && info.origin && info.origin.kind === "rest";
    textarea.readOnly = !editable;
    save.disabled = !editable;
    reload.disabled = !editable;
    note.textContent = info.origin && info.origin.kind === "file"
      ? `Defined by the file ${info.origin.file}: edit that file to change it.`
      : canAct ? "Created over REST: edit, then validate and save." : "";
  }

  save.addEventListener("click", async () => {
    replace(errors);
    let config;
    try {
      config = JSON.parse(textarea.value);
    } catch (e) {
      replace(errors, h("li", {}, `The config is not valid JSON: ${e.message}`));
      return;
    }
    if (!config || typeof config !== "object" || Array.isArray(config) || !config["connector.class"]) {
      replace(errors, h("li", {}, "The config must be a JSON object with a connector.class."));
      return;
    }
    try {
      const plugin = encodeURIComponent(config["connector.class"]);
      const result = await api.call("PUT", `/connector-plugins/${plugin}/config/validate`, { ...config, name });
      const problems = result.configs.flatMap((c) => (c.value.errors || []).map((message) => ({ key: c.value.name, message })));
      if (problems.length > 0) {
        replace(errors, problems.map((p) => h("li", {}, h("code", {}, p.key), `: ${p.message}`)));
        notify(`Not saved: ${problems.length} problem(s) in the config.`, "error");
        return;
      }
      await api.call("PUT", api.connectorPath(name, "/config"), config);
      notify("Config saved; the connector restarted with it.", "success");
      await load();
      await refresh();
    } catch (e) {
      replace(errors, h("li", {}, e.message));
      notify(`Not saved: ${e.message}`, "error");
    }
  });
  reload.addEventListener("click", load);

  return { section, load, loaded: () => info !== null, info: () => info };
}
