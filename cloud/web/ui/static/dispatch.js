// dispatch.js: the dispatcher's desk: returned cases to re-dispatch, extension requests to decide,
// and the cases in progress with hold, resume and void.
"use strict";
(function () {
  const GW = window.GW, $ = GW.$;
  let cases = [], tasks = [], lastReturn = {};

  async function load() {
    const [cs, ks] = await Promise.all([GW.get("/api/v1/cases?limit=5000"), GW.get("/api/v1/tasks?limit=5000")]);
    cases = cs;
    tasks = ks;
    lastReturn = {};
    for (const k of ks) if (k.status === "returned" && (!lastReturn[k.case_id] || k.id > lastReturn[k.case_id].id)) lastReturn[k.case_id] = k;
    render();
  }
  const byID = (id) => cases.find((c) => c.id === id) || {};
  const caseCell = (c) => '<a href="/ui/cases/' + c.id + '">#' + c.id + "</a>";
  const btn = (act, id, label, cls) => '<button type="button" class="btn small ' + (cls || "") + '" data-act="' + act + '" data-id="' + id + '">' + GW.esc(GW.t(label)) + "</button>";

  function render() {
    const returned = cases.filter((c) => c.status === "returned");
    $("#returned-count").textContent = returned.length;
    const owners = GW.refs ? GW.refs.deptList.filter((d) => d.kind === "owner") : [];
    $("#returned tbody").innerHTML = returned.map((c) => {
      const k = lastReturn[c.id];
      const opts = owners.map((d) => '<option value="' + GW.esc(d.id) + '"' + (k && d.id === k.dept ? " disabled" : "") + ">" + GW.esc(GW.deptName(d.id)) + "</option>").join("");
      return '<tr data-case-id="' + c.id + '"><td>' + caseCell(c) + "</td><td>" + GW.esc(GW.caseLabel(c)) + "</td><td>" +
        (k ? GW.esc(GW.deptName(k.dept)) + ": " + GW.esc(k.note || "") : "") + '</td><td class="actions"><select class="redispatch-dept">' + opts + "</select> " +
        btn("redispatch", c.id, "btn.redispatch", "primary") + "</td></tr>";
    }).join("") || '<tr><td colspan="4" class="muted">' + GW.esc(GW.t("disp.none")) + "</td></tr>";

    const ext = tasks.filter((k) => k.extension_request && k.status === "open");
    $("#ext-count").textContent = ext.length;
    $("#extensions tbody").innerHTML = ext.map((k) => {
      const [h, ...why] = k.extension_request.split("|");
      return '<tr><td><a href="/ui/cases/' + k.case_id + '">#' + k.case_id + "</a></td><td>" + GW.esc(GW.deptName(k.dept)) + "<br><small class=muted>" + GW.esc(GW.t("role." + k.role)) +
        "</small></td><td><b>+" + GW.esc(h) + "h</b> " + GW.esc(why.join("|")) + "</td><td>" + GW.esc(GW.fmtTime(k.deadline)) + '</td><td class="actions">' +
        btn("approve", k.id, "btn.approve", "primary") + btn("refuse", k.id, "btn.refuse", "danger") + "</td></tr>";
    }).join("") || '<tr><td colspan="5" class="muted">' + GW.esc(GW.t("disp.none")) + "</td></tr>";

    const prog = cases.filter((c) => ["reported", "dispatched", "fixed", "returned", "on_hold"].includes(c.status))
      .sort((a, b) => (a.deadline ? new Date(a.deadline) : Infinity) - (b.deadline ? new Date(b.deadline) : Infinity));
    $("#inprog-count").textContent = prog.length;
    $("#inprogress tbody").innerHTML = prog.map((c) => {
      const tl = GW.timeLeft(c.deadline);
      const over = c.status !== "on_hold" && tl.overdue;
      let acts = "";
      if (c.status === "on_hold") acts += btn("resume", c.id, "btn.resume", "primary");
      else if (["dispatched", "returned", "reported"].includes(c.status)) acts += btn("hold", c.id, "btn.hold");
      acts += btn("void", c.id, "btn.void", "danger");
      return '<tr class="' + (over ? "overdue" : "") + '" data-case-id="' + c.id + '"><td>' + caseCell(c) + "</td><td>" + GW.statusBadge(c.status) + "</td><td>" + GW.esc(GW.caseLabel(c)) +
        "</td><td>" + GW.esc(GW.deptName(c.owner_department)) + "</td><td>" + GW.esc(GW.streetName(c.street, c.street_name)) + "</td><td>" + GW.esc(GW.fmtTime(c.deadline)) +
        '</td><td class="' + (over ? "bad" : "") + '">' + (c.deadline ? GW.esc(tl.text) : "–") + '</td><td class="actions">' + acts + "</td></tr>";
    }).join("") || '<tr><td colspan="8" class="muted">' + GW.esc(GW.t("disp.none")) + "</td></tr>";
  }

  const field = (label, html) => '<label class="field"><span>' + GW.esc(GW.t(label)) + "</span>" + html + "</label>";

  async function act(kind, id, row) {
    try {
      if (kind === "redispatch") {
        const dept = row.querySelector(".redispatch-dept").value;
        GW.dialog(GW.t("btn.redispatch") + " #" + id + " → " + GW.deptName(dept), field("f.note", '<textarea name="note" rows="2"></textarea>'), async (f) => {
          await GW.post("/api/v1/cases/" + id + "/redispatch", { dept, note: f.note.value });
          GW.toast("#" + id + " " + GW.t("act.redispatched"));
        });
      } else if (kind === "approve" || kind === "refuse") {
        const k = tasks.find((x) => x.id === id);
        GW.dialog(GW.t("btn." + kind) + " · #" + k.case_id, field("f.note", '<textarea name="note" rows="2"></textarea>'), async (f) => {
          await GW.post("/api/v1/tasks/" + id + "/extension/decision", { approve: kind === "approve", note: f.note.value });
          GW.toast("#" + k.case_id + " " + GW.t(kind === "approve" ? "act.extension_approved" : "act.extension_refused"));
        });
      } else if (kind === "resume") {
        await GW.post("/api/v1/cases/" + id + "/resume", { note: "" });
        GW.toast("#" + id + " " + GW.t("act.resumed"));
        load();
      } else {
        GW.dialog(GW.t("btn." + kind) + " #" + id, field("f.reason", '<textarea name="reason" rows="2" required></textarea>'), async (f) => {
          await GW.post("/api/v1/cases/" + id + "/" + kind, { reason: f.reason.value });
          GW.toast("#" + id + " " + GW.t(kind === "hold" ? "act.on_hold" : "act.voided"));
        });
      }
    } catch (e) {
      GW.toast(GW.t("err.action") + ": " + e.message, "bad");
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    await GW.loadRefs().catch(() => null);
    const who = await GW.whoami();
    $("#disp-login").hidden = !!who && (who.role === "dispatcher" || who.role === "admin");
    document.querySelector(".main").addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-act]");
      if (b) act(b.dataset.act, Number(b.dataset.id), b.closest("tr"));
    });
    $("#dlg").addEventListener("close", () => load());
    await load();
    GW.onLive("cases", () => { if (!$("#dlg").open) load(); });
    setInterval(() => { if (!$("#dlg").open) load(); }, 30000);
    document.body.dataset.ready = "1";
  });
})();
