// The console: one socket to this page's own origin, one open session at a time.
//
// Every session event carries a contiguous `seq`. The page applies each seq exactly once:
// older ones are dropped, a gap is filled from session.events.since. After a reconnect it
// resumes the session and replays what it missed; when the log cannot cover the gap (a new
// epoch, a new runtime id, `truncated`) it rebuilds the view from the transcript and the
// running turn's events. The URL's hash names the open session, so a reload comes back to it.

import { Composer } from "./composer.js";
import { Conversation } from "./conversation.js";
import { confirmDialog, promptDialog } from "./dialogs.js";
import { $ } from "./dom.js";
import { Requests } from "./requests.js";
import { Gateway, RpcError } from "./rpc.js";
import { applySkin, Settings } from "./settings.js";
import { Sidebar } from "./sidebar.js";
import { WorkPanel } from "./work.js";

const body = document.body;
const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${body.dataset.wsPath}`;
const gw = new Gateway(wsUrl);

const S = {
  sid: null, // runtime id
  key: null, // stored id
  lastSeq: 0,
  epoch: null,
  running: false,
  starting: false,
  info: {},
  parentKey: null, // set while watching a subagent's session
  holding: 0, // > 0: events wait in `held` (a resync or a transcript refresh is in progress)
  held: [],
  early: [], // events of a session this page is about to open
  opening: null,
  attaching: Promise.resolve(), // settles once a (re)connection has attached its session again
  gen: 0, // bumped when another session is opened: callbacks of the old one stand down
};

const call = (method, params) => gw.call(method, params);
const sessionCall = (method, params = {}) => {
  if (!S.sid) return Promise.reject(new RpcError(4006, "no session open"));
  return gw.call(method, { session_id: S.sid, ...params });
};

let noticeTimer = null;
function notice(text) {
  const el = $("notice");
  el.textContent = text;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => (el.textContent = ""), 6000);
}

const conversation = new Conversation($("conversation"), { onEdit: rerunFrom });
const requests = new Requests($("requests"), {
  respond: (method, params) => sessionCall(method, params),
  onChange: renderStatus,
});
const work = new WorkPanel({ call: sessionCall, onWatch: watchChild });
const sidebar = new Sidebar({ call, onOpen: (key) => navigate(key), onRename: renameSession, onDelete: deleteSession });
const settings = new Settings({ call, sessionCall, notice });
const composer = new Composer({ call, onSubmit: submit, onStop: stop });

// -- connection --------------------------------------------------------------

const CONN_LABELS = { connecting: "connecting", open: "connected", reconnecting: "reconnecting…", closed: "disconnected" };

gw.addEventListener("state", (ev) => {
  const el = $("conn");
  el.dataset.state = ev.detail;
  el.textContent = CONN_LABELS[ev.detail] || ev.detail;
  document.body.classList.toggle("offline", ev.detail !== "open");
});

gw.addEventListener("terminal", (ev) => {
  if (ev.detail === 4501 && body.dataset.loginRequired === "1") {
    location.assign(`${body.dataset.loginUrl}?next=${encodeURIComponent(location.pathname + location.hash)}`);
    return;
  }
  notice(`The gateway refused this page (close ${ev.detail}).`);
});

gw.addEventListener("ready", async (ev) => {
  const ready = ev.detail;
  applySkin(ready.skin);
  const epochChanged = S.epoch !== null && ready.replay_epoch !== S.epoch;
  S.epoch = ready.replay_epoch;
  settings.loadSkins();
  call("commands.catalog", {}).then((r) => composer.setCatalog(r.pairs), () => {});
  sidebar.refresh();
  const key = S.key || keyFromHash();
  // What the person sends meanwhile waits for this: until the session is attached again,
  // its old runtime id may name nothing on a restarted server.
  let done;
  S.attaching = new Promise((resolve) => (done = resolve));
  try {
    if (key && S.sid) await resync(epochChanged);
    else if (key) await openSession(key);
    else conversation.reset([], welcomeText());
  } finally {
    done();
  }
});

gw.addEventListener("event", (ev) => onEvent(ev.detail));

function welcomeText() {
  return (gw.ready && gw.ready.skin && gw.ready.skin.branding && gw.ready.skin.branding.welcome) ||
    "Connected. Start a new session, or open one from the list.";
}

// -- opening sessions ----------------------------------------------------------

function keyFromHash() {
  const m = location.hash.match(/^#s=([\w.-]+)$/);
  return m ? m[1] : null;
}

function navigate(key) {
  closeDrawers();
  if (key === S.key) return;
  if (`#s=${key}` === location.hash) openSession(key);
  else location.hash = `s=${key}`;
}

