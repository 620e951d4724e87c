// case.js: one case: facts, evidence (the snapshot and every photo in its log), tasks, the timeline
// from the append-only log, and a small map with its grid cell.
"use strict";
(function () {
  const GW = window.GW, $ = GW.$;
  const id = GW.caseId;
  let miniMap = null;

  const fact = (k, v) => "<dt>" + GW.esc(GW.t(k)) + "</dt><dd>" + v + "</dd>";
  const img = (url, caption) => '<figure class="ev"><a href="' + GW.esc(url) + '" target="_blank"><img src="' + GW.esc(url) + '" alt="' + GW.esc(caption) +
    '" onerror="this.parentNode.replaceWith(Object.assign(document.createElement(\'div\'),{className:\'ev-missing\',textContent:GW.t(\'f.noimage\')}))"></a><figcaption>' + GW.esc(caption) + "</figcaption></figure>";

  async function load() {
    let c;
    try { c = await GW.get("/api/v1/cases/" + id); } catch (e) {
      if (e.status === 404) { $("#case-missing").hidden = false; return; }
      throw e;
    }
    $("#case-title").textContent = "#" + c.id + " · " + GW.caseLabel(c);
    $("#case-status").innerHTML = GW.statusBadge(c.status) + (c.urgent ? ' <span class="badge urgent">' + GW.esc(GW.t("f.urgent")) + "</span>" : "");
    const tl = GW.timeLeft(c.deadline);
    const open = GW.OPEN.includes(c.status);
    $("#case-facts").innerHTML =
      fact("f.category", GW.esc(GW.caseLabel(c))) +
      fact("f.source", GW.esc(c.source === "camera" ? GW.t("map.cameras") : GW.i18n["who." + c.source] ? GW.t("who." + c.source) : c.source || "")) +
      fact("f.facility", "<code>" + GW.esc(c.facility_id || GW.t("none")) + "</code>") +
      fact("f.owner", GW.esc(GW.deptName(c.owner_department))) +
      fact("f.street", GW.esc(GW.streetName(c.street, c.street_name))) +
      fact("f.cell", "<code>" + GW.esc(c.grid_cell || GW.t("none")) + "</code> · " + GW.esc(GW.t("f.area")) + " " + GW.esc(c.area_class || "–")) +
      fact("f.camera", GW.esc((c.device || "–") + " / " + (c.camera || "–"))) +
      fact("f.detection", GW.esc(GW.detLabel(c.detection_state)) + " · " + Math.round((c.confidence || 0) * 100) + "%") +
      GW.occupationFacts(c.occupation, fact) +
      fact("f.found", GW.esc(GW.fmtTime(c.created_at))) +
      fact("f.deadline", GW.esc(GW.fmtTime(c.deadline)) + (c.deadline && open ? ' <span class="' + (tl.overdue ? "bad" : "muted") + '">' + GW.esc(tl.text) + "</span>" : "")) +
      (c.restored_at ? fact("f.restored", GW.esc(GW.fmtTime(c.restored_at))) : "") +
      fact("f.reworks", String(c.reworks || 0)) +
      fact("f.location", GW.esc((c.lat || 0).toFixed(5) + ", " + (c.lon || 0).toFixed(5)) + ' · <a href="/ui/map?lat=' + c.lat + "&lon=" + c.lon + '&z=17">' + GW.esc(GW.t("page.map")) + "</a>");

    // Evidence: the case's snapshot, then every photo the log and the tasks refer to, once each.
    const seen = new Set(), ev = [];
    const add = (sha, caption) => { if (sha && !seen.has(sha)) { seen.add(sha); ev.push(img("/api/v1/evidence/" + sha, caption)); } };
    if (c.evidence_url) { seen.add(c.evidence_sha256); ev.push(img(c.evidence_url, GW.t("f.snapshot"))); }
    if (c.annotated_url) ev.push(img(c.annotated_url, GW.t("f.annotated")));
    for (const e of c.evidence || []) if (e.kind === "before" || e.kind === "after") add(e.sha256, GW.t("f." + e.kind));
    for (const e of c.events || []) add(e.evidence, GW.t("act." + e.action) + " · " + GW.fmtTime(e.at));
    for (const k of c.tasks || []) add(k.photo, GW.t("role." + k.role) + " · " + GW.t("f.photo"));
    $("#case-evidence").innerHTML = ev.join("") || '<div class="ev-missing">' + GW.esc(GW.t("f.nosnapshot")) + "</div>";

    $("#case-tasks tbody").innerHTML = (c.tasks || []).map((k) => {
      const t = GW.timeLeft(k.deadline);
      return "<tr><td>#" + k.id + " " + GW.esc(GW.t("role." + k.role)) + "</td><td>" + GW.esc(GW.deptName(k.dept)) + "</td><td>" + GW.esc(GW.t("task." + k.status)) +
        (k.overdue ? ' <span class="badge bad">' + GW.esc(GW.t("tasks.overdue")) + "</span>" : "") + (k.extension_request ? ' <span class="badge warn">' + GW.esc(GW.t("tasks.ext")) + "</span>" : "") +
        "</td><td>" + GW.esc(GW.fmtTime(k.deadline)) + (k.status === "open" ? '<br><small class="' + (t.overdue ? "bad" : "muted") + '">' + GW.esc(t.text) + "</small>" : "") +
        "</td><td>" + GW.esc(k.note || "") + "</td></tr>";
    }).join("") || '<tr><td colspan="5" class="muted">' + GW.esc(GW.t("none")) + "</td></tr>";

    $("#timeline").innerHTML = (c.events || []).slice().reverse().map((e) =>
      '<li class="tl tl-' + GW.esc(e.action) + '"><div class="tl-when">' + GW.esc(GW.fmtTime(e.at)) + "</div>" +
      '<div class="tl-what"><b>' + GW.esc(GW.t("act." + e.action)) + "</b> · " + GW.actorLabel(e.actor) +
      (e.note ? '<div class="tl-note">' + GW.esc(GW.reasonLabel(e.note)) + "</div>" : "") +
      (e.evidence ? '<div class="tl-ev"><a href="/api/v1/evidence/' + GW.esc(e.evidence) + '" target="_blank"><span class="ev-link">' + GW.esc(GW.t("f.evidence")) + "</span>" + GW.esc(e.evidence.slice(0, 12)) + "…</a></div>" : "") +
      "</div></li>").join("");

    actions(c);
    drawMap(c);
    document.body.dataset.status = c.status;
    document.body.dataset.ready = "1";
  }

  // Actions that belong on the case itself: the verifier's decision and the supervisor's check.
  async function actions(c) {
    const who = await GW.whoami();
    const el = $("#case-actions");
    el.innerHTML = "";
    if (!who) return;
    const btn = (label, cls, fn) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "btn " + cls;
      b.textContent = GW.t(label);
      b.onclick = fn;
      el.appendChild(b);
    };
    const field = (label, html) => '<label class="field"><span>' + GW.esc(GW.t(label)) + "</span>" + html + "</label>";
    const is = (...roles) => who.role === "admin" || roles.includes(who.role);
    if (c.status === "reported" && is("verifier")) {
      btn("btn.accept", "primary", async () => {
        try { await GW.post("/api/v1/cases/" + c.id + "/verify", { accept: true }); load(); } catch (e) { GW.toast(e.message, "bad"); }
      });
      btn("btn.reject", "danger", () => GW.dialog(GW.t("btn.reject") + " #" + c.id,
        field("f.reason", "<select name=reason>" + GW.reasons.map((r) => '<option value="' + r + '">' + GW.esc(GW.reasonLabel(r)) + "</option>").join("") + "</select>"),
        async (f) => { await GW.post("/api/v1/cases/" + c.id + "/verify", { accept: false, reason: f.reason.value }); load(); }));
    }
    if (c.status === "fixed" && is("supervisor")) {
      const check = (pass) => () => GW.dialog(GW.t(pass ? "btn.checkpass" : "btn.checkfail") + " #" + c.id,
        field("f.checkphoto", '<input type="file" name="photo" accept="image/*" required>') + field("f.note", '<textarea name="note" rows="2"></textarea>'),
        async (f) => {
          if (!f.photo.files[0]) throw new Error(GW.t("tasks.needphoto"));
          const sha = await GW.uploadEvidence(f.photo.files[0]);
          await GW.post("/api/v1/cases/" + c.id + "/check", { pass, note: f.note.value, photo: sha });
          load();
        });
      btn("btn.checkpass", "primary", check(true));
      btn("btn.checkfail", "danger", check(false));
    }
  }

  async function drawMap(c) {
    if (!window.L || !(c.lat || c.lon)) return;
    if (!miniMap) {
      miniMap = L.map("case-map", { attributionControl: false, zoomControl: true, preferCanvas: true }).setView([c.lat, c.lon], 16);
      const tiles = localStorage.getItem("gw_tiles");
      if (tiles) L.tileLayer(tiles, { maxZoom: 19 }).addTo(miniMap);
      const d = 0.004;
      const fc = await GW.get("/api/v1/map/cells?bbox=" + [c.lon - d, c.lat - d, c.lon + d, c.lat + d].map((x) => x.toFixed(5)).join(","));
      L.geoJSON(fc, {
        style: (f) => f.properties.code === c.grid_cell
          ? { color: "#0f3057", weight: 2.5, fillColor: "#3b82f6", fillOpacity: 0.15 }
          : { color: "#94a3b8", weight: 0.7, fillOpacity: 0 },
        onEachFeature: (f, l) => l.bindTooltip(f.properties.code),
      }).addTo(miniMap);
    }
    L.circleMarker([c.lat, c.lon], { radius: 9, color: "#fff", weight: 2, fillColor: GW.STATUS_COLORS[c.status], fillOpacity: 1 }).addTo(miniMap);
  }

  document.addEventListener("DOMContentLoaded", async () => {
    await GW.loadRefs().catch(() => null);
    await load();
    GW.onLive("cases", () => load());
  });
})();
