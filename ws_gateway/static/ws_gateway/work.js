// Work in progress: the todo list, background processes (live output, kill) and subagents.

import { $, clear, formatDuration, h } from "./dom.js";

const TAIL_CHARS = 4000;
const TODO_MARKS = { pending: "○", in_progress: "◐", completed: "●", cancelled: "✕" };

export class WorkPanel {
  constructor({ call, onWatch }) {
    this.call = call; // (method, params) => Promise, session-scoped by the caller
    this.onWatch = onWatch;
    this.todoEl = $("todo-list");
    this.procEl = $("process-list");
    this.subEl = $("subagent-list");
    this.procs = new Map();
    this.subs = new Map();
  }

  reset() {
    this.todos(null);
    this.procs.clear();
    this.subs.clear();
    this.renderProcs();
    this.renderSubs();
  }

  todos(list) {
    clear(this.todoEl);
    if (!list || !list.length) {
      this.todoEl.append(h("li", { class: "empty", text: "No todo list" }));
      return;
    }
    for (const item of list) {
      this.todoEl.append(
        h(
          "li",
          { class: "todo", dataset: { status: item.status } },
          h("span", { class: "mark", "aria-hidden": "true", text: TODO_MARKS[item.status] || "○" }),
          h("span", { class: "content", text: item.content }),
          h("span", { class: "visually-hidden", text: ` (${item.status.replace("_", " ")})` }),
        ),
      );
    }
  }

  // -- processes ---------------------------------------------------------

  async refreshProcesses() {
    let result;
    try {
      result = await this.call("process.list", {});
    } catch {
      return;
    }
    const seen = new Set();
    for (const p of result.processes || []) {
      seen.add(p.process_id);
      const known = this.procs.get(p.process_id);
      const tail = known && known.output.length >= (p.output_tail || "").length ? known.output : p.output_tail || "";
      this.procs.set(p.process_id, { ...known, ...p, output: tail });
    }
    for (const id of [...this.procs.keys()]) if (!seen.has(id)) this.procs.delete(id);
    this.renderProcs();
  }

  output(processId, chunk) {
    let proc = this.procs.get(processId);
    if (!proc) {
      proc = { process_id: processId, command: "", status: "running", output: "" };
      this.procs.set(processId, proc);
      this.refreshProcesses();
    }
    proc.output = (proc.output + chunk).slice(-TAIL_CHARS);
    const pre = this.procEl.querySelector(`[data-process-id="${CSS.escape(processId)}"] .proc-output`);
    if (pre) {
      const pinned = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
      pre.textContent = proc.output;
      if (pinned) pre.scrollTop = pre.scrollHeight;
    } else this.renderProcs();
  }

  closed(processId, exitCode) {
    const proc = this.procs.get(processId);
    if (proc) {
      proc.status = "exited";
      proc.exit_code = exitCode;
    }
    this.renderProcs();
  }

  async kill(processId) {
    try {
      const result = await this.call("process.kill", { process_id: processId });
      const proc = this.procs.get(processId);
      if (proc) {
        proc.status = result.status === "killed" ? "killed" : "exited";
        proc.exit_code = result.exit_code;
      }
    } catch (err) {
      const proc = this.procs.get(processId);
      if (proc) proc.error = err.message;
    }
    this.renderProcs();
  }

  renderProcs() {
    clear(this.procEl);
    if (!this.procs.size) {
      this.procEl.append(h("p", { class: "empty", text: "No background processes" }));
      return;
    }
    for (const p of this.procs.values()) {
      const running = p.status === "running";
      const state = running ? "running" : `${p.status}${p.exit_code !== undefined && p.exit_code !== null ? ` (exit ${p.exit_code})` : ""}`;
      const pre = h("pre", { class: "proc-output", tabindex: "0", "aria-label": "Output", text: p.output || "" });
      this.procEl.append(
        h(
          "div",
          { class: "proc", dataset: { processId: p.process_id, status: p.status } },
          h(
            "div",
            { class: "proc-head" },
            h("code", { class: "proc-command", text: p.command || p.process_id }),
            h("span", { class: "proc-status", text: state }),
            running
              ? h("button", { type: "button", class: "danger small", text: "Kill", onclick: () => this.kill(p.process_id) })
              : null,
          ),
          pre,
          p.error ? h("p", { class: "request-error", text: p.error }) : null,
        ),
      );
      pre.scrollTop = pre.scrollHeight;
    }
  }

  // -- subagents ---------------------------------------------------------

  subagent(type, p) {
    if (!p || !p.subagent_id) return;
    this.subs.set(p.subagent_id, { ...this.subs.get(p.subagent_id), ...p, event: type });
    this.renderSubs();
  }

  async refreshSubagents() {
    try {
      const result = await this.call("subagent.list", {});
      for (const s of result.subagents || []) this.subs.set(s.subagent_id, { ...this.subs.get(s.subagent_id), ...s });
      this.renderSubs();
    } catch {
      /* an older gateway or a watch session: nothing to show */
    }
  }

  renderSubs() {
    clear(this.subEl);
    if (!this.subs.size) {
      this.subEl.append(h("p", { class: "empty", text: "No subagents" }));
      return;
    }
    for (const s of this.subs.values()) {
      const bits = [s.status, `${s.tool_count || 0} tools`, formatDuration(s.duration_seconds)].filter(Boolean);
      this.subEl.append(
        h(
          "div",
          { class: "subagent", dataset: { subagentId: s.subagent_id, status: s.status || "" } },
          h("div", { class: "sub-goal", text: s.goal || s.subagent_id }),
          h("div", { class: "sub-meta", text: bits.join(" · ") }),
          s.summary ? h("div", { class: "sub-summary", text: s.summary }) : null,
          s.child_session_id
            ? h("button", { type: "button", class: "small", text: "Watch", onclick: () => this.onWatch(s.child_session_id) })
            : null,
        ),
      );
    }
  }
}
