// The conversation pane: transcript rows, the streaming turn, tool cards, status lines.

import { clear, formatDuration, h, shortJson } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

const RENDER_EVERY_MS = 30;

export class Conversation {
  constructor(root, { onEdit }) {
    this.root = root;
    this.onEdit = onEdit;
    this.turn = null;
    this.userCount = 0;
  }

  // Keep the view pinned to the bottom while new text arrives, unless the reader scrolled up.
  pinned() {
    const r = this.root;
    return r.scrollHeight - r.scrollTop - r.clientHeight < 48;
  }

  keepPinned(wasPinned) {
    if (wasPinned) this.root.scrollTop = this.root.scrollHeight;
  }

  add(node) {
    const wasPinned = this.pinned();
    this.root.append(node);
    this.keepPinned(wasPinned);
    return node;
  }

  reset(messages = [], welcome = "") {
    clear(this.root);
    this.turn = null;
    this.userCount = 0;
    if (welcome) this.root.append(h("div", { class: "welcome", text: welcome }));
    for (const row of messages) this.addRow(row);
    this.root.scrollTop = this.root.scrollHeight;
  }

  addRow(row) {
    if (row.role === "user") return this.addUser(row.text);
    if (row.role === "tool") {
      return this.add(
        toolCard({ name: row.name || "tool", args: row.args, context: row.context, result: row.text, done: true }),
      );
    }
    const msg = this.assistantShell();
    if (row.reasoning) {
      msg.reasoning.hidden = false;
      msg.reasoningText.textContent = row.reasoning;
    }
    msg.text.append(renderMarkdown(row.text || ""));
    msg.el.dataset.status = "complete";
    return this.add(msg.el);
  }

  addUser(text) {
    const ordinal = this.userCount++;
    const body = h("div", { class: "text" });
    body.append(renderMarkdown(text));
    const el = h(
      "div",
      { class: "msg user", dataset: { ordinal: String(ordinal) } },
      h("div", { class: "who", text: "You" }),
      body,
      h(
        "div",
        { class: "msg-actions" },
        h("button", {
          type: "button",
          class: "link edit",
          text: "Edit",
          "aria-label": "Edit and rerun this message",
          onclick: () => this.editUser(el, ordinal, text),
        }),
      ),
    );
    return this.add(el);
  }

