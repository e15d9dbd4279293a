// The Asterisk (AMI) links' state, shared by the agent desktop and the wallboard.
// A "links" frame lists every server: {server, up, state, reason, since[, host, port, username, attempts]}.
// Everything is written with textContent: a reason may hold Asterisk's own words.
"use strict";
(function () {
  const WORDS = {
    connecting: "connecting", up: "up", lost: "link lost", unreachable: "unreachable",
    auth_failed: "authentication failed", no_login: "connected but no login",
  };
  function words(state) { return WORDS[state] || String(state); }
  function when(since) {
    if (typeof since !== "number" || !isFinite(since) || since <= 0) return "";
    const secs = Math.max(0, Math.round(Date.now() / 1000 - since));
    const ago = secs < 90 ? secs + " s" : secs < 5400 ? Math.round(secs / 60) + " min" : Math.round(secs / 3600) + " h";
    return new Date(since * 1000).toLocaleTimeString() + " (" + ago + ")";
  }
  function why(l) { return words(l.state) + (l.reason ? ": " + l.reason : ""); }

  // The banner: one line per server whose link is down; hidden when every link is up.
  // audience "agent" | "supervisor" chooses the wording.
  function banner(el, links, audience) {
    const down = links.filter((l) => !l.up);
    el.replaceChildren();
    el.hidden = down.length === 0;
    el.dataset.down = down.map((l) => l.server).join(" ");
    for (const l of down) {
      const p = document.createElement("p");
      p.className = "banner-line";
      p.dataset.server = String(l.server);
      p.dataset.state = String(l.state);
      const head = document.createElement("strong");
      head.textContent = "Asterisk link down: " + l.server;
      p.appendChild(head);
      let text = "";
      if (audience === "supervisor" && l.host) text += " (" + l.host + ":" + l.port + ", user " + l.username + ")";
      text += " \u2014 " + why(l);
      const t = when(l.since);
      if (t) text += ", since " + t;
      text += audience === "agent" ? ". No calls can be offered to you until it is back."
        : ". No calls can be routed to agents on this server until it is back; cti keeps retrying.";
      p.appendChild(document.createTextNode(text));
      el.appendChild(p);
    }
  }

  // The wallboard's table: one row per server.
  function table(tbody, links) {
    tbody.replaceChildren();
    for (const l of links) {
      const tr = document.createElement("tr");
      tr.dataset.server = String(l.server);
      tr.dataset.up = l.up ? "1" : "0";
      const cells = [l.server, l.host ? l.host + ":" + l.port : "", l.username || "", null, when(l.since),
        l.up ? "" : why(l), l.attempts == null ? "" : l.attempts];
      for (const v of cells) {
        const td = document.createElement("td");
        if (v === null) {
          const b = document.createElement("span");
          b.className = "badge " + (l.up ? "link-up" : "link-down");
          b.textContent = l.up ? "up" : "down";
          td.appendChild(b);
        } else td.textContent = String(v);
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    }
  }

  window.CtiLinks = { banner, table, words };
})();
