// Wallboard stub: /api/stats once, then /ws/supervisor (stats snapshots, agent state changes and
// the Asterisk links' state: a banner while one is down).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const agents = new Map();
  let links = [];
  function renderLinks() {
    CtiLinks.banner($("link-banner"), links, "supervisor");
    CtiLinks.table($("links"), links);
  }
  setInterval(() => { if (links.some((l) => !l.up)) renderLinks(); }, 10000);  // "since" ages
  function cell(tr, v) { const td = document.createElement("td"); td.textContent = v == null ? "" : String(v); tr.appendChild(td); }
  function renderAgents() {
    const tb = $("agents"); tb.replaceChildren();
    for (const a of [...agents.values()].sort((x, y) => String(x.id).localeCompare(String(y.id)))) {
      const tr = document.createElement("tr");
      cell(tr, a.id); cell(tr, a.name); cell(tr, a.state); cell(tr, a.reason); cell(tr, a.current_call);
      tb.appendChild(tr);
    }
  }
  function render(snap) {
    const tb = $("queues"); tb.replaceChildren();
    for (const [name, q] of Object.entries(snap.queues || {})) {
      const tr = document.createElement("tr");
      cell(tr, name); cell(tr, q.waiting); cell(tr, q.offering); cell(tr, q.ready_agents);
      tb.appendChild(tr);
    }
    agents.clear();
    for (const a of snap.agents || []) agents.set(a.id, a);
    renderAgents();
  }
  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/supervisor");
    ws.onopen = () => { $("conn").textContent = "connected"; };
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type === "stats") render(m.snapshot);
      else if (m.type === "links") { links = m.links || []; renderLinks(); }
      else if (m.type === "state") {
        const a = agents.get(m.agent_id) || { id: m.agent_id };
        a.state = m.state; a.reason = m.reason; a.current_call = m.call_id;
        agents.set(m.agent_id, a); renderAgents();
      }
    };
    ws.onclose = () => { $("conn").textContent = "offline"; setTimeout(connect, 2000); };
  }
  (async () => {
    const r = await fetch("/api/stats", { credentials: "same-origin" });
    if (r.status !== 200) { $("error").textContent = r.status === 401 ? "Log in as a supervisor on /agent first." : "Not allowed."; return; }
    render(await r.json());
    connect();
  })();
})();
