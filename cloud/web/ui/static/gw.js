// gw.js: what every page shares: texts, the API with the signed-in token, live updates (SSE),
// names of departments, streets and categories, formatting, dialogs and the after-photo upload.
"use strict";
(function () {
  const GW = window.GW;
  GW.t = (k) => (GW.i18n && GW.i18n[k] !== undefined ? GW.i18n[k] : k);
  const $ = (sel, root) => (root || document).querySelector(sel);
  GW.$ = $;
  GW.esc = (s) => String(s === undefined || s === null ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

  // ---- language: a cookie for the server-rendered shell, localStorage to remember it ----
  const setLang = (lang) => {
    document.cookie = "gw_lang=" + lang + "; path=/; max-age=31536000; samesite=lax";
    localStorage.setItem("gw_lang", lang);
  };
  const stored = localStorage.getItem("gw_lang");
  if (stored && stored !== GW.lang && !/(^|; )gw_lang=/.test(document.cookie)) {
    setLang(stored);
    location.reload();
  }
  document.addEventListener("DOMContentLoaded", () => {
    const b = $("#lang-toggle");
    if (b) b.addEventListener("click", () => { setLang(b.dataset.lang); location.reload(); });
  });

  // ---- token and API ----
  GW.token = () => localStorage.getItem("gw_token") || "";
  GW.setToken = (t) => { localStorage.setItem("gw_token", t); GW._who = null; };
  GW.clearToken = () => { localStorage.removeItem("gw_token"); GW._who = null; };
  GW.api = async (method, path, body, raw) => {
    const headers = {};
    const tok = GW.token();
    if (tok) headers.Authorization = "Bearer " + tok;
    let payload;
    if (raw) payload = body;
    else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
    const resp = await fetch(path, { method, headers, body: payload });
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
    if (!resp.ok) {
      const err = new Error((data && data.error) || resp.status + " " + resp.statusText);
      err.status = resp.status;
      throw err;
    }
    return data;
  };
  GW.get = (path) => GW.api("GET", path);
  GW.post = (path, body) => GW.api("POST", path, body || {});
  // whoami: the signed-in actor {name, role, dept}, or null.
  GW.whoami = () => {
    if (!GW._who) {
      GW._who = GW.token() ? GW.get("/api/v1/whoami").catch(() => null) : Promise.resolve(null);
    }
    return GW._who;
  };

  // ---- reference names: departments, streets, categories ----
  GW.refs = null;
  GW.loadRefs = async () => {
    if (GW.refs) return GW.refs;
    const d = await GW.get("/api/v1/departments");
    const depts = {}, streets = {}, cats = {};
    for (const x of d.departments || []) depts[x.id] = x;
    for (const x of d.streets || []) streets[x.code] = x;
    for (const c of d.categories || []) cats[c.kind + ":" + c.code] = c;
    GW.refs = { depts, streets, cats, deptList: d.departments || [] };
    return GW.refs;
  };
  const zh = () => GW.lang === "zh";
  GW.deptName = (id) => {
    const d = GW.refs && GW.refs.depts[id];
    if (!d) return id || GW.t("none");
    return zh() ? d.name_zh || d.name : d.name || d.name_zh;
  };
  GW.streetName = (code, fallback) => {
    const s = GW.refs && GW.refs.streets[code];
    if (!s) return fallback || code || GW.t("none");
    return zh() ? s.name_zh || s.name : s.name || s.name_zh;
  };
  GW.categoryName = (c) => {
    const cat = GW.refs && GW.refs.cats[(c.facility_id ? "part:" : "event:") + c.category];
    if (cat) return zh() ? cat.name : cat.name_en || cat.name;
    return c.category_name || c.category;
  };
  GW.caseLabel = (c) => c.category + " " + GW.categoryName(c);

  // ---- formatting ----
  const pad = (n) => String(n).padStart(2, "0");
  GW.fmtTime = (iso) => {
    if (!iso) return GW.t("none");
    const d = new Date(iso);
    if (isNaN(d) || d.getFullYear() < 1971) return GW.t("none");
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  };
  GW.dur = (ms) => {
    ms = Math.abs(ms);
    const s = Math.floor(ms / 1000), d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    const u = (k) => (zh() ? GW.t(k) : GW.t(k));
    if (d > 0) return d + u("t.d") + " " + h + u("t.h");
    if (h > 0) return h + u("t.h") + " " + m + u("t.m");
    if (m > 0) return m + u("t.m") + " " + (s % 60) + u("t.s");
    return (s % 60) + u("t.s");
  };
  GW.ago = (iso) => {
    if (!iso) return GW.t("none");
    const ms = Date.now() - new Date(iso).getTime();
    return zh() ? GW.dur(ms) + GW.t("t.ago") : GW.dur(ms) + " " + GW.t("t.ago");
  };
  // timeLeft returns {text, overdue, ms} for a deadline.
  GW.timeLeft = (iso) => {
    if (!iso) return { text: GW.t("none"), overdue: false, ms: Infinity };
    const ms = new Date(iso).getTime() - Date.now();
    if (ms < 0) return { text: (zh() ? GW.t("t.over") + " " : "") + GW.dur(ms) + (zh() ? "" : " " + GW.t("t.over")), overdue: true, ms };
    return { text: (zh() ? GW.t("t.left") + " " : "") + GW.dur(ms) + (zh() ? "" : " " + GW.t("t.left")), overdue: false, ms };
  };
  GW.STATUS_COLORS = {
    reported: "#f59e0b", dispatched: "#2563eb", fixed: "#7c3aed", returned: "#ea580c",
    on_hold: "#64748b", closed: "#16a34a", rejected: "#9ca3af", voided: "#6b7280",
  };
  GW.OPEN = ["reported", "dispatched", "fixed", "returned", "on_hold"];
  GW.statusBadge = (s) => '<span class="badge st-' + GW.esc(s) + '">' + GW.esc(GW.t("status." + s)) + "</span>";
  GW.actorLabel = (a) => {
    const [role, name] = String(a || "").split(":");
    if (!name) return GW.esc(a);
    const r = GW.i18n["who." + role];
    return GW.esc(name) + (r ? ' <small class="muted">' + GW.esc(r) + "</small>" : "");
  };
  GW.detLabel = (s) => (!s ? GW.t("none") : GW.i18n["det." + s] ? GW.t("det." + s) : s);
  // occupationFacts: the zone, its rule and how much of it is covered, and what the camera's object
  // detector saw there, for an occupation case ("" for any other); fact(key, html) makes one row.
  GW.occupationFacts = (o, fact) => !o ? "" :
    fact("f.zone", GW.esc(o.zone + " · " + (GW.i18n["rule." + o.rule] ? GW.t("rule." + o.rule) : o.rule) + " · " + Math.round((o.share || 0) * 100) + "%")) +
    (o.object ? fact("f.object", GW.esc(o.object + " · " + Math.round(o.object_score * 100) + "%")) : "");
  GW.reasonLabel = (code) => (GW.i18n["reason." + code] ? GW.t("reason." + code) : code);

  // ---- toast ----
  GW.toast = (msg, kind) => {
    const t = $("#toast");
    if (!t) return;
    const el = document.createElement("div");
    el.className = "toast " + (kind || "ok");
    el.textContent = msg;
    t.appendChild(el);
    setTimeout(() => el.remove(), 3500);
  };

  // ---- dialog: fields are HTML; submit runs fn(form) and closes on success ----
  GW.dialog = (title, bodyHTML, fn) => {
    const dlg = $("#dlg");
    if (dlg.open) dlg.close();
    $("#dlg-title").textContent = title;
    $("#dlg-body").innerHTML = bodyHTML;
    $("#dlg-error").textContent = "";
    const form = $("#dlg-form");
    const ok = $("#dlg-ok");
    ok.disabled = false;
    form.onsubmit = async (ev) => {
      ev.preventDefault();
      ok.disabled = true;
      $("#dlg-error").textContent = "";
      try {
        await fn(form);
        dlg.close();
      } catch (e) {
        $("#dlg-error").textContent = GW.t("err.action") + ": " + e.message;
      } finally {
        ok.disabled = false;
      }
    };
    $("#dlg-cancel").onclick = () => dlg.close();
    dlg.showModal();
    const first = dlg.querySelector("input, select, textarea");
    if (first) first.focus();
  };

  // ---- evidence upload: sha256 in the browser, PUT, return the name ----
  GW.sha256Hex = async (buf) => {
    if (window.crypto && crypto.subtle) {
      const h = await crypto.subtle.digest("SHA-256", buf);
      return Array.from(new Uint8Array(h), (b) => b.toString(16).padStart(2, "0")).join("");
    }
    return sha256Fallback(new Uint8Array(buf)); // crypto.subtle exists only on https or localhost
  };
  GW.uploadEvidence = async (file) => {
    const buf = await file.arrayBuffer();
    const sha = await GW.sha256Hex(buf);
    await GW.api("PUT", "/api/v1/evidence/" + sha, buf, true);
    return sha;
  };

  // A plain SHA-256 (FIPS 180-4) for pages served over plain http to another host.
  function sha256Fallback(data) {
    const K = new Uint32Array([
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
      0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
      0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
      0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
      0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
      0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]);
    const H = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    const len = data.length, total = Math.ceil((len + 9) / 64) * 64;
    const msg = new Uint8Array(total);
    msg.set(data);
    msg[len] = 0x80;
    const dv = new DataView(msg.buffer);
    dv.setUint32(total - 8, Math.floor(len / 0x20000000));
    dv.setUint32(total - 4, (len << 3) >>> 0);
    const W = new Uint32Array(64);
    const rotr = (x, n) => (x >>> n) | (x << (32 - n));
    for (let off = 0; off < total; off += 64) {
      for (let i = 0; i < 16; i++) W[i] = dv.getUint32(off + i * 4);
      for (let i = 16; i < 64; i++) {
        const s0 = rotr(W[i - 15], 7) ^ rotr(W[i - 15], 18) ^ (W[i - 15] >>> 3);
        const s1 = rotr(W[i - 2], 17) ^ rotr(W[i - 2], 19) ^ (W[i - 2] >>> 10);
        W[i] = (W[i - 16] + s0 + W[i - 7] + s1) >>> 0;
      }
      let [a, b, c, d, e, f, g, h] = H;
      for (let i = 0; i < 64; i++) {
        const S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) >>> 0;
        const S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
        h = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
      }
      H[0] += a; H[1] += b; H[2] += c; H[3] += d; H[4] += e; H[5] += f; H[6] += g; H[7] += h;
    }
    return Array.from(H, (x) => x.toString(16).padStart(8, "0")).join("");
  }
  GW._sha256Fallback = sha256Fallback;

  // ---- live updates: one EventSource per page; handlers per event name ----
  const handlers = {};
  GW.onLive = (event, fn) => { (handlers[event] = handlers[event] || []).push(fn); };
  GW.lastLive = {};
  function connect() {
    if (!window.EventSource) return;
    const es = new EventSource("/api/v1/events");
    const live = $("#live");
    const mark = (on) => {
      if (!live) return;
      live.classList.toggle("on", on);
      live.querySelector("span").textContent = GW.t(on ? "live.on" : "live.off");
    };
    es.onopen = () => mark(true);
    es.onerror = () => mark(false);
    for (const name of ["cases", "devices"]) {
      es.addEventListener(name, (ev) => {
        mark(true);
        let data = {};
        try { data = JSON.parse(ev.data); } catch (e) { /* keep {} */ }
        GW.lastLive[name] = data;
        for (const fn of handlers[name] || []) {
          try { fn(data); } catch (e) { console.error(e); }
        }
      });
    }
    GW._es = es;
  }
  // Browsers allow six connections per server over HTTP/1.1, and a page kept for "back" may keep its
  // stream open: close it when the page goes away, reopen it if the page comes back.
  window.addEventListener("pagehide", () => { if (GW._es) { GW._es.close(); GW._es = null; } });
  window.addEventListener("pageshow", (ev) => { if (ev.persisted && !GW._es) connect(); });
  // The queue count in the navigation follows the live "cases" events.
  GW.onLive("cases", (d) => {
    const p = $("#nav-queue-count");
    if (!p) return;
    p.hidden = !d.reported;
    p.textContent = d.reported || "";
  });

  document.addEventListener("DOMContentLoaded", async () => {
    connect();
    const who = await GW.whoami();
    const el = $("#who");
    if (el && who) {
      el.innerHTML = GW.esc(who.name) + ' <small>' + GW.esc(GW.t("who." + who.role)) + "</small>";
      el.classList.add("signed");
    }
  });
})();
