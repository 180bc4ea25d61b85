// People in the loop: approval, clarify, sudo and secret prompts, one card per request_id.
// A card goes away when this page answers it, or when the server says it ended
// (request.cancel, *.expire): another client answered, it timed out, or the turn stopped.
// Passwords and secrets live only in their input until sent; the card is then removed.

import { h } from "./dom.js";

const CHOICES = ["once", "session", "always", "deny"];
const CHOICE_LABELS = { once: "Allow once", session: "Allow for session", always: "Always allow", deny: "Deny" };

export class Requests {
  constructor(root, { respond, onChange }) {
    this.root = root;
    this.respond = respond; // (method, params) => Promise
    this.onChange = onChange;
    this.cards = new Map();
  }

  get size() {
    return this.cards.size;
  }

  clear() {
    for (const id of [...this.cards.keys()]) this.remove(id);
  }

  remove(requestId) {
    const card = this.cards.get(requestId);
    if (!card) return;
    for (const input of card.querySelectorAll("input")) input.value = "";
    card.remove();
    this.cards.delete(requestId);
    this.onChange();
  }

  // `open_requests` rows of resume / events.since: {kind, id, request_id, ...payload}.
  sync(openRequests) {
    const open = new Set();
    for (const row of openRequests || []) {
      open.add(row.request_id);
      this.show(row.kind, row);
    }
    for (const id of [...this.cards.keys()]) if (!open.has(id)) this.remove(id);
  }

  show(kind, p) {
    const id = p.request_id;
    if (!id || this.cards.has(id)) return;
    const builder = { approval: this.approval, clarify: this.clarify, sudo: this.sudo, secret: this.secret }[kind];
    if (!builder) return;
    const card = builder.call(this, p);
    card.classList.add("request", `request-${kind}`);
    card.dataset.requestId = id;
    card.setAttribute("role", "dialog");
    card.setAttribute("aria-label", `${kind} request`);
    this.cards.set(id, card);
    this.root.append(card);
    this.onChange();
    card.querySelector("input, button")?.focus();
  }

  async send(id, method, params) {
    const card = this.cards.get(id);
    if (card) card.querySelectorAll("button, input").forEach((el) => (el.disabled = true));
    try {
      await this.respond(method, { request_id: id, ...params });
      this.remove(id);
    } catch (err) {
      if (card) {
        card.querySelectorAll("button, input").forEach((el) => (el.disabled = false));
        card.querySelector(".request-error").textContent = err.message;
      }
    }
  }

  approval(p) {
    const choices = (p.choices || CHOICES).filter((c) => CHOICES.includes(c));
    return h(
      "div",
      {},
      h("div", { class: "request-title", text: "Approve command?" }),
      h("pre", { class: "request-command", text: p.command || "" }),
      p.description ? h("p", { class: "request-desc", text: p.description }) : null,
      h(
        "div",
        { class: "request-buttons" },
        choices.map((choice) =>
          h("button", {
            type: "button",
            class: choice === "deny" ? "danger" : "primary",
            dataset: { choice },
            text: CHOICE_LABELS[choice],
            onclick: () => this.send(p.request_id, "approval.respond", { choice }),
          }),
        ),
      ),
      h("p", { class: "request-error", role: "alert" }),
    );
  }

  clarify(p) {
    const input = h("input", { type: "text", "aria-label": "Your answer", placeholder: "Your answer" });
    const form = h(
      "form",
      { class: "request-free" },
      input,
      h("button", { type: "submit", class: "primary", text: "Answer" }),
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.send(p.request_id, "clarify.respond", { answer: input.value });
    });
    const choices = Array.isArray(p.choices) ? p.choices : [];
    return h(
      "div",
      {},
      h("div", { class: "request-title", text: p.question || "Question" }),
      choices.length
        ? h(
            "div",
            { class: "request-buttons" },
            choices.map((choice) =>
              h("button", {
                type: "button",
                class: "choice",
                dataset: { choice },
                text: choice,
                onclick: () => this.send(p.request_id, "clarify.respond", { answer: choice }),
              }),
            ),
          )
        : null,
      form,
      h("p", { class: "request-error", role: "alert" }),
    );
  }

  secretForm(p, method, key, label) {
    const input = h("input", { type: "password", autocomplete: "off", "aria-label": label, placeholder: label });
    const form = h(
      "form",
      { class: "request-free" },
      input,
      h("button", { type: "submit", class: "primary", text: "Send" }),
      h("button", {
        type: "button",
        text: "Decline",
        onclick: () => {
          input.value = "";
          this.send(p.request_id, method, { [key]: "" });
        },
      }),
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const value = input.value;
      input.value = ""; // never kept in the page once sent
      const card = this.cards.get(p.request_id);
      if (card) {
        card.remove();
        this.cards.delete(p.request_id);
        this.onChange();
      }
      this.respond(method, { request_id: p.request_id, [key]: value }).catch(() => {});
    });
    return form;
  }

  sudo(p) {
    return h(
      "div",
      {},
      h("div", { class: "request-title", text: "sudo password" }),
      h("p", { class: "request-desc", text: "The agent asks for your sudo password. It is sent once and not shown." }),
      this.secretForm(p, "sudo.respond", "password", "Password"),
      h("p", { class: "request-error", role: "alert" }),
    );
  }

  secret(p) {
    return h(
      "div",
      {},
      h("div", { class: "request-title", text: p.prompt || "Secret" }),
      p.env_var ? h("p", { class: "request-desc" }, "Stored as ", h("code", { text: p.env_var })) : null,
      this.secretForm(p, "secret.respond", "value", "Secret value"),
      h("p", { class: "request-error", role: "alert" }),
    );
  }
}
