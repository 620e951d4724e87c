// fleet.js: every box and camera. A box is online when its retained status says so and its last
// heartbeat is newer than 3× the telemetry interval; a camera is online when its box is, it is
// connected and its grade is not "down".
"use strict";
(function () {
  const GW = window.GW, $ = GW.$;
  const history = {}; // device → "none" | "ok", asked once per page
  const historyData = {}; // device → the history JSON, redrawn after each re-render
  const snaps = {}; // device → its latest snapshots (newest first), asked once per page and after a command
  const snapNote = {}; // device → what the last snapshot command is doing

  const bytes = (n) => {
    if (!n && n !== 0) return "–";
    const u = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + " " + u[i];
  };
  const num = (x, d) => (x === undefined || x === null ? "–" : Number(x).toFixed(d || 0));

  async function load() {
    const [devices, cases] = await Promise.all([GW.get("/api/v1/devices"), GW.get("/api/v1/cases?limit=5000")]);
    const lastReport = {};
    // Open device-fault cases by incident key: "device:BOX" or "device:BOX/CAMERA" (the cloud's watchdog).
    const faults = {};
    for (const c of cases) {
      if (c.incident_key && c.incident_key.startsWith("device:") && GW.OPEN.includes(c.status)) faults[c.incident_key.slice(7)] = c;
    }
    const faultLink = (k) => {
      const c = faults[k];
      return c ? ' <a class="fault-link badge st-dispatched" data-fault-case="' + c.id + '" href="/ui/cases/' + c.id + '">' +
        GW.esc(GW.t("fleet.fault")) + " #" + c.id + "</a>" : "";
    };
    for (const c of cases) {
      if (!c.device) continue;
      for (const k of [c.device, c.device + "/" + c.camera]) {
        if (!lastReport[k] || new Date(c.updated_at) > new Date(lastReport[k])) lastReport[k] = c.updated_at;
      }
    }
    const timeout = 3 * GW.telemetryIntervalS * 1000;
    let boxesOn = 0, camsOn = 0, camsTotal = 0;
    $("#fleet-empty").hidden = devices.length > 0;
    $("#fleet").innerHTML = devices.map((d) => {
      const silentMs = Date.now() - new Date(d.last_seen).getTime();
      const stale = silentMs > timeout;
      const on = d.online && !stale;
      if (on) boxesOn++;
      const t = d.telemetry;
      const why = !d.online ? GW.t("fleet.why_status") : stale ? GW.t("fleet.why_silent") + " " + GW.dur(silentMs) : "";
      const gap = d.max_seq > d.seq_contiguous;
      const cams = (t && t.cameras) || [];
      camsTotal += cams.length;
      const rows = cams.map((c) => {
        const con = on && c.connected && c.grade !== "down";
        if (con) camsOn++;
        return '<tr data-camera="' + GW.esc(c.camera) + '" class="' + (con ? "" : "off") + '"><td><span class="state ' + (con ? "on" : "off") + '"><i></i>' +
          GW.esc(GW.t(con ? "fleet.online" : "fleet.offline")) + "</span></td><td><b>" + GW.esc(c.camera) + "</b>" + faultLink(d.device + "/" + c.camera) + '</td><td><span class="grade g-' + GW.esc(c.grade) + '">' +
          GW.esc(GW.t("grade." + c.grade)) + '</span></td><td class="num">' + num(c.fps, 1) + '</td><td class="num">' + num(c.bitrate_kbps) + ' kbps</td><td class="num">' +
          num(c.keyframe_interval_s, 1) + ' s</td><td class="num">' + c.reconnects + '</td><td class="num">' + c.dropped + '</td><td class="num">' + num(c.decode_ms, 1) + " / " +
          num(c.analysis_ms, 1) + " ms</td><td>" + GW.esc(GW.ago(lastReport[d.device + "/" + c.camera])) + "</td></tr>";
      }).join("");
      return '<section class="panel box ' + (on ? "" : "off") + '" data-device="' + GW.esc(d.device) + '" data-online="' + on + '">' +
        '<div class="box-head"><span class="state big ' + (on ? "on" : "off") + '"><i></i>' + GW.esc(GW.t(on ? "fleet.online" : "fleet.offline")) + "</span>" +
        "<h2>" + GW.esc(d.device) + "</h2>" + faultLink(d.device) +
        ' <button class="btn small" data-snap="' + GW.esc(d.device) + '">' + GW.esc(GW.t("fleet.snapnow")) + "</button>" + (why ? '<span class="muted">' + GW.esc(why) + "</span>" : "") + '<span class="spacer"></span>' +
        '<span class="muted">' + GW.esc(GW.t("fleet.software")) + ": " + GW.esc(d.software || "–") + " · cfg " + GW.esc(d.config_version || "–") + "</span></div>" +
        '<div class="box-kpis">' +
        kv("fleet.lastseen", GW.ago(d.last_seen), stale ? "bad" : "") +
        kv("fleet.seq", d.max_seq + " / " + d.seq_contiguous + (gap ? " ⚠ " + GW.t("fleet.seqgap") : ""), gap ? "warn" : "") +
        (t ? kv("fleet.outbox", String(t.outbox_depth), t.outbox_depth > 100 ? "warn" : "") + kv("fleet.dropped", String(t.outbox_dropped), t.outbox_dropped ? "bad" : "") +
          kv("fleet.evpend", String(t.evidence_pending)) + kv("fleet.disk", bytes(t.disk_free_bytes), t.disk_free_bytes < 1 << 30 ? "bad" : "") +
          kv("fleet.cpu", t.cpu_temp_c ? num(t.cpu_temp_c, 1) + " °C" : "–", t.cpu_temp_c > 80 ? "bad" : "") + kv("fleet.uptime", GW.dur(t.uptime_s * 1000))
          : kv("fleet.outbox", GW.t("fleet.notel"))) +
        kv("fleet.lastrep", GW.ago(lastReport[d.device])) + "</div>" +
        snapshotsHTML(d.device) +
        '<table class="grid small cams"><thead><tr><th>' + [GW.t("f.status"), GW.t("map.cameras"), GW.t("fleet.grade"), GW.t("fleet.fps"), GW.t("fleet.bitrate"), GW.t("fleet.gop"),
          GW.t("fleet.reconn"), GW.t("fleet.dropped"), GW.t("fleet.decode"), GW.t("fleet.lastrep")].map(GW.esc).join("</th><th>") + "</th></tr></thead><tbody>" + rows + "</tbody></table>" +
        '<div class="history" data-history="' + GW.esc(d.device) + '"><b>' + GW.esc(GW.t("fleet.history")) + '</b> <span class="muted">' +
        GW.esc(history[d.device] === "ok" ? "" : GW.t("fleet.noinflux")) + "</span></div></section>";
    }).join("");
    $("#boxes-online").textContent = boxesOn;
    $("#boxes-total").textContent = devices.length;
    $("#cams-online").textContent = camsOn;
    $("#cams-total").textContent = camsTotal;
    for (const d of devices) {
      if (!snaps[d.device]) askSnapshots(d.device);
      askHistory(d.device);
      const box = document.querySelector('[data-history="' + CSS.escape(d.device) + '"]');
      if (box && historyData[d.device]) drawHistory(box, historyData[d.device]); // the page was re-rendered
    }
    document.body.dataset.ready = "1";
  }
  const kv = (k, v, cls) => '<div class="kv ' + (cls || "") + '"><span>' + GW.esc(GW.t(k)) + "</span><b>" + GW.esc(v) + "</b></div>";

  // The latest snapshot of each camera, as thumbnails linking to the full picture.
  function snapshotsHTML(device) {
    const latest = {};
    for (const p of snaps[device] || []) if (!latest[p.camera]) latest[p.camera] = p;
    const figs = Object.values(latest).map((p) => '<a class="snap" data-snap-camera="' + GW.esc(p.camera) + '" href="' + GW.esc(p.url) + '" target="_blank"><img src="' +
      GW.esc(p.url) + '" alt=""><small>' + GW.esc(p.camera + " · " + GW.fmtTime(p.observed_at)) + "</small></a>").join("");
    const note = snapNote[device] ? '<span class="muted">' + GW.esc(snapNote[device]) + "</span>" : "";
    return figs || note ? '<div class="snaps" data-snaps="' + GW.esc(device) + '">' + figs + note + "</div>" : "";
  }

  async function askSnapshots(device) {
    snaps[device] = snaps[device] || [];
    try { snaps[device] = await GW.get("/api/v1/devices/" + encodeURIComponent(device) + "/snapshots"); } catch (e) { /* none yet */ }
  }

  // snapshotNow asks the box for a fresh picture of every camera and shows it when it arrives (the box
  // decodes its next keyframe and uploads it: a few seconds).
  async function snapshotNow(device) {
    const before = (snaps[device][0] || {}).seq || 0;
    try {
      await GW.post("/api/v1/devices/" + encodeURIComponent(device) + "/commands", { kind: "snapshot" });
    } catch (e) {
      snapNote[device] = e.message;
      return load();
    }
    snapNote[device] = GW.t("fleet.snapwait");
    await load();
    for (let i = 0; i < 30; i++) {
      await new Promise((r) => setTimeout(r, 2000));
      await askSnapshots(device);
      if (((snaps[device][0] || {}).seq || 0) > before) { snapNote[device] = ""; return load(); }
    }
    snapNote[device] = GW.t("fleet.snaplate");
    load();
  }

  // The history endpoint arrives with InfluxDB; until it answers, the placeholder stays.
  async function askHistory(device) {
    if (history[device]) return;
    history[device] = "none";
    try {
      const h = await GW.get("/api/v1/devices/" + encodeURIComponent(device) + "/history");
      history[device] = "ok";
      historyData[device] = h;
      const box = document.querySelector('[data-history="' + CSS.escape(device) + '"]');
      if (!box) return;
      box.querySelector(".muted").textContent = "";
      drawHistory(box, h);
    } catch (e) { /* 503 without InfluxDB: the placeholder says so */ }
  }

  // fps per camera and the outbox depth over the history window (ECharts).
  function drawHistory(box, h) {
    if (!window.echarts) return;
    const el = document.createElement("div");
    el.className = "history-chart";
    el.style.height = "160px";
    box.appendChild(el);
    const series = (h.cameras || []).map((c) => ({ name: c.camera + " fps", type: "line", showSymbol: false,
      data: (c.fps || []).map((p) => [p.t, p.v]) }));
    if (h.box && h.box.outbox_depth) {
      series.push({ name: "outbox", type: "line", yAxisIndex: 1, showSymbol: false, data: h.box.outbox_depth.map((p) => [p.t, p.v]) });
    }
    echarts.init(el).setOption({ animation: false, tooltip: { trigger: "axis" }, legend: { top: 0 },
      grid: { left: 40, right: 40, top: 28, bottom: 24 }, xAxis: { type: "time" },
      yAxis: [{ type: "value", name: "fps" }, { type: "value", name: "outbox" }], series });
  }

  document.addEventListener("DOMContentLoaded", async () => {
    $("#fleet-rule").textContent = GW.t("fleet.rule") + " (" + 3 * GW.telemetryIntervalS + " s)";
    await load();
    $("#fleet").addEventListener("click", (ev) => {
      const b = ev.target.closest("[data-snap]");
      if (b) snapshotNow(b.dataset.snap);
    });
    GW.onLive("devices", load);
    GW.onLive("cases", load);
    setInterval(load, 5000); // heartbeats time out without any event
  });
})();