window.addEventListener("hashchange", () => {
  const key = keyFromHash();
  if (key && key !== S.key && gw.state === "open") openSession(key);
});

function setCurrent(sid, key) {
  S.sid = sid;
  S.key = key;
  S.lastSeq = 0;
  S.running = false;
  S.info = {};
  S.held = [];
  S.holding = 0;
  S.gen += 1;
  requests.clear();
  work.reset();
  sidebar.setCurrent(key);
  if (location.hash !== `#s=${key}`) history.replaceState(null, "", `#s=${key}`);
  $("rename-current").disabled = false;
  $("undo").disabled = false;
}

async function newSession() {
  closeDrawers();
  S.parentKey = null;
  let res;
  S.opening = "create";
  S.early = [];
  try {
    res = await call("session.create", {});
  } catch (err) {
    S.opening = null;
    notice(`Could not create a session: ${err.message}`);
    return null;
  }
  S.opening = null;
  setCurrent(res.session_id, res.stored_session_id);
  S.starting = true;
  conversation.reset(res.messages || [], welcomeText());
  showInfo(res.info || {});
  const early = S.early.filter((e) => e.session_id === res.session_id);
  S.early = [];
  for (const e of early) onSessionEvent(e);
  settings.loadModels(true);
  sidebar.refresh();
  $("input").focus();
  return res;
}

async function openSession(key, { lazy = false } = {}) {
  S.opening = key;
  S.early = [];
  let res;
  try {
    res = await call("session.resume", lazy ? { session_id: key, lazy: true } : { session_id: key });
  } catch (err) {
    S.opening = null;
    if (err.code === 4007) notice("That session no longer exists.");
    else notice(`Could not open the session: ${err.message}`);
    if (S.key === key || !S.sid) {
      S.sid = null;
      S.key = null;
      S.info = {};
      history.replaceState(null, "", location.pathname);
      conversation.reset([], welcomeText());
      showTitle();
    }
    return;
  }
  S.opening = null;
  if (!lazy) S.parentKey = null;
  await adopt(res);
  settings.loadModels(true);
  $("input").focus();
}

// Render a resume snapshot, then the running turn from the event log, then live events.
async function adopt(res) {
  setCurrent(res.session_id, res.session_key || res.resumed);
  const gen = S.gen;
  S.holding += 1;
  S.held = S.early.filter((e) => e.session_id === res.session_id);
  S.early = [];
  conversation.reset(res.messages || []);
  showInfo(res.info || {});
  S.running = !!res.running;
  if (res.todo_state) work.todos(res.todo_state.todos);
  let since = null;
  try {
    since = await sessionCall("session.events.since", { last_seen: 0 });
  } catch {
    /* shown from the snapshot alone */
  }
  if (gen !== S.gen) return;
  if (since) {
    const events = since.events || [];
    if (res.running) {
      let start = -1;
      events.forEach((e, i) => e.type === "message.start" && (start = i));
      if (start >= 0) {
        conversation.beginTurn();
        for (const e of events.slice(start + 1)) apply(e, true);
      } else if (res.inflight) conversation.beginTurn(res.inflight.assistant || "");
    }
    for (const e of events) if (e.type === "subagent.start" || e.type === "subagent.complete" || e.type === "subagent.progress") work.subagent(e.type, e.payload);
    S.lastSeq = since.latest_seq || 0;
    requests.sync(since.open_requests || []);
  } else {
    if (res.running && res.inflight) conversation.beginTurn(res.inflight.assistant || "");
    requests.sync(res.open_requests);
  }
  $("watch-banner").hidden = !S.parentKey;
  work.refreshProcesses();
  work.refreshSubagents();
  release();
  renderStatus();
  sidebar.setCurrent(S.key);
}

