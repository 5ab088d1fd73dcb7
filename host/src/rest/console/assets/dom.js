// Building the page from data. Text always goes in as text nodes (never as HTML), so a
// connector name or an error message cannot inject markup.

/**
 * `h("a", { href: "#/" }, "text", child)`: an element with attributes and children. Attributes
 * starting with `on` are event listeners; `false`, `null` and `undefined` leave one out.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces an element's children. */
export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

const SVG = "http://www.w3.org/2000/svg";

/**
 * A sparkline of `values` (oldest first) as an inline SVG, scaled to its own maximum; `label`
 * says what it shows to screen readers.
 */
export function sparkline(values, label) {
  const width = 120;
  const height = 24;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  if (values.length < 2) return svg;
  const max = Math.max(...values, 1);
  const step = width / (values.length - 1);
  const points = values
    .map((v, i) => `${(i * step).toFixed(1)},${(height - 1 - (v / max) * (height - 2)).toFixed(1)}`)
    .join(" ");
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", points);
  svg.append(line);
  return svg;
}

/** A state badge (RUNNING, FAILED, ...). */
export function badge(state) {
  return h("span", { class: `badge state-${String(state).toLowerCase()}` }, state);
}
