// The sessions sidebar: stored sessions (session.list) merged with live ones
// (session.active_list), their status words and counts; search, rename, delete.

import { $, clear, h } from "./dom.js";

const REFRESH_DEBOUNCE_MS = 250;

export class Sidebar {
  constructor({ call, onOpen, onRename, onDelete }) {
    this.call = call;
    this.onOpen = onOpen;
    this.onRename = onRename;
    this.onDelete = onDelete;
    this.listEl = $("session-list");
    this.search = $("search");
    this.current = null;
    this.timer = null;
    this.generation = 0;
    this.search.addEventListener("input", () => this.refreshSoon());
  }

  setCurrent(key) {
    this.current = key;
    for (const li of this.listEl.children) li.classList.toggle("current", li.dataset.key === key);
  }

  refreshSoon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), REFRESH_DEBOUNCE_MS);
  }

  async refresh() {
    const generation = ++this.generation;
    const query = this.search.value.trim();
    let stored, live;
    try {
      [stored, live] = await Promise.all([
        this.call("session.list", query ? { limit: 100, title: query } : { limit: 100 }),
        this.call("session.active_list", {}),
      ]);
    } catch {
      return;
    }
    if (generation !== this.generation) return;
    const liveByKey = new Map((live.sessions || []).map((s) => [s.session_key, s]));
    const rows = [];
    for (const s of stored.sessions || []) {
      const l = liveByKey.get(s.id);
      liveByKey.delete(s.id);
      rows.push({ key: s.id, title: s.title || (l && l.title) || s.preview || "", count: l ? l.message_count : s.message_count, live: l, when: s.started_at });
    }
    const needle = query.toLowerCase();
    for (const l of liveByKey.values()) {
      if (needle && !(l.title || "").toLowerCase().includes(needle)) continue;
      rows.unshift({ key: l.session_key, title: l.title || "", count: l.message_count, live: l, when: l.started_at });
    }
    this.render(rows);
  }

  render(rows) {
    clear(this.listEl);
    if (!rows.length) {
      this.listEl.append(h("li", { class: "empty", text: this.search.value ? "No session matches" : "No sessions yet" }));
      return;
    }
    for (const row of rows) {
      const status = row.live ? row.live.status : "stored";
      const label = row.title || "Untitled session";
      this.listEl.append(
        h(
          "li",
          { class: row.key === this.current ? "session current" : "session", dataset: { key: row.key, status } },
          h(
            "button",
            { type: "button", class: "session-open", onclick: () => this.onOpen(row.key), "aria-label": `Open ${label}` },
            h("span", { class: "session-title", text: label }),
            h(
              "span",
              { class: "session-meta" },
              h("span", { class: "status-word", dataset: { status }, text: status }),
              ` ${row.count || 0} msgs`,
            ),
          ),
          h(
            "span",
            { class: "session-actions" },
            h("button", { type: "button", class: "icon small rename", title: "Rename", "aria-label": `Rename ${label}`, text: "✎", onclick: () => this.onRename(row.key, row.title, row.live) }),
            h("button", { type: "button", class: "icon small delete", title: "Delete", "aria-label": `Delete ${label}`, text: "✕", onclick: () => this.onDelete(row.key, label) }),
          ),
        ),
      );
    }
  }
}