// After a reconnect: attach again, then replay from the last seq seen, or rebuild.
async function resync(epochChanged) {
  const key = S.key;
  const gen = S.gen;
  S.holding += 1;
  let res;
  try {
    res = await call("session.resume", { session_id: key, omit_messages: true });
  } catch (err) {
    if (gen !== S.gen) return;
    S.holding -= 1;
    if (err.code === 4007) {
      notice("This session ended while the page was away.");
      S.sid = null;
      S.key = null;
      conversation.reset([], welcomeText());
    }
    return;
  }
  if (gen !== S.gen) return;
  if (!epochChanged && res.session_id === S.sid) {
    try {
      const since = await sessionCall("session.events.since", { last_seen: S.lastSeq });
      if (gen !== S.gen) return;
      if (!since.truncated) {
        S.held.push(...(since.events || []));
        requests.sync(since.open_requests || []);
        release();
        renderStatus();
        return;
      }
    } catch {
      /* rebuild below */
    }
  }
  S.holding -= 1;
  S.held = [];
  try {
    await adopt(await call("session.resume", { session_id: key }));
  } catch (err) {
    notice(`Could not resume: ${err.message}`);
  }
}

function release() {
  S.holding = Math.max(0, S.holding - 1);
  // One at a time: an event may start another hold (a gap, a new turn's transcript refresh).
  while (!S.holding && S.held.length) {
    S.held.sort((a, b) => (a.seq || 0) - (b.seq || 0));
    gate(S.held.shift());
  }
}

// -- events ----------------------------------------------------------------

function onEvent(params) {
  const sid = params.session_id;
  if (!sid) return onGlobal(params);
  onSessionEvent(params);
}

function onSessionEvent(params) {
  if (params.session_id !== S.sid) {
    if (S.opening) S.early.push(params);
    return;
  }
  if (S.holding) {
    S.held.push(params);
    return;
  }
  gate(params);
}

// Apply each seq once, in order; a gap is filled from the log first.
function gate(e) {
  if (typeof e.seq === "number") {
    if (e.seq <= S.lastSeq) return;
    if (e.seq > S.lastSeq + 1) {
      S.held.push(e);
      fillGap();
      return;
    }
    S.lastSeq = e.seq;
  }
  apply(e, false);
}

async function fillGap() {
  if (S.holding) return;
  const gen = S.gen;
  S.holding += 1;
  try {
    const since = await sessionCall("session.events.since", { last_seen: S.lastSeq });
    if (gen !== S.gen) return;
    if (since.truncated) {
      S.holding -= 1;
      S.held = [];
      await adopt(await call("session.resume", { session_id: S.key }));
      return;
    }
    S.held.push(...(since.events || []));
    if (!S.held.some((e) => e.seq === S.lastSeq + 1)) {
      // The log no longer has the missing events: go on from the oldest one at hand.
      S.lastSeq = Math.min(...S.held.map((e) => e.seq)) - 1;
    }
  } catch {
    if (gen !== S.gen) return;
    /* the reconnect path resyncs */
  }
  release();
}

function onGlobal(e) {
  const p = e.payload || {};
  switch (e.type) {
    case "sessions.changed":
      sidebar.refreshSoon();
      break;
    case "skin.changed":
      applySkin(p);
      break;
    case "session.reclaimed":
      sidebar.refreshSoon();
      if (p.session_id === S.sid) {
        notice("The server reclaimed this session; reopening it.");
        S.sid = null;
        if (p.stored_session_id) openSession(p.stored_session_id);
      }
      break;
    default:
  }
}

function apply(e, replay) {
  const p = e.payload || {};
  switch (e.type) {
    case "message.start":
      S.running = true;
      if (replay) conversation.beginTurn();
      else startForeignTurn();
      break;
    case "message.delta":
      conversation.delta(p.text || "");
      break;
    case "reasoning.delta":
    case "thinking.delta":
      conversation.reasoning(p.text || "");
      break;
    case "tool.generating":
      break;
    case "tool.start":
      conversation.toolStart(p);
      if (Array.isArray(p.todos)) work.todos(p.todos);
      break;
    case "tool.complete":
      conversation.toolComplete(p);
      if (Array.isArray(p.todos)) work.todos(p.todos);
      break;
    case "todo.updated":
      work.todos(p.todos);
      break;
    case "status.update":
      conversation.status(p.kind, p.text);
      if (p.kind === "process" && !replay) work.refreshProcesses();
      break;
    case "session.usage":
      showUsage(p.usage || p);
      break;
    case "message.complete":
      conversation.complete(p);
      S.running = false;
      if (!replay) sidebar.refreshSoon();
      break;
    case "session.info":
      showInfo(p);
      break;
    case "session.title":
      S.info.title = p.title;
      showTitle();
      if (!replay) sidebar.refreshSoon();
      break;
    case "approval.request":
    case "clarify.request":
    case "sudo.request":
    case "secret.request":
      requests.show(e.type.split(".")[0], p);
      break;
    case "request.cancel":
    case "clarify.expire":
    case "sudo.expire":
    case "secret.expire":
      requests.remove(p.request_id);
      break;
    case "agent.terminal.output":
      work.output(p.process_id, p.chunk || "");
      break;
    case "terminal.close":
      work.closed(p.process_id, p.exit_code);
      break;
    case "subagent.start":
    case "subagent.progress":
    case "subagent.tool":
    case "subagent.complete":
      work.subagent(e.type, p);
      break;
    case "error":
      conversation.system(p.message || "error", "error");
      break;
    default:
  }
  renderStatus();
}

