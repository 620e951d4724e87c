// screen.js: the big screen: today's counts, department, street and supervisor rankings (scores API, drawn with
// ECharts when it is installed, always as a table), overdue cases and the latest detections.
// Refreshes every 30 s and whenever the cases change.
"use strict";
(function () {
  const GW = window.GW, $ = GW.$;
  const GRADE_COLORS = { A: "#22c55e", B: "#38bdf8", C: "#f59e0b", D: "#ef4444" };
  const charts = {};

  function clock() {
    const d = new Date();
    $("#clock").textContent = GW.fmtTime(d.toISOString());
  }

  function ranking(kind, scores) {
    const name = (s) => (kind === "depts" ? GW.deptName(s.party) : GW.streetName(s.party, s.name));
    const rows = scores.slice(0, 10);
    $("#rank-" + kind + " tbody").innerHTML = rows.length ? '<tr class="rank-head"><th>' + GW.esc(GW.t("screen.rank")) + "</th><th></th><th>" + GW.esc(GW.t("screen.score")) +
      "</th><th>" + GW.esc(GW.t("screen.grade")) + "</th><th>" + GW.esc(GW.t("screen.handled")) + "</th><th>" + GW.esc(GW.t("screen.ontime")) + "</th><th>" + GW.esc(GW.t("screen.due")) + "</th></tr>" +
      rows.map((s, i) => '<tr data-party="' + GW.esc(s.party) + '"><td class="rk">' + (i + 1) + '</td><td class="nm">' + GW.esc(name(s)) + '</td><td class="num">' + s.score.toFixed(1) +
        '</td><td><span class="grade-badge" style="background:' + GRADE_COLORS[s.grade] + '">' + s.grade + '</span></td><td class="num">' + Math.round(s.handled_rate * 100) +
        '%</td><td class="num">' + Math.round(s.on_time_rate * 100) + '%</td><td class="num">' + s.due + "</td></tr>").join("")
      : '<tr><td class="muted">' + GW.esc(GW.t("screen.norank")) + "</td></tr>";
    const el = $("#chart-" + kind);
    if (!window.echarts || !rows.length) { el.hidden = true; return; }
    el.hidden = false;
    const chart = charts[kind] || (charts[kind] = echarts.init(el, null, { renderer: "canvas" }));
    const data = rows.slice().reverse();
    chart.setOption({
      animation: false,
      grid: { left: 8, right: 40, top: 6, bottom: 6, containLabel: true },
      xAxis: { type: "value", max: 100, splitLine: { lineStyle: { color: "#1e3a5f" } }, axisLabel: { color: "#7f9cc0" } },
      yAxis: { type: "category", data: data.map(name), axisLabel: { color: "#cfe3ff", fontSize: 12, width: 180, overflow: "truncate" }, axisLine: { lineStyle: { color: "#2b4c74" } } },
      series: [{ type: "bar", barMaxWidth: 18, data: data.map((s) => ({ value: +s.score.toFixed(1), itemStyle: { color: GRADE_COLORS[s.grade], borderRadius: [0, 3, 3, 0] } })),
        label: { show: true, position: "right", color: "#e6f0ff", formatter: "{c}" } }],
    }, true);
    chart.resize();
  }

  // supervisors ranks the supervisors (信息采集员) by reports, valid-report rate and checks on time;
  // a rate with nothing to measure shows as a dash, as the score leaves it out.
  function supervisors(scores) {
    const rows = scores.slice(0, 10);
    const pct = (n, d) => (d ? Math.round((n / d) * 100) + "%" : "–");
    const th = (k) => "<th>" + GW.esc(GW.t(k)) + "</th>";
    $("#rank-supervisors tbody").innerHTML = rows.length ? '<tr class="rank-head">' + th("screen.rank") + "<th></th>" + th("screen.score") + th("screen.grade") + th("screen.reports") +
      th("screen.valid") + th("screen.checks") + "</tr>" +
      rows.map((s, i) => '<tr data-party="' + GW.esc(s.party) + '"><td class="rk">' + (i + 1) + '</td><td class="nm">' + GW.esc(s.party) + '</td><td class="num">' + s.score.toFixed(1) +
        '</td><td><span class="grade-badge" style="background:' + GRADE_COLORS[s.grade] + '">' + s.grade + '</span></td><td class="num">' + s.reports +
        '</td><td class="num">' + pct(s.valid, s.reports) + '</td><td class="num">' + pct(s.checks_on_time, s.checks) + "</td></tr>").join("")
      : '<tr><td class="muted">' + GW.esc(GW.t("screen.norank")) + "</td></tr>";
  }

  async function load() {
    const [depts, streets, sups, today, cases] = await Promise.all([
      GW.get("/api/v1/scores?kind=department"), GW.get("/api/v1/scores?kind=street"), GW.get("/api/v1/scores?kind=supervisor"),
      GW.get("/api/v1/stats/today"), GW.get("/api/v1/cases?limit=50")]);
    for (const k of ["new", "dispatched", "closed", "overdue", "awaiting", "open"]) $("#k-" + k).textContent = today[k];
    ranking("depts", depts.scores || []);
    ranking("streets", streets.scores || []);
    supervisors(sups.scores || []);
    $("#overdue-list").innerHTML = today.overdue_cases.slice(0, 12).map((c) =>
      '<li><a href="/ui/cases/' + c.id + '">#' + c.id + "</a> " + GW.esc(GW.caseLabel(c)) + ' <span class="sp"></span><span class="bad">' + GW.esc(GW.timeLeft(c.task_deadline).text) +
      '</span><br><small>' + GW.esc(GW.deptName(c.task_dept)) + " · " + GW.esc(GW.streetName(c.street, c.street_name)) + "</small></li>").join("") ||
      '<li class="muted">' + GW.esc(GW.t("screen.nooverdue")) + "</li>";
    $("#recent-list").innerHTML = cases.slice(0, 10).map((c) =>
      '<li data-case-id="' + c.id + '"><i class="dot" style="background:' + GW.STATUS_COLORS[c.status] + '"></i><a href="/ui/cases/' + c.id + '">#' + c.id + "</a> " + GW.esc(GW.caseLabel(c)) +
      ' <span class="sp"></span>' + GW.esc(GW.t("status." + c.status)) + "<br><small>" + GW.esc(GW.streetName(c.street, c.street_name)) + " · " + GW.esc(c.device ? c.device + "/" + c.camera : c.source) +
      " · " + GW.esc(GW.ago(c.created_at)) + "</small></li>").join("") || '<li class="muted">' + GW.esc(GW.t("none")) + "</li>";
    document.body.dataset.ready = "1";
    document.body.dataset.refreshed = String(Date.now());
  }

  let pending = null;
  const soon = () => { clearTimeout(pending); pending = setTimeout(() => load().catch(console.error), 300); };

  document.addEventListener("DOMContentLoaded", async () => {
    clock();
    setInterval(clock, 1000);
    await GW.loadRefs().catch(() => null);
    await load();
    setInterval(() => load().catch(console.error), 30000);
    GW.onLive("cases", soon);
    window.addEventListener("resize", () => { for (const c of Object.values(charts)) c.resize(); });
  });
})();
