// The message box: Enter sends, Shift+Enter is a new line, Esc stops the turn;
// a leading "/" offers slash-command completion (complete.slash, commands.catalog).

import { $, clear, h } from "./dom.js";

const COMPLETE_DEBOUNCE_MS = 80;

export class Composer {
  constructor({ call, onSubmit, onStop }) {
    this.call = call;
    this.onSubmit = onSubmit;
    this.onStop = onStop;
    this.form = $("composer");
    this.input = $("input");
    this.list = $("completions");
    this.items = [];
    this.active = -1;
    this.replaceFrom = 0;
    this.timer = null;
    this.generation = 0;
    this.catalog = [];
    this.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (ev) => this.keydown(ev));
    this.input.addEventListener("input", () => this.completeSoon());
    this.input.addEventListener("blur", () => setTimeout(() => this.closeList(), 150));
  }

  setCatalog(pairs) {
    this.catalog = (pairs || []).map(([cmd, desc]) => ({ text: cmd, display: cmd, meta: desc }));
  }

  submit() {
    const text = this.input.value;
    if (!text.trim()) return;
    this.closeList();
    this.input.value = "";
    this.onSubmit(text.replace(/\s+$/, ""));
  }

  keydown(ev) {
    const open = !this.list.hidden && this.items.length > 0;
    if (open && (ev.key === "ArrowDown" || ev.key === "ArrowUp")) {
      ev.preventDefault();
      const step = ev.key === "ArrowDown" ? 1 : -1;
      this.highlight((this.active + step + this.items.length) % this.items.length);
      return;
    }
    if (open && (ev.key === "Tab" || (ev.key === "Enter" && this.active >= 0))) {
      ev.preventDefault();
      this.accept(this.items[Math.max(0, this.active)]);
      return;
    }
    if (ev.key === "Escape") {
      ev.preventDefault();
      if (open) this.closeList();
      else this.onStop();
      return;
    }
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      this.submit();
    }
  }

  completeSoon() {
    clearTimeout(this.timer);
    const text = this.input.value;
    if (!text.startsWith("/") || text.includes("\n")) {
      this.closeList();
      return;
    }
    if (!text.includes(" ")) {
      // Command names: instant, from the catalog loaded at start.
      const word = text.toLowerCase();
      this.show(this.catalog.filter((c) => c.text.toLowerCase().startsWith(word)), 0);
    }
    this.timer = setTimeout(() => this.complete(text), COMPLETE_DEBOUNCE_MS);
  }

  async complete(text) {
    const generation = ++this.generation;
    let result;
    try {
      result = await this.call("complete.slash", { text });
    } catch {
      return;
    }
    if (generation !== this.generation || this.input.value !== text) return;
    this.show(result.items || [], result.replace_from || 0);
  }

  show(items, replaceFrom) {
    this.items = items.slice(0, 12);
    this.replaceFrom = replaceFrom;
    this.active = -1;
    clear(this.list);
    if (!this.items.length) {
      this.closeList();
      return;
    }
    this.items.forEach((item, n) => {
      this.list.append(
        h(
          "li",
          {
            role: "option",
            id: `completion-${n}`,
            "aria-selected": "false",
            onmousedown: (ev) => {
              ev.preventDefault();
              this.accept(item);
            },
          },
          h("span", { class: "completion-text", text: item.display || item.text }),
          item.meta ? h("span", { class: "completion-meta", text: item.meta }) : null,
        ),
      );
    });
    this.list.hidden = false;
    this.input.setAttribute("aria-expanded", "true");
  }

  highlight(n) {
    this.active = n;
    [...this.list.children].forEach((li, i) => li.setAttribute("aria-selected", i === n ? "true" : "false"));
    this.input.setAttribute("aria-activedescendant", `completion-${n}`);
  }

  accept(item) {
    const value = this.input.value;
    this.input.value = value.slice(0, this.replaceFrom) + item.text;
    this.closeList();
    this.input.focus();
  }

  closeList() {
    this.list.hidden = true;
    this.items = [];
    this.active = -1;
    this.input.setAttribute("aria-expanded", "false");
    this.input.removeAttribute("aria-activedescendant");
  }
}
