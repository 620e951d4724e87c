// queue.js: the verifier's queue. One reported case at a time, oldest urgent first; the next case's
// details and images are fetched while the current one is on screen, so deciding is instant.
// Keys: A or Enter accept; R then 1-5 reject with a reason code; S skip; Esc cancel.
"use strict";
(function () {
  const GW = window.GW, $ = GW.$;
  let queue = [];          // reported cases, in order
  let current = null;      // case detail on screen
  const skipped = new Set();
  const details = new Map(); // id → Promise of the case detail
  let rejecting = false, busy = false, canVerify = false;

  const detail = (id) => {
    if (!details.has(id)) {
      const p = GW.get("/api/v1/cases/" + id).then((d) => { preloadImages(d); return d; });
      p.catch(() => details.delete(id));
      details.set(id, p);
    }
    return details.get(id);
  };
  // An imagery change shows the same place at both dates; a camera's detection its snapshot,
  // annotated frame and the cover's reference look.
  const images = (d) => {
    const out = [];
    const before = (d.evidence || []).find((e) => e.kind === "before");
    if (before) {
      out.push({ kind: "f.before", url: "/api/v1/evidence/" + before.sha256 });
      const after = (d.evidence || []).find((e) => e.kind === "after");
      if (after) out.push({ kind: "f.after", url: "/api/v1/evidence/" + after.sha256 });
      return out;
    }
    if (d.evidence_url) out.push({ kind: "f.snapshot", url: d.evidence_url });
    if (d.annotated_url) out.push({ kind: "f.annotated", url: d.annotated_url });
    if (d.reference_url) out.push({ kind: "f.reference", url: d.reference_url });
    return out;
  };
  const preloadImages = (d) => { for (const im of images(d)) { const i = new Image(); i.src = im.url; } };

  async function load() {
    const all = await GW.get("/api/v1/cases?limit=5000");
    const reported = all.filter((c) => c.status === "reported");
    reported.sort((a, b) => (b.urgent - a.urgent) || (new Date(a.created_at) - new Date(b.created_at)) || (a.id - b.id));
    queue = reported.filter((c) => !skipped.has(c.id)).concat(reported.filter((c) => skipped.has(c.id)));
    $("#queue-left").textContent = queue.length;
    if (current && queue.some((c) => c.id === current.id)) {
      preloadNext();
      return; // keep the case on screen
    }
    await showNext();
  }

  function nextAfter(id) {
    const rest = queue.filter((c) => c.id !== id);
    return rest.length ? rest[0] : null;
  }

  async function showNext() {
    const first = queue.length ? queue[0] : null;
    if (!first) {
      current = null;
      $("#queue-item").hidden = true;
      $("#queue-empty").hidden = false;
      document.body.dataset.queueCase = "";
      return;
    }
    const d = await detail(first.id);
    render(d);
    preloadNext();
  }

  function preloadNext() {
    if (!current) return;
    const n = nextAfter(current.id);
    if (n) detail(n.id);
  }

  function fact(k, v) { return "<dt>" + GW.esc(GW.t(k)) + "</dt><dd>" + v + "</dd>"; }

  function render(d) {
    current = d;
    rejecting = false;
    $("#reason-pick").hidden = true;
    $("#queue-empty").hidden = true;
    $("#queue-item").hidden = false;
    $("#queue-item").dataset.caseId = d.id;
    document.body.dataset.queueCase = d.id;
    const ims = images(d);
    let ev = ims.map((im) => '<figure class="ev"><img src="' + GW.esc(im.url) + '" alt="' + GW.esc(GW.t(im.kind)) +
      '" onerror="this.replaceWith(Object.assign(document.createElement(\'div\'),{className:\'ev-missing\',textContent:GW.t(\'f.noimage\')}))"><figcaption>' + GW.esc(GW.t(im.kind)) + "</figcaption></figure>").join("");
    if (!ims.length) ev = '<div class="ev-missing big">' + GW.esc(GW.t("f.nosnapshot")) + "</div>";
    if (!d.reference_url && d.facility_id && d.source === "camera") ev += '<figure class="ev ref-missing"><div class="ev-missing">' + GW.esc(GW.t("f.noreference")) + "</div><figcaption>" + GW.esc(GW.t("f.reference")) + "</figcaption></figure>";
    $("#q-evidence").innerHTML = ev;
    const conf = Math.round((d.confidence || 0) * 100);
    $("#q-facts").innerHTML =
      '<div class="q-title"><a href="/ui/cases/' + d.id + '">#' + d.id + "</a> " + GW.esc(GW.caseLabel(d)) +
      (d.urgent ? ' <span class="badge urgent">' + GW.esc(GW.t("f.urgent")) + "</span>" : "") + "</div>" +
      fact("f.detection", GW.esc(GW.detLabel(d.detection_state))) +
      GW.occupationFacts(d.occupation, fact) +
      fact("f.confidence", '<span class="conf"><i style="width:' + conf + '%"></i></span> ' + conf + "%") +
      fact("f.facility", "<code>" + GW.esc(d.facility_id || GW.t("none")) + "</code>") +
      fact("f.owner", GW.esc(GW.deptName(d.owner_department))) +
      fact("f.cell", "<code>" + GW.esc(d.grid_cell || GW.t("none")) + "</code> · " + GW.esc(GW.t("f.area")) + " " + GW.esc(d.area_class || "–")) +
      fact("f.street", GW.esc(GW.streetName(d.street, d.street_name))) +
      fact("f.camera", GW.esc((d.device || "–") + " / " + (d.camera || "–"))) +
      fact("f.found", GW.esc(GW.fmtTime(d.created_at)) + ' <small class="muted">' + GW.esc(GW.ago(d.created_at)) + "</small>") +
      fact("f.location", GW.esc((d.lat || 0).toFixed(5) + ", " + (d.lon || 0).toFixed(5)));
    for (const b of ["#btn-accept", "#btn-reject"]) $(b).disabled = !canVerify;
  }

  async function decide(accept, reason) {
    if (!current || busy) return;
    if (!canVerify) { $("#queue-login").hidden = false; return; }
    busy = true;
    const id = current.id;
    try {
      await GW.post("/api/v1/cases/" + id + "/verify", accept ? { accept: true } : { accept: false, reason });
      GW.toast("#" + id + " " + GW.t(accept ? "queue.accepted" : "queue.rejected") + (accept ? "" : ": " + GW.reasonLabel(reason)));
      queue = queue.filter((c) => c.id !== id);
      details.delete(id);
      skipped.delete(id);
      $("#queue-left").textContent = queue.length;
      current = null;
      await showNext();
      loadStats();
    } catch (e) {
      GW.toast(GW.t("err.action") + ": " + e.message, "bad");
      if (e.status === 409) { current = null; await load(); }
    } finally {
      busy = false;
    }
  }

  async function skip() {
    if (!current || queue.length < 2) return;
    skipped.add(current.id);
    const c = queue.shift();
    queue.push(c);
    current = null;
    await showNext();
  }

  function startReject() {
    if (!current || !canVerify) return;
    rejecting = true;
    $("#reason-pick").hidden = false;
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.target.closest && ev.target.closest("input, textarea, select, dialog")) return;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const k = ev.key.toLowerCase();
    if (rejecting) {
      if (k >= "1" && k <= String(GW.reasons.length)) { ev.preventDefault(); rejecting = false; decide(false, GW.reasons[Number(k) - 1]); }
      else if (k === "escape") { rejecting = false; $("#reason-pick").hidden = true; }
      return;
    }
    if (k === "a" || k === "enter") { ev.preventDefault(); decide(true); }
    else if (k === "r") { ev.preventDefault(); startReject(); }
    else if (k === "s") { ev.preventDefault(); skip(); }
  });

  async function loadStats() {
    let rows;
    try { rows = await GW.get("/api/v1/stats/cameras"); } catch (e) { return; }
    const body = $("#cam-stats tbody");
    body.innerHTML = rows.map((r) => {
      const prec = r.accepted + r.rejected ? Math.round(r.precision * 100) + "%" : "–";
      const low = r.accepted + r.rejected >= 5 && r.precision < 0.7;
      return '<tr data-cam="' + GW.esc(r.device + "/" + r.camera) + '"><td><code>' + GW.esc(r.device) + "</code> / " + GW.esc(r.camera) +
        '</td><td class="num ok">' + r.accepted + '</td><td class="num bad">' + r.rejected + '</td><td class="num">' + r.pending +
        '</td><td class="num' + (low ? " bad" : "") + '">' + prec + "</td></tr>";
    }).join("") || '<tr><td colspan="5" class="muted">' + GW.esc(GW.t("none")) + "</td></tr>";
    const reasons = {};
    for (const r of rows) for (const [k, n] of Object.entries(r.reasons || {})) reasons[k] = (reasons[k] || 0) + n;
    $("#cam-reasons").innerHTML = Object.entries(reasons).sort((a, b) => b[1] - a[1])
      .map(([k, n]) => '<span class="chip">' + GW.esc(GW.reasonLabel(k)) + " <b>" + n + "</b></span>").join("");
  }

  document.addEventListener("DOMContentLoaded", async () => {
    $("#reason-list").innerHTML = GW.reasons.map((r, i) => '<li><button type="button" class="btn small reason" data-reason="' + r + '"><kbd>' + (i + 1) + "</kbd> " + GW.esc(GW.reasonLabel(r)) + "</button></li>").join("");
    $("#reason-list").addEventListener("click", (ev) => {
      const b = ev.target.closest("button.reason");
      if (b) { rejecting = false; decide(false, b.dataset.reason); }
    });
    $("#btn-accept").addEventListener("click", () => decide(true));
    $("#btn-reject").addEventListener("click", startReject);
    $("#btn-skip").addEventListener("click", skip);
    const who = await GW.whoami();
    canVerify = !!who && (who.role === "verifier" || who.role === "admin");
    $("#queue-login").hidden = canVerify;
    await GW.loadRefs().catch(() => null);
    await load();
    loadStats();
    GW.onLive("cases", () => { if (!busy) { load(); loadStats(); } });
    document.body.dataset.ready = "1";
  });
})();