// A live turn: the transcript (with the prompt that started it, from whichever client)
// is refreshed first, while the turn's events wait.
function startForeignTurn() {
  S.holding += 1;
  const gen = S.gen;
  sessionCall("session.history", {})
    .then((history) => {
      // Up to the prompt that started this turn: its own rows arrive as its events.
      const rows = history.messages || [];
      let last = rows.length - 1;
      while (last >= 0 && rows[last].role !== "user") last -= 1;
      if (S.gen === gen) conversation.reset(rows.slice(0, last + 1));
    })
    .catch(() => {})
    .finally(() => {
      if (S.gen !== gen) return;
      conversation.beginTurn();
      release();
    });
}

function showInfo(info) {
  S.info = { ...S.info, ...info };
  if (typeof info.running === "boolean") S.running = info.running;
  S.starting = !!info.lazy && !info.tools;
  if (info.busy_input_mode) $("busy-mode").value = info.busy_input_mode;
  if (info.usage) showUsage(info.usage);
  if (info.model) settings.showModel(info.model, info.provider);
  showTitle();
  renderStatus();
}

function showTitle() {
  const title = S.info.title || (S.key ? "Untitled session" : "No session");
  $("conv-title").textContent = title;
  document.title = `${title} · ws_gateway`;
}

function showUsage(usage) {
  if (!usage) return;
  $("conv-usage").textContent = `${usage.input || 0} in / ${usage.output || 0} out`;
}

function renderStatus() {
  const word = !S.sid ? "" : requests.size && S.running ? "waiting" : S.running ? "working" : S.starting ? "starting" : "idle";
  const el = $("conv-status");
  el.textContent = word;
  el.dataset.status = word;
  $("stop").disabled = !S.running;
}

// -- actions -----------------------------------------------------------------

async function submit(text) {
  await S.attaching;
  if (!S.sid && !(await newSession())) return;
  if (text.startsWith("/")) return runCommand(text);
  return sendPrompt(text);
}

async function sendPrompt(text, extra = {}) {
  try {
    const result = await sessionCall("prompt.submit", { text, ...extra });
    if (result.status === "queued") notice("Queued: it runs after the current turn.");
    else if (result.status === "steered") notice("Steered into the running turn.");
    else if (result.status === "redirected") notice("The running turn was interrupted for this message.");
    return result;
  } catch (err) {
    if (!extra.truncate_before_user_ordinal && extra.truncate_before_user_ordinal !== 0) {
      $("input").value = text;
      notice(err.message);
    }
    throw err;
  }
}

async function runCommand(line) {
  const [word, ...rest] = line.slice(1).split(/\s+/);
  const arg = line.slice(1 + word.length).trim();
  conversation.system(line, "command");
  try {
    const result = await sessionCall("slash.exec", { command: line });
    if (result.output) conversation.system(result.output, "output");
    return;
  } catch (err) {
    if (err.code !== 4018) {
      conversation.system(err.message, "error");
      return;
    }
  }
  try {
    const result = await sessionCall("command.dispatch", arg ? { name: word, arg } : { name: word });
    if (result.notice) notice(result.notice);
    if (result.type === "send" && result.message) await sendPrompt(result.message);
    else if (result.type === "prefill" && result.message) $("input").value = result.message;
    else if (result.type === "alias" && result.target) await runCommand(`/${result.target}${rest.length ? ` ${arg}` : ""}`);
    else if (result.output) conversation.system(result.output, "output");
  } catch (err) {
    conversation.system(err.message, "error");
  }
}

