// map.js: the district map with vector layers only (no online tiles): street boundaries at district
// zoom, grid cells from zoom 14, registered facilities from zoom 16 (both fetched for the view's
// bounding box), cameras, and cases coloured by status. An optional local tile URL draws beneath.
"use strict";
(function () {
  const GW = window.GW, $ = GW.$;
  const CELL_ZOOM = 14, FAC_ZOOM = 16;
  const AREA_FILL = { A: "#f59e0b", B: "#3b82f6", C: "#94a3b8" };
  const DEPT_COLORS = ["#0ea5e9", "#a855f7", "#f97316", "#14b8a6", "#e11d48", "#84cc16", "#6366f1", "#d946ef", "#78716c"];

  function legend() {
    const st = ["reported", "dispatched", "fixed", "returned", "on_hold", "closed"];
    $("#legend").innerHTML =
      st.map((s) => '<span class="lg"><i class="dot" style="background:' + GW.STATUS_COLORS[s] + '"></i>' + GW.esc(GW.t("status." + s)) + "</span>").join("") +
      '<span class="lg"><i class="cam on"></i>' + GW.esc(GW.t("map.cameras")) + " · " + GW.esc(GW.t("fleet.online")) + "</span>" +
      '<span class="lg"><i class="cam off"></i>' + GW.esc(GW.t("map.cameras")) + " · " + GW.esc(GW.t("fleet.offline")) + "</span>" +
      Object.entries(AREA_FILL).map(([k, c]) => '<span class="lg"><i class="sq" style="background:' + c + '55;border-color:' + c + '"></i>' + GW.esc(GW.t("f.area")) + " " + k + "</span>").join("");
  }

  document.addEventListener("DOMContentLoaded", async () => {
    legend();
    await GW.loadRefs().catch(() => null);
    const tileInput = $("#tile-url");
    tileInput.value = localStorage.getItem("gw_tiles") || "";
    $("#tile-save").addEventListener("click", () => { localStorage.setItem("gw_tiles", tileInput.value.trim()); location.reload(); });
    if (!window.L) {
      await listOnly();
      GW.onLive("cases", listOnly);
      return;
    }

    const map = L.map("map", { preferCanvas: true, attributionControl: false, zoomSnap: 0.5, minZoom: 10, maxZoom: 19 });
    window.GWMap = { map };
    const tiles = localStorage.getItem("gw_tiles");
    if (tiles) L.tileLayer(tiles, { maxZoom: 19 }).addTo(map);
    L.control.scale({ imperial: false }).addTo(map);

    const renderer = L.canvas({ padding: 0.3 });
    const streetLayer = L.layerGroup().addTo(map);
    const labelLayer = L.layerGroup().addTo(map);
    const cellLayer = L.layerGroup().addTo(map);
    const facLayer = L.layerGroup().addTo(map);
    const camLayer = L.layerGroup().addTo(map);
    const caseLayer = L.layerGroup().addTo(map);

    const streets = await GW.get("/api/v1/map/streets");
    const b = streets.bounds;
    const params = new URLSearchParams(location.search);
    if (params.get("lat") && params.get("lon")) map.setView([+params.get("lat"), +params.get("lon")], +(params.get("z") || 17));
    else map.fitBounds([[b[1], b[0]], [b[3], b[2]]], { padding: [10, 10] });
    L.geoJSON(streets, {
      renderer,
      style: (f) => f.properties.kind === "district" ? { color: "#0f3057", weight: 3, opacity: 0.9 } : { color: "#52637a", weight: 1.2, opacity: 0.8, dashArray: "4 3" },
      interactive: false,
    }).addTo(streetLayer);
    for (const f of streets.features) {
      if (f.properties.kind !== "street") continue;
      const name = GW.lang === "zh" ? f.properties.name_zh : f.properties.name.replace(/ (Subdistrict|Area)$/, "");
      L.marker([f.properties.label[1], f.properties.label[0]], { interactive: false, keyboard: false,
        icon: L.divIcon({ className: "street-label", html: GW.esc(name), iconSize: null }) }).addTo(labelLayer);
    }

    // Cells and facilities are fetched for a padded view and kept until the view leaves it.
    let cellBox = null, facBox = null;
    const inside = (outer, v) => outer && outer.contains(v);
    const bboxParam = (bb) => [bb.getWest(), bb.getSouth(), bb.getEast(), bb.getNorth()].map((x) => x.toFixed(5)).join(",");
    async function refreshGeo() {
      const z = map.getZoom(), view = map.getBounds();
      labelLayer.eachLayer((m) => m.getElement() && (m.getElement().style.display = z >= 11.5 && z < 16 ? "" : "none"));
      const showCells = $("#show-cells").checked && z >= CELL_ZOOM;
      $("#cells-note").textContent = $("#show-cells").checked && !showCells ? "(" + GW.t("map.zoomcells") + ")" : "";
      if (!showCells) { cellLayer.clearLayers(); cellBox = null; }
      else if (!inside(cellBox, view)) {
        const bb = view.pad(0.5);
        const fc = await GW.get("/api/v1/map/cells?bbox=" + bboxParam(bb));
        cellLayer.clearLayers();
        L.geoJSON(fc, {
          renderer,
          style: (f) => ({ color: "#64748b", weight: 0.6, opacity: 0.7, fillColor: AREA_FILL[f.properties.area_class] || "#94a3b8", fillOpacity: 0.08 }),
          onEachFeature: (f, l) => l.bindTooltip(f.properties.code + " · " + GW.streetName(f.properties.street) + " · " + GW.t("f.area") + " " + f.properties.area_class, { sticky: true }),
        }).addTo(cellLayer);
        cellBox = bb;
        $("#cells-note").textContent = "(" + fc.count + " " + GW.t("map.cellsloaded") + ")";
      }
      const showFac = $("#show-facilities").checked && z >= FAC_ZOOM;
      $("#fac-note").textContent = $("#show-facilities").checked && !showFac ? "(" + GW.t("map.zoomfac") + ")" : "";
      if (!showFac) { facLayer.clearLayers(); facBox = null; }
      else if (!inside(facBox, view)) {
        const bb = view.pad(0.5);
        const r = await GW.get("/api/v1/map/facilities?bbox=" + bboxParam(bb));
        facLayer.clearLayers();
        const depts = GW.refs ? GW.refs.deptList.map((d) => d.id) : [];
        for (const f of r.facilities) {
          const color = DEPT_COLORS[Math.max(0, depts.indexOf(f.owner_dept)) % DEPT_COLORS.length];
          L.circleMarker([f.lat, f.lon], { renderer, radius: 2.5, stroke: false, fillColor: color, fillOpacity: 0.55 })
            .bindTooltip(f.id + "<br>" + GW.esc(f.type_name) + "<br>" + GW.esc(GW.deptName(f.owner_dept))).addTo(facLayer);
        }
        facBox = bb;
      }
    }
    map.on("moveend", () => refreshGeo().catch((e) => console.error(e)));
    for (const id of ["#show-cells", "#show-facilities"]) $(id).addEventListener("change", () => { cellBox = facBox = null; refreshGeo(); });

    async function refreshCameras() {
      camLayer.clearLayers();
      if (!$("#show-cameras").checked) return;
      const [spots, devices] = await Promise.all([GW.get("/api/v1/map/cameras"), GW.get("/api/v1/devices")]);
      const timeout = 3 * GW.telemetryIntervalS * 1000;
      const online = {};
      for (const d of devices) online[d.device] = d.online && Date.now() - new Date(d.last_seen).getTime() <= timeout;
      for (const s of spots) {
        const on = !!online[s.device];
        L.marker([s.lat, s.lon], { icon: L.divIcon({ className: "cam-icon " + (on ? "on" : "off"), html: "<i></i>", iconSize: [18, 18] }), zIndexOffset: -100 })
          .bindTooltip(GW.esc(GW.t("map.cameras")) + " " + GW.esc(s.device + " / " + s.camera) + "<br>" + GW.esc(GW.t(on ? "fleet.online" : "fleet.offline")) + " · " + GW.esc(GW.t(s.registered ? "map.cameraplace" : "map.cameraspot")))
          .addTo(camLayer);
      }
    }
    $("#show-cameras").addEventListener("change", refreshCameras);

    async function refreshCases() {
      const cs = await GW.get("/api/v1/cases?limit=5000");
      const showClosed = $("#show-closed").checked;
      const shown = cs.filter((c) => (c.lat || c.lon) && (showClosed || GW.OPEN.includes(c.status)));
      caseLayer.clearLayers();
      for (const c of shown.slice().reverse()) {
        const m = L.circleMarker([c.lat, c.lon], { radius: 9, color: "#0b1f3a", weight: 2.5, fillColor: GW.STATUS_COLORS[c.status] || "#000", fillOpacity: 1, className: "case-marker" });
        m.bindTooltip("#" + c.id + " " + GW.esc(GW.caseLabel(c)) + "<br>" + GW.esc(GW.t("status." + c.status)) + " · " + GW.esc(GW.streetName(c.street, c.street_name)));
        m.on("click", () => { location.href = "/ui/cases/" + c.id; });
        m.addTo(caseLayer);
      }
      const open = cs.filter((c) => GW.OPEN.includes(c.status));
      $("#open-count").textContent = open.length;
      $("#case-list").innerHTML = open.slice(0, 200).map((c) =>
        '<li data-case-id="' + c.id + '" data-lat="' + c.lat + '" data-lon="' + c.lon + '"><i class="dot" style="background:' + GW.STATUS_COLORS[c.status] + '"></i>' +
        '<a href="/ui/cases/' + c.id + '">#' + c.id + "</a> " + GW.esc(GW.caseLabel(c)) + '<br><small class="muted">' + GW.esc(GW.t("status." + c.status)) + " · " +
        GW.esc(GW.streetName(c.street, c.street_name)) + " · " + GW.esc(GW.ago(c.created_at)) + "</small></li>").join("");
      document.body.dataset.cases = shown.length;
    }
    $("#show-closed").addEventListener("change", refreshCases);
    $("#case-list").addEventListener("click", (ev) => {
      if (ev.target.closest("a")) return;
      const li = ev.target.closest("li");
      if (li) map.flyTo([+li.dataset.lat, +li.dataset.lon], 17);
    });

    await Promise.all([refreshGeo(), refreshCases(), refreshCameras()]).catch((e) => console.error(e));
    GW.onLive("cases", () => { refreshCases(); refreshCameras(); });
    GW.onLive("devices", refreshCameras);
    document.body.dataset.ready = "1";
  });

  // Without Leaflet the page still lists the open cases, kept live.
  async function listOnly() {
    const cs = await GW.get("/api/v1/cases?limit=5000");
    const open = cs.filter((c) => GW.OPEN.includes(c.status));
    $("#open-count").textContent = open.length;
    $("#case-list").innerHTML = open.map((c) => '<li data-case-id="' + c.id + '"><i class="dot" style="background:' + GW.STATUS_COLORS[c.status] + '"></i><a href="/ui/cases/' + c.id + '">#' + c.id + "</a> " + GW.esc(GW.caseLabel(c)) + "</li>").join("");
    document.body.dataset.cases = open.length;
    document.body.dataset.ready = "1";
  }
})();