  editUser(el, ordinal, original) {
    if (el.querySelector("textarea")) return;
    const area = h("textarea", { class: "edit-area", rows: 3, "aria-label": "Edited message" });
    area.value = original;
    const form = h(
      "form",
      { class: "edit-form" },
      area,
      h(
        "div",
        { class: "msg-actions" },
        h("button", { type: "submit", class: "primary", text: "Rerun from here" }),
        h("button", { type: "button", text: "Cancel", onclick: () => form.remove() }),
      ),
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const text = area.value.trim();
      if (text) this.onEdit(ordinal, text).then((ok) => ok && form.remove());
    });
    area.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") {
        ev.stopPropagation();
        form.remove();
      }
    });
    el.append(form);
    area.focus();
  }

  assistantShell() {
    const reasoningText = h("div", { class: "reasoning-text" });
    const reasoning = h("details", { class: "reasoning", hidden: true }, h("summary", { text: "Reasoning" }), reasoningText);
    const parts = h("div", { class: "parts" });
    const text = h("div", { class: "text" });
    const foot = h("div", { class: "msg-foot" });
    const el = h("div", { class: "msg assistant" }, h("div", { class: "who", text: "Agent" }), reasoning, parts, text, foot);
    return { el, reasoning, reasoningText, parts, text, foot };
  }

  beginTurn(initialText = "") {
    this.finishRender();
    const shell = this.assistantShell();
    shell.el.dataset.status = "streaming";
    shell.el.classList.add("streaming");
    shell.el.setAttribute("aria-busy", "true"); // screen readers read it once it is complete
    this.turn = { ...shell, source: initialText, reasoningSource: "", tools: new Map(), timer: null };
    this.renderText();
    this.add(shell.el);
    return this.turn;
  }

  ensureTurn() {
    return this.turn || this.beginTurn();
  }

  delta(text) {
    const turn = this.ensureTurn();
    turn.source += text;
    this.scheduleRender();
  }

  reasoning(text) {
    const turn = this.ensureTurn();
    turn.reasoningSource += text;
    turn.reasoning.hidden = false;
    turn.reasoningText.textContent = turn.reasoningSource;
  }

  scheduleRender() {
    const turn = this.turn;
    if (!turn || turn.timer) return;
    turn.timer = setTimeout(() => {
      turn.timer = null;
      if (this.turn === turn) this.renderText();
    }, RENDER_EVERY_MS);
  }

  renderText() {
    const turn = this.turn;
    if (!turn) return;
    const wasPinned = this.pinned();
    clear(turn.text).append(renderMarkdown(turn.source));
    this.keepPinned(wasPinned);
  }

  finishRender() {
    if (this.turn?.timer) {
      clearTimeout(this.turn.timer);
      this.turn.timer = null;
      this.renderText();
    }
  }

  toolStart(p) {
    const turn = this.ensureTurn();
    const card = toolCard({ name: p.name, args: p.args, context: p.context });
    turn.tools.set(p.tool_id, card);
    const wasPinned = this.pinned();
    turn.parts.append(card);
    this.keepPinned(wasPinned);
  }

  toolComplete(p) {
    const turn = this.ensureTurn();
    let card = turn.tools.get(p.tool_id);
    if (!card) {
      card = toolCard({ name: p.name });
      turn.parts.append(card);
    }
    completeCard(card, p);
  }

  status(kind, text) {
    const line = h("div", { class: "status-line", dataset: { kind: kind || "" } }, h("span", { class: "kind", text: kind || "status" }), " ", text || "");
    if (this.turn) {
      const wasPinned = this.pinned();
      this.turn.parts.append(line);
      this.keepPinned(wasPinned);
    } else this.add(line);
  }

  complete(p) {
    const turn = this.ensureTurn();
    if (turn.timer) clearTimeout(turn.timer);
    turn.timer = null;
    if (typeof p.text === "string") turn.source = p.text;
    this.renderText();
    const status = p.status || "complete";
    turn.el.dataset.status = status;
    turn.el.classList.remove("streaming");
    turn.el.removeAttribute("aria-busy");
    const usage = p.usage || {};
    const bits = [];
    if (status !== "complete") bits.push(status);
    if (usage.input || usage.output) bits.push(`${usage.input || 0} in / ${usage.output || 0} out`);
    turn.foot.textContent = bits.join(" · ");
    this.turn = null;
  }

  system(text, kind = "info") {
    const body = h("pre", { class: "system-text", text });
    return this.add(h("div", { class: `msg system ${kind}`, role: kind === "error" ? "alert" : undefined }, body));
  }

  lastUserOrdinal() {
    return this.userCount - 1;
  }
}

function toolCard({ name, args, context, result, done }) {
  const argsText = shortJson(args);
  const card = h(
    "details",
    { class: "tool-card", dataset: { name: name || "", state: done ? "done" : "running" } },
    h("summary", {}, h("span", { class: "tool-name", text: name || "tool" }), " ", h("span", { class: "tool-context", text: context || "" }), h("span", { class: "tool-state", text: done ? "" : "running" })),
  );
  if (argsText) card.append(h("div", { class: "tool-label", text: "Arguments" }), h("pre", { class: "tool-args", text: argsText }));
  const resultEl = h("pre", { class: "tool-result", hidden: result === undefined, text: result === undefined ? "" : shortJson(result) });
  card.append(resultEl);
  card.resultEl = resultEl;
  return card;
}

function completeCard(card, p) {
  card.dataset.state = "done";
  const state = card.querySelector(".tool-state");
  state.textContent = [p.summary, formatDuration(p.duration_s)].filter(Boolean).join(" · ");
  const result = p.result && typeof p.result === "object" && "summary" in p.result ? p.result.summary : p.result;
  card.resultEl.hidden = false;
  card.resultEl.textContent = shortJson(result);
}
