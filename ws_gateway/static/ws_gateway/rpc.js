// The gateway socket: JSON-RPC 2.0 calls matched by id, events, and reconnection with backoff.
//
// States: "connecting" (first attempt), "open" (gateway.ready received), "reconnecting"
// (the socket dropped: a network blip, a server restart or a 4012 drain), "closed"
// (a terminal close code 4500-4999: auth failed, forbidden origin).

export class RpcError extends Error {
  constructor(code, message, data) {
    super(message);
    this.code = code;
    this.data = data;
  }
}

const HEARTBEAT_MS = 15000;
const CALL_TIMEOUT_MS = 30000;
const BACKOFF_MS = [200, 500, 1000, 2000, 3000, 5000];

export class Gateway extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.state = "connecting";
    this.ws = null;
    this.nextId = 1;
    this.calls = new Map();
    this.attempt = 0;
    this.ready = null;
    this.closeCode = null;
    this.timer = null;
    this.heartbeat = null;
    window.addEventListener("online", () => this.reconnectNow());
  }

  connect() {
    clearTimeout(this.timer);
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onmessage = (msg) => this.onFrame(ws, msg.data);
    ws.onclose = (ev) => this.onClose(ws, ev.code);
    ws.onerror = () => {};
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }

  onFrame(ws, data) {
    if (ws !== this.ws) return;
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    for (const item of Array.isArray(frame) ? frame : [frame]) this.onMessage(item);
  }

  onMessage(frame) {
    if (frame.method === "event") {
      const params = frame.params || {};
      if (params.type === "gateway.ready") {
        this.attempt = 0;
        this.ready = params.payload || {};
        this.setState("open");
        this.startHeartbeat();
        this.dispatchEvent(new CustomEvent("ready", { detail: this.ready }));
        return;
      }
      this.dispatchEvent(new CustomEvent("event", { detail: params }));
      return;
    }
    if (frame.method) return; // a server request: this client answers the 8.1 events instead
    const call = this.calls.get(frame.id);
    if (!call) return;
    this.calls.delete(frame.id);
    clearTimeout(call.timer);
    if (frame.error) call.reject(new RpcError(frame.error.code, frame.error.message, frame.error.data));
    else call.resolve(frame.result || {});
  }

  onClose(ws, code) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.closeCode = code;
    clearInterval(this.heartbeat);
    for (const call of this.calls.values()) {
      clearTimeout(call.timer);
      call.reject(new RpcError(-1, "connection lost"));
    }
    this.calls.clear();
    if (code >= 4500 && code <= 4999) {
      this.setState("closed");
      this.dispatchEvent(new CustomEvent("terminal", { detail: code }));
      return;
    }
    this.setState("reconnecting");
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this.timer = setTimeout(() => this.connect(), delay);
  }

  reconnectNow() {
    if (this.state === "reconnecting" && !this.ws) {
      clearTimeout(this.timer);
      this.connect();
    }
  }

  // A silent network drop leaves the socket "open"; a ping that is not answered closes it.
  startHeartbeat() {
    clearInterval(this.heartbeat);
    const ws = this.ws;
    this.heartbeat = setInterval(() => {
      if (ws !== this.ws) return;
      this.call("gateway.ping", {}, 10000).catch(() => {
        if (ws === this.ws) ws.close();
      });
    }, HEARTBEAT_MS);
  }

  call(method, params = {}, timeoutMs = CALL_TIMEOUT_MS) {
    return new Promise((resolve, reject) => {
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN || this.state !== "open") {
        reject(new RpcError(-1, "not connected"));
        return;
      }
      const id = this.nextId++;
      const timer = setTimeout(() => {
        this.calls.delete(id);
        reject(new RpcError(-2, `${method}: no answer`));
      }, timeoutMs);
      this.calls.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
    });
  }
}
