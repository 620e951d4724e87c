// tasks.js: a department's or street office's desk: its open tasks with deadlines and time left,
// and the actions on them: interim action, report fixed with an after-photo, extension, return.
"use strict";
(function () {
  const GW = window.GW, $ = GW.$;
  let who = null, dept = "", tasks = [], casesByID = {};

  async function load() {
    const q = dept ? "?dept=" + encodeURIComponent(dept) : "";
    const [ks, cs] = await Promise.all([GW.get("/api/v1/tasks" + q + (q ? "&" : "?") + "limit=1000"), GW.get("/api/v1/cases?limit=5000")]);
    casesByID = {};
    for (const c of cs) casesByID[c.id] = c;
    tasks = ks;
    render();
  }

  function actionsFor(k) {
    const c = casesByID[k.case_id] || {};
    if (!who || k.status !== "open") return "";
    const mine = who.role === "admin" || who.dept === k.dept;
    if (!mine) return "";
    const b = (act, label, cls) => '<button type="button" class="btn small ' + (cls || "") + '" data-act="' + act + '" data-task="' + k.id + '">' + GW.esc(GW.t(label)) + "</button>";
    let out = "";
    if (k.role === "street") out += b("interim", "btn.interim", "primary");
    if (k.role === "owner" && c.status === "dispatched") out += b("fixed", "btn.fixed", "primary");
    if (!k.extension_request) out += b("extension", "btn.extension");
    if (k.role === "owner" && (who.role === "department" || who.role === "admin")) out += b("return", "btn.return", "danger");
    return out;
  }

  function render() {
    const open = tasks.filter((k) => k.status === "open").sort((a, b) => new Date(a.deadline) - new Date(b.deadline));
    const done = tasks.filter((k) => k.status !== "open").slice(0, 30);
    $("#open-tasks-count").textContent = open.length;
    $("#open-tasks-empty").hidden = open.length > 0;
    $("#open-tasks tbody").innerHTML = open.map((k) => {
      const c = casesByID[k.case_id] || {};
      const tl = GW.timeLeft(k.deadline);
      return '<tr data-task-id="' + k.id + '" class="' + (tl.overdue ? "overdue" : "") + '">' +
        '<td><a href="/ui/cases/' + k.case_id + '">#' + k.case_id + "</a> " + (c.status ? GW.statusBadge(c.status) : "") + "</td>" +
        "<td>" + GW.esc(GW.t("role." + k.role)) + (GW.refs && !dept ? '<br><small class="muted">' + GW.esc(GW.deptName(k.dept)) + "</small>" : "") + "</td>" +
        "<td>" + GW.esc(c.category ? GW.caseLabel(c) : "") + (c.urgent ? ' <span class="badge urgent">' + GW.esc(GW.t("f.urgent")) + "</span>" : "") + "</td>" +
        "<td>" + GW.esc(GW.streetName(c.street, c.street_name)) + '<br><small class="muted"><code>' + GW.esc(c.grid_cell || "") + "</code></small></td>" +
        "<td>" + GW.esc(GW.fmtTime(k.deadline)) + (k.extension_hours ? '<br><small class="muted">+' + k.extension_hours + "h</small>" : "") + "</td>" +
        '<td class="timeleft' + (tl.overdue ? " bad" : "") + '" data-deadline="' + GW.esc(k.deadline) + '">' + GW.esc(tl.text) +
        (k.extension_request ? '<br><span class="badge warn">' + GW.esc(GW.t("tasks.ext")) + "</span>" : "") + "</td>" +
        '<td class="actions">' + actionsFor(k) + "</td></tr>";
    }).join("");
    $("#done-tasks tbody").innerHTML = done.map((k) =>
      '<tr><td><a href="/ui/cases/' + k.case_id + '">#' + k.case_id + "</a></td><td>" + GW.esc(GW.t("role." + k.role)) + "</td><td>" +
      GW.esc(GW.t("task." + k.status)) + "</td><td>" + GW.esc(k.note || "") + (k.photo ? ' <a class="ev-link" href="/api/v1/evidence/' + GW.esc(k.photo) + '" target="_blank">' + GW.esc(GW.t("f.photo")) + "</a>" : "") +
      "</td><td>" + GW.esc(GW.fmtTime(k.done_at)) + "</td></tr>").join("") || '<tr><td colspan="5" class="muted">' + GW.esc(GW.t("none")) + "</td></tr>";
  }

  // The countdown ticks every second without refetching.
  setInterval(() => {
    for (const td of document.querySelectorAll("td.timeleft")) {
      const tl = GW.timeLeft(td.dataset.deadline);
      td.firstChild.textContent = tl.text;
      td.classList.toggle("bad", tl.overdue);
      td.parentElement.classList.toggle("overdue", tl.overdue);
    }
  }, 1000);

  const field = (label, html) => '<label class="field"><span>' + GW.esc(GW.t(label)) + "</span>" + html + "</label>";
  const reasonOptions = () => ["not_ours", "wrong_location", "other"].map((r) => '<option value="' + r + '">' + GW.esc(GW.t("ret." + r)) + "</option>").join("");

  async function act(kind, id) {
    const k = tasks.find((x) => x.id === id);
    const title = GW.t("btn." + kind) + " · #" + k.case_id;
    if (kind === "fixed") {
      GW.dialog(title, field("f.photo", '<input type="file" name="photo" id="photo" accept="image/*" required>') +
        field("f.note", '<textarea name="note" id="note" rows="2"></textarea>') + '<div class="muted" id="upload-state"></div>', async (f) => {
        const file = f.photo.files[0];
        if (!file) throw new Error(GW.t("tasks.needphoto"));
        $("#upload-state").textContent = GW.t("tasks.hashing");
        const sha = await GW.uploadEvidence(file);
        $("#upload-state").textContent = "sha256 " + sha;
        await GW.post("/api/v1/tasks/" + id + "/fixed", { note: f.note.value, photo: sha });
        GW.toast("#" + k.case_id + " " + GW.t("act.fixed"));
      });
    } else if (kind === "interim") {
      GW.dialog(title, field("f.note", '<textarea name="note" id="note" rows="2" required></textarea>') +
        field("f.photo", '<input type="file" name="photo" accept="image/*">'), async (f) => {
        const file = f.photo.files[0];
        const sha = file ? await GW.uploadEvidence(file) : "";
        await GW.post("/api/v1/tasks/" + id + "/interim", { note: f.note.value, photo: sha });
        GW.toast("#" + k.case_id + " " + GW.t("act.interim_action"));
      });
    } else if (kind === "extension") {
      GW.dialog(title, field("f.hours", '<input type="number" name="hours" min="0.5" max="720" step="0.5" value="4" required>') +
        field("f.reason", '<textarea name="reason" rows="2" required></textarea>'), async (f) => {
        await GW.post("/api/v1/tasks/" + id + "/extension", { hours: Number(f.hours.value), reason: f.reason.value });
        GW.toast("#" + k.case_id + " " + GW.t("act.extension_requested"));
      });
    } else if (kind === "return") {
      GW.dialog(title, field("f.reason", '<select name="code">' + reasonOptions() + "</select>") +
        field("f.note", '<textarea name="reason" rows="2" required></textarea>'), async (f) => {
        await GW.post("/api/v1/tasks/" + id + "/return", { reason: f.code.value + ": " + f.reason.value });
        GW.toast("#" + k.case_id + " " + GW.t("act.returned"));
      });
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    await GW.loadRefs().catch(() => null);
    who = await GW.whoami();
    if (who && (who.role === "department" || who.role === "street")) {
      dept = who.dept;
      $("#tasks-dept").textContent = "· " + GW.deptName(dept);
    } else {
      // Dispatchers, supervisors and admins look at any department.
      $("#tasks-login").hidden = !!who;
      const sel = $("#dept-filter");
      sel.hidden = false;
      sel.innerHTML = '<option value="">' + GW.esc(GW.t("tasks.all")) + "</option>" +
        (GW.refs ? GW.refs.deptList.map((d) => '<option value="' + GW.esc(d.id) + '">' + GW.esc(GW.deptName(d.id)) + "</option>").join("") : "");
      sel.addEventListener("change", () => { dept = sel.value; load(); });
    }
    $("#open-tasks").addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-act]");
      if (b) act(b.dataset.act, Number(b.dataset.task));
    });
    $("#dlg").addEventListener("close", () => load());
    await load();
    GW.onLive("cases", () => { if (!$("#dlg").open) load(); });
    setInterval(() => { if (!$("#dlg").open) load(); }, 60000);
    document.body.dataset.ready = "1";
  });
})();
