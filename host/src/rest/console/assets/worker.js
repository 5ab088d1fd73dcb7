// The worker page: what this host is and runs with, and the schema registry's subjects.

import * as api from "./api.js";
import { h, replace } from "./dom.js";
import * as format from "./format.js";

export function mount(container) {
  const facts = h("dl", { class: "stats", id: "worker" });
  const subjects = h("ul", { id: "subjects", class: "subjects" });
  replace(container,
    h("h1", {}, "Worker"),
    h("section", { class: "card", "aria-labelledby": "host-title" }, h("h2", { id: "host-title" }, "This host"), facts),
    h("section", { class: "card", "aria-labelledby": "subjects-title" },
      h("h2", { id: "subjects-title" }, "Schema registry subjects"), subjects));
  return {
    async refresh() {
      const [worker, names] = await Promise.all([api.get("/worker"), api.get("/subjects")]);
      const c = worker.connectors;
      const fact = (term, value) => [h("dt", {}, term), h("dd", {}, value)];
      replace(facts,
        fact("Version", `${worker.version} (${worker.commit})`),
        fact("Worker id", worker.worker_id),
        fact("Up for", format.seconds(worker.uptime_seconds)),
        fact("Data directory", worker.data_dir),
        fact("Bus", worker.bus === "kafka" ? "Kafka (every topic in Kafka)" : "embedded (in-process topics)"),
        fact("Kafka", worker.kafka ? worker.kafka.bootstrap_servers : "none configured"),
        fact("Connectors", `${c.total}: ${c.running} running, ${c.failed} failed, ${c.paused} paused, ${c.stopped} stopped` +
          (c.rejected_files ? `; ${c.rejected_files} config file(s) refused` : "")),
        fact("Access", { open: "no token configured", full: "full token", read: "read-only token" }[worker.access] || worker.access));
      replace(subjects, names.length === 0 ? h("li", {}, "None registered.") : names.map((s) => h("li", {}, h("code", {}, s))));
    },
  };
}
