/*
 * Live regions for server-rendered pages (review page and admin). No build step, no library.
 *
 * The element with data-live-socket names a WebSocket stream (realtime/README.md) and the
 * cursor the page was rendered at (data-live-since). When a frame with a seq arrives, the page
 * fetches itself again and replaces each [data-live-region] whose data-version (or, without
 * one, whose HTML) changed. The server renders everything; this only decides when to ask.
 * A region holding a form the user has started to fill in is left alone (a notice says it
 * changed), and so is a list with ticked checkboxes. Reconnects resume from the last seq, and
 * the page reads itself once more then: on the approvals stream an event that committed out of
 * order while the socket was down is not in the catch-up (realtime/README.md, Known limits).
 */
(function () {
  "use strict";
  var root = document.querySelector("[data-live-socket]");
  if (!root || !("WebSocket" in window) || !window.fetch || !window.DOMParser) return;

  var path = root.getAttribute("data-live-socket");
  var since = parseInt(root.getAttribute("data-live-since") || "0", 10) || 0;
  var presence = root.getAttribute("data-live-presence") === "1";
  var statusEl = document.querySelector("[data-live-status]");
  var presenceEl = document.querySelector("[data-live-viewers]");
  var noticeEl = document.querySelector("[data-live-notice]");
  var me = (document.querySelector("[data-live-user]") || {}).textContent;
  var viewers = {};
  var attempts = 0;
  var opened = false;
  var timer = null;
  var busy = false;
  var pending = false;
  // Refusals that a reconnect cannot fix (realtime/README.md, close codes).
  var FINAL = { 4400: 1, 4401: 1, 4403: 1, 4404: 1 };

  function setStatus(text, state) {
    if (!statusEl) return;
    statusEl.textContent = text;
    statusEl.setAttribute("data-state", state);
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    var query = "?since=" + since + (presence ? "&presence=1" : "");
    var socket = new WebSocket(scheme + "//" + location.host + path + query);
    socket.onopen = function () {
      attempts = 0;
      setStatus("Live", "on");
      root.setAttribute("data-live-connected", "1");
      if (opened) schedule();  // a reconnect: whatever the catch-up cannot promise, re-read
      opened = true;
    };
    socket.onmessage = function (message) {
      var frame;
      try { frame = JSON.parse(message.data); } catch (e) { return; }
      handle(frame);
    };
    socket.onclose = function (event) {
      root.removeAttribute("data-live-connected");
      viewers = {};
      showViewers();
      if (FINAL[event.code]) { setStatus("Live updates unavailable", "off"); return; }
      setStatus("Reconnecting…", "off");
      attempts += 1;
      setTimeout(connect, Math.min(30000, 500 * Math.pow(2, attempts)));
    };
  }

  function handle(frame) {
    if (frame.type === "presence.join" || frame.type === "presence.leave") {
      var conn = frame.data && frame.data.conn;
      if (frame.type === "presence.join") viewers[conn] = frame.data.user;
      else delete viewers[conn];
      showViewers();
      return;
    }
    if (typeof frame.seq === "number") {
      if (frame.seq > since) since = frame.seq;
      schedule();
    }
  }

  function showViewers() {
    if (!presenceEl) return;
    var names = {};
    Object.keys(viewers).forEach(function (key) {
      var user = viewers[key];
      if (user && user.username !== me) names[user.name || user.username] = true;
    });
    var list = Object.keys(names).sort();
    presenceEl.hidden = list.length === 0;
    presenceEl.textContent = list.length ? "Also viewing: " + list.join(", ") : "";
  }

  function schedule() {
    clearTimeout(timer);
    // Events come in bursts (a step, a wait, an approval in one commit): one fetch for all.
    timer = setTimeout(refresh, 120);
  }

  function refresh() {
    if (busy) { pending = true; return; }
    busy = true;
    fetch(location.href, { credentials: "same-origin", headers: { "X-Live-Refresh": "1" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) { if (html) swap(new DOMParser().parseFromString(html, "text/html")); })
      .catch(function () { /* the next event or reconnect tries again */ })
      .then(function () {
        busy = false;
        if (pending) { pending = false; schedule(); }
      });
  }

  function swap(doc) {
    var held = false;
    doc.querySelectorAll("[data-live-region][id]").forEach(function (fresh) {
      var current = document.getElementById(fresh.id);
      if (!current) return;
      var version = fresh.getAttribute("data-version");
      if (version !== null ? version === current.getAttribute("data-version")
                           : fresh.innerHTML === current.innerHTML) return;
      if (current.querySelector("form[data-dirty], input.action-select:checked")) {
        held = true;
        return;
      }
      current.replaceWith(fresh);
      fresh.classList.add("flash");
      if (window.Actions && fresh.querySelector("input.action-select")) {
        // The admin's action bar binds to the rows it finds; give it the new ones.
        window.Actions(document.querySelectorAll("tr input.action-select"));
      }
    });
    if (noticeEl) {
      noticeEl.hidden = !held;
      noticeEl.textContent = held ? "This page changed while you were editing. Reload to see it." : "";
    }
    root.setAttribute("data-live-refreshed", String(since));
  }

  document.addEventListener("input", function (event) {
    var form = event.target && event.target.form;
    if (form) form.setAttribute("data-dirty", "1");
  });

  connect();
})();