// Edit a past prompt and run it again: the rewind asks for confirmation (4029, 4028).
async function rerunFrom(ordinal, text) {
  const base = { truncate_before_user_ordinal: ordinal };
  try {
    await sendPrompt(text, base);
    return true;
  } catch (err) {
    if (err.code !== 4029 && err.code !== 4028) {
      notice(err.message);
      return false;
    }
  }
  if (!(await confirmDialog("Rerun from here? This message and everything after it are removed from the session.", "Rerun"))) return false;
  try {
    await sendPrompt(text, { ...base, confirm_truncate: true });
    return true;
  } catch (err) {
    if (err.code !== 4028) {
      notice(err.message);
      return false;
    }
  }
  if (!(await confirmDialog("This empties the whole transcript before running the new message. Continue?", "Rerun"))) return false;
  try {
    await sendPrompt(text, { ...base, confirm_truncate: true, confirm_empty_truncate: true });
    return true;
  } catch (err) {
    notice(err.message);
    return false;
  }
}

async function stop() {
  if (!S.sid || !S.running) return;
  try {
    await sessionCall("session.interrupt", {});
  } catch (err) {
    notice(err.message);
  }
}

async function undo() {
  try {
    const result = await sessionCall("session.undo", {});
    const history = await sessionCall("session.history", {});
    conversation.reset(history.messages || []);
    notice(result.removed ? `Undone: ${result.removed} message(s) removed.` : "Nothing to undo.");
  } catch (err) {
    notice(err.message);
  }
}

async function renameSession(key, title, live) {
  const value = await promptDialog("New title", title || "");
  if (value === null || !value) return;
  try {
    let sid = key === S.key ? S.sid : live ? live.id : null;
    if (!sid) sid = (await call("session.resume", { session_id: key, omit_messages: true })).session_id;
    await call("session.title", { session_id: sid, title: value });
    if (key === S.key) {
      S.info.title = value;
      showTitle();
    }
    sidebar.refresh();
  } catch (err) {
    notice(err.message);
  }
}

async function deleteSession(key, label) {
  if (!(await confirmDialog(`Delete "${label}"? Its transcript is removed for good.`, "Delete"))) return;
  try {
    await call("session.delete", { session_id: key });
  } catch (err) {
    notice(err.message);
    return;
  }
  if (key === S.key) {
    S.sid = null;
    S.key = null;
    history.replaceState(null, "", location.pathname);
    conversation.reset([], welcomeText());
    requests.clear();
    work.reset();
    showInfo({ title: "" });
    $("conv-title").textContent = "No session";
  }
  sidebar.refresh();
}

async function watchChild(childKey) {
  S.parentKey = S.key;
  await openSession(childKey, { lazy: true });
}

// -- wiring --------------------------------------------------------------------

function closeDrawers() {
  document.body.classList.remove("show-sidebar", "show-work");
  $("toggle-sidebar").setAttribute("aria-expanded", "false");
  $("toggle-work").setAttribute("aria-expanded", "false");
}

function toggleDrawer(cls, button) {
  const open = !document.body.classList.contains(cls);
  closeDrawers();
  document.body.classList.toggle(cls, open);
  button.setAttribute("aria-expanded", String(open));
}

// The drawers open below the top bar, whose height changes when it wraps on narrow screens.
new ResizeObserver(([entry]) => {
  document.documentElement.style.setProperty("--topbar-h", `${Math.ceil(entry.target.getBoundingClientRect().height)}px`);
}).observe(document.querySelector(".topbar"));

$("new-session").addEventListener("click", () => newSession());
$("stop").addEventListener("click", () => stop());
$("undo").addEventListener("click", () => undo());
$("rename-current").addEventListener("click", () => S.key && renameSession(S.key, S.info.title, { id: S.sid }));
$("watch-back").addEventListener("click", () => S.parentKey && navigate(S.parentKey));
$("busy-mode").addEventListener("change", async (ev) => {
  try {
    await sessionCall("config.set", { key: "busy_input_mode", value: ev.target.value });
  } catch (err) {
    notice(err.message);
  }
});
$("toggle-sidebar").addEventListener("click", (ev) => toggleDrawer("show-sidebar", ev.currentTarget));
$("toggle-work").addEventListener("click", (ev) => toggleDrawer("show-work", ev.currentTarget));
document.addEventListener("keydown", (ev) => {
  if (ev.key !== "Escape" || document.querySelector("dialog[open]")) return;
  if (document.body.classList.contains("show-sidebar") || document.body.classList.contains("show-work")) {
    closeDrawers();
    return;
  }
  if (ev.target === $("input")) return; // the composer handles its own Esc
  stop();
});

gw.connect();
