// rtae browser tracker (GET /t.js): page views with load time and UTM, e-commerce events via rtae.track.
// No cookies: session id in sessionStorage (30 min inactivity), user id in localStorage; nothing at all under Do Not Track.
(function (w, d) {
  "use strict";
  var old = w.rtae;
  if (old && old.loaded) return; // the script included twice
  var nav = w.navigator;
  var noop = function () {};
  var api = { loaded: true, track: noop, q: { push: noop } };
  w.rtae = api;
  if (nav.doNotTrack === "1") return; // honoured before anything is stored or sent

  var me = d.currentScript || d.querySelector('script[src*="/t.js"]');
  var data = (me && me.dataset) || {};
  var base = (data.endpoint || (me && me.src ? new URL(me.src, location.href).origin : location.origin)).replace(/\/+$/, "");
  var url = base + "/api/events" + (data.key ? "?key=" + encodeURIComponent(data.key) : "");
  var GAP = 30 * 60 * 1000;
  var mem = {}; // stands in for storage the browser refuses (private modes, sandboxed frames)

  function uuid() {
    var c = w.crypto;
    if (c && c.randomUUID) return c.randomUUID();
    var s = "", i, b = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(b);
    else for (i = 0; i < 16; i++) b[i] = (Math.random() * 256) | 0;
    for (i = 0; i < 16; i++) s += (b[i] + 256).toString(16).slice(1);
    return s;
  }
  function get(store, k) {
    try { return w[store].getItem(k); } catch (e) { return mem[store + k] || null; }
  }
  function set(store, k, v) {
    try { w[store].setItem(k, v); } catch (e) { mem[store + k] = v; }
  }
  function clip(v, n) {
    return v ? String(v).slice(0, n) : undefined;
  }

  var uid = get("localStorage", "rtae_uid");
  if (!uid) set("localStorage", "rtae_uid", (uid = uuid()));

  // The session renews after GAP of inactivity, measured across pages of the tab.
  function session(now) {
    var sid = get("sessionStorage", "rtae_sid");
    var last = +get("sessionStorage", "rtae_seen") || 0;
    if (!sid || now - last > GAP) set("sessionStorage", "rtae_sid", (sid = uuid()));
    set("sessionStorage", "rtae_seen", String(now));
    return sid;
  }

  var queue = [], timer = 0;
  function flush() {
    clearTimeout(timer);
    timer = 0;
    if (!queue.length) return;
    var body = queue.map(function (e) { return JSON.stringify(e); }).join("\n") + "\n";
    queue = [];
    var sent = false;
    try { sent = nav.sendBeacon && nav.sendBeacon(url, new Blob([body], { type: "text/plain" })); } catch (e) {}
    if (!sent && w.fetch) {
      // text/plain keeps it a simple request (no preflight); no-cors because the answer is never read
      w.fetch(url, { method: "POST", body: body, keepalive: true, mode: "no-cors", headers: { "content-type": "text/plain" } })["catch"](function () {});
    }
  }
  function send(type, props, time) {
    var now = Date.now(), e = {}, k;
    for (k in props) if (Object.prototype.hasOwnProperty.call(props, k)) e[k] = props[k];
    e.eventId = uuid();
    e.type = type;
    e.timestamp = time || now;
    e.userId = uid;
    e.sessionId = session(now);
    if (e.page === undefined) e.page = page;
    queue.push(e);
    if (queue.length >= 20) flush();
    else if (!timer) timer = setTimeout(flush, 1000);
  }

  // page: path + query without the utm_* parameters, which travel as fields of their own
  var q = new URLSearchParams(location.search), utm = {}, rest = [];
  q.forEach(function (v, k) {
    if (/^utm_/i.test(k)) utm[k.toLowerCase()] = v;
    else rest.push(encodeURIComponent(k) + "=" + encodeURIComponent(v));
  });
  var page = clip(location.pathname + (rest.length ? "?" + rest.join("&") : ""), 2048);

  function pageView() {
    var p = w.performance, n = p && p.getEntriesByType && p.getEntriesByType("navigation")[0], ms;
    if (n) ms = n.loadEventEnd > 0 ? n.loadEventEnd - n.startTime : n.domContentLoadedEventEnd - n.startTime;
    var e = {
      referrer: clip(d.referrer, 2048),
      utmSource: clip(utm.utm_source, 256),
      utmMedium: clip(utm.utm_medium, 256),
      utmCampaign: clip(utm.utm_campaign, 256),
    };
    if (ms >= 0 && ms <= 600000) e.loadTimeMs = Math.round(ms);
    // a page view happens when navigation starts, before anything the page tracks
    send("page_view", e, p && p.timeOrigin ? Math.round(p.timeOrigin) : 0);
    flush();
  }
  // loadEventEnd is set only once the load handlers have returned, hence the extra turn
  if (d.readyState === "complete") setTimeout(pageView, 0);
  else w.addEventListener("load", function () { setTimeout(pageView, 0); });

  api.track = function (type, props) {
    if (typeof type === "string") send(type, props || {});
  };
  // calls made before the script loaded: rtae.q holds [type, props] arrays or arguments objects
  var pending = (old && old.q) || [];
  for (var i = 0; i < pending.length; i++) api.track(pending[i][0], pending[i][1]);
  api.q = { push: function (a) { api.track(a[0], a[1]); } };

  w.addEventListener("pagehide", flush);
  d.addEventListener("visibilitychange", function () {
    if (d.visibilityState === "hidden") flush();
  });
})(window, document);
