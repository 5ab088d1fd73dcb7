// The console's shell: which page the URL's hash names, signing in with a token when the API
// asks for one, and polling the shown page every two seconds while the tab is visible.

import * as api from "./api.js";
import { h, replace } from "./dom.js";
import * as connectorsPage from "./connectors.js";
import * as connectorPage from "./connector.js";
import * as workerPage from "./worker.js";

const POLL_MS = 2000;

const main = document.getElementById("main");
const noticeArea = document.getElementById("notice");
const accessLabel = document.getElementById("access");
const signOut = document.getElementById("sign-out");

/** What every page may read: the access the token gives ("open", "full" or "read"). */
const session = { access: null, notify };

let page = null;
let timer = null;

/** Shows a message to the user (and to screen readers, through the live region). */
function notify(message, kind = "info") {
  noticeArea.className = `notice ${kind}`;
  replace(noticeArea, message || "");
}

function route() {
  const hash = location.hash || "#/";
  if (hash.startsWith("#/c/")) {
    return { module: connectorPage, argument: decodeURIComponent(hash.slice(4)), nav: "nav-connectors" };
  }
  if (hash === "#/worker") return { module: workerPage, nav: "nav-worker" };
  return { module: connectorsPage, nav: "nav-connectors" };
}

function stopPolling() {
  clearTimeout(timer);
  timer = null;
}

async function show() {
  stopPolling();
  if (page && page.dispose) page.dispose();
  page = null;
  notify("");
  if (!(await checkAccess())) return;
  const { module, argument, nav } = route();
  for (const link of document.querySelectorAll("nav a")) {
    if (link.id === nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  page = module.mount(main, { ...session, argument });
  main.focus({ preventScroll: true });
  await poll();
}

async function poll() {
  stopPolling();
  const shown = page;
  if (!shown) return;
  try {
    await shown.refresh();
  } catch (e) {
    if (e.status !== 401) notify(e.message, "error");
  }
  if (page === shown && document.visibilityState === "visible") {
    timer = setTimeout(poll, POLL_MS);
  }
}

/** Learns what the token allows (GET /worker); false when the user must sign in first. */
async function checkAccess() {
  try {
    const worker = await api.get("/worker");
    session.access = worker.access;
  } catch (e) {
    if (e.status !== 401) notify(e.message, "error");
    return false;
  }
  const labels = {
    open: "No token configured",
    full: "Signed in",
    read: "Read-only token: viewing only",
  };
  accessLabel.textContent = labels[session.access] || "";
  signOut.hidden = !api.token();
  return true;
}

function showSignIn(refused) {
  stopPolling();
  page = null;
  accessLabel.textContent = "";
  signOut.hidden = true;
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const form = h(
    "form",
    {
      class: "card sign-in",
      onsubmit: (event) => {
        event.preventDefault();
        api.setToken(input.value.trim());
        show();
      },
    },
    h("h1", {}, "Sign in"),
    h(
      "p",
      {},
      "This Headwater asks for a token: the [rest] token to view and act, or the read-only token to view.",
    ),
    refused ? h("p", { class: "error", role: "alert" }, "That token was refused.") : null,
    h("label", { for: "token" }, "REST token"),
    input,
    h("button", { type: "submit" }, "Sign in"),
  );
  replace(main, form);
  input.focus();
}

api.onUnauthorized(() => {
  const refused = Boolean(api.token());
  api.forgetToken();
  showSignIn(refused);
});

signOut.addEventListener("click", () => {
  api.forgetToken();
  showSignIn(false);
});

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") poll();
  else stopPolling();
});

window.addEventListener("hashchange", show);
show();
