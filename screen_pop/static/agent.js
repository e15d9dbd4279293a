// Agent desktop: login, state buttons, screen pop, disposition. Vanilla JS, no build step.
// All server data is written with textContent (never innerHTML).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  let ws = null;
  let me = null;
  let currentCall = null;   // call_id of the last pop
  let answered = false;
  let closeable = null;     // call_id the disposition form closes
  let retry = 0;
  let stopped = false;
  let links = [];           // the Asterisk links' state ("links" frames)

  function show(el, on) { el.hidden = !on; }
  function text(id, v) { $(id).textContent = v == null || v === "" ? "-" : String(v); }
  function pick(obj, ...keys) {
    if (!obj) return undefined;
    for (const k of keys) {
      const parts = k.split(".");
      let v = obj;
      for (const p of parts) { v = v == null ? undefined : v[p]; }
      if (v != null && v !== "") return v;
    }
    return undefined;
  }
  function nameOf(v) {
    if (v == null) return undefined;
    if (typeof v === "object") return v.name || v.username || v.id;
    return v;
  }

  async function api(path, opts) {
    const r = await fetch(path, Object.assign({ credentials: "same-origin" }, opts || {}));
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    return { status: r.status, body };
  }

  function setState(state, reason) {
    const b = $("state");
    b.textContent = reason ? state + " (" + reason + ")" : state;
    b.className = "badge " + state;
    b.dataset.state = state;
  }

  function setConn(on) {
    const c = $("conn");
    c.textContent = on ? "connected" : "offline";
    c.dataset.connected = on ? "1" : "0";
  }

  function renderPop(p) {
    currentCall = p.call_id;
    answered = false;
    const c = p.customer || {};
    const cust = c.customer || c;  // a 360 may nest the record under "customer"
    text("pop-caller-num", p.caller_num);
    text("pop-caller-name", p.caller_name);
    text("pop-queue", p.queue);
    text("pop-ivr", p.ivr_choice);
    text("pop-customer-name", p.customer ? pick(cust, "name", "full_name", "display_name") : "unknown caller");
    text("pop-account", pick(cust, "account_no", "account_number", "account", "account_id"));
    text("pop-tier", pick(c, "value_tier", "customer.value_tier", "analytics.value_tier"));
    text("pop-manager", nameOf(pick(c, "account_manager", "customer.account_manager")));
    const churn = pick(c, "churn", "churn_risk", "analytics.churn");
    let risk = churn, reasons = pick(c, "churn_reasons", "analytics.churn_reasons") || [];
    if (churn && typeof churn === "object") {
      risk = pick(churn, "risk", "level", "score");
      reasons = churn.reasons || reasons;
    }
    text("pop-churn", risk);
    $("pop-churn").className = (risk === "high" || (typeof risk === "number" && risk >= 0.7)) ? "churn-high" : "";
    const rl = $("pop-churn-reasons");
    rl.replaceChildren();
    for (const r of reasons) { const li = document.createElement("li"); li.textContent = nameOf(r); rl.appendChild(li); }
    const cl = $("pop-contacts");
    cl.replaceChildren();
    const contacts = pick(c, "last_contacts", "recent_contacts", "contacts") || [];
    for (const k of contacts.slice(0, 5)) {
      const li = document.createElement("li");
      if (typeof k === "object") {
        const when = k.at || k.started_at || k.created_at || "";
        li.textContent = [when, k.channel, k.direction, k.disposition || k.outcome || k.code, k.notes || k.summary]
          .filter((x) => x != null && x !== "").join(" · ");
      } else { li.textContent = String(k); }
      cl.appendChild(li);
    }
    text("pop-status", "ringing");
    $("pop-card").dataset.callId = p.call_id;
    show($("pop-card"), true);
  }

  function onMessage(m) {
    switch (m.type) {
      case "hello": setState(m.state, ""); break;
      case "links": links = m.links || []; CtiLinks.banner($("link-banner"), links, "agent"); break;
      case "state":
        setState(m.state, m.reason);
        if ((m.state === "ready" || m.state === "not_ready") && currentCall && !answered) {
          text("pop-status", "missed");
        }
        break;
      case "pop": renderPop(m); break;
      case "call_answered":
        if (m.call_id === currentCall) { answered = true; text("pop-status", "on call"); }
        break;
      case "call_ended":
        if (m.call_id === currentCall) {
          text("pop-status", "ended");
          closeable = m.call_id;
          $("dispo-submit").disabled = false;
        }
        break;
      case "error": $("desk-error").textContent = m.message; break;
      case "pong": break;
      default: break;
    }
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(proto + location.host + "/ws/agent");
    ws.onopen = () => { retry = 0; setConn(true); };
    ws.onmessage = (e) => { try { onMessage(JSON.parse(e.data)); } catch (err) { console.error(err); } };
    ws.onclose = () => {
      setConn(false);
      ws = null;
      if (stopped) return;
      retry = Math.min(retry + 1, 6);
      setTimeout(async () => {
        const r = await api("/api/me");
        if (r.status === 200) connect(); else showLogin();
      }, 500 * retry);
    };
  }

  function send(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(obj)); return true; }
    $("desk-error").textContent = "not connected";
    return false;
  }

  setInterval(() => { if (links.some((l) => !l.up)) CtiLinks.banner($("link-banner"), links, "agent"); }, 10000);

  function showLogin() {
    show($("login-form"), true); show($("desk"), false); show($("logout"), false);
    links = []; CtiLinks.banner($("link-banner"), links, "agent");
    $("who").textContent = "";
  }

  function showDesk() {
    show($("login-form"), false); show($("desk"), true); show($("logout"), true);
    $("who").textContent = me.username + (me.agent_id ? " (" + me.agent_id + ")" : "");
    stopped = false;
    connect();
  }

  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("login-error").textContent = "";
    const r = await api("/api/login", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: $("username").value, password: $("password").value }),
    });
    $("password").value = "";
    if (r.status !== 200) {
      $("login-error").textContent = r.status === 429 ? "Too many attempts, wait a minute." :
        (r.body && r.body.message) || "Login failed";
      return;
    }
    me = r.body;
    if (me.role !== "agent" || !me.agent_id) {
      $("login-error").textContent = "This account is not an agent; see /wallboard.";
      return;
    }
    showDesk();
  });

  $("logout").addEventListener("click", async () => {
    stopped = true;
    await api("/api/logout", { method: "POST" });
    if (ws) ws.close();
    showLogin();
  });

  $("ready").addEventListener("click", () => { $("desk-error").textContent = ""; send({ type: "ready" }); });
  $("not-ready").addEventListener("click", () => {
    $("desk-error").textContent = "";
    send({ type: "not_ready", reason: $("nr-reason").value });
  });

  $("dispo-form").addEventListener("submit", (e) => {
    e.preventDefault();
    if (!closeable) return;
    if (send({ type: "disposition", call_id: closeable, code: $("dispo-code").value, notes: $("dispo-notes").value })) {
      closeable = null;
      $("dispo-submit").disabled = true;
      $("dispo-notes").value = "";
      text("pop-status", "closed");
    }
  });

  (async () => {
    const r = await api("/api/me");
    if (r.status === 200 && r.body.role === "agent" && r.body.agent_id) { me = r.body; showDesk(); }
    else showLogin();
  })();
})();
