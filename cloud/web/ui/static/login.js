// login.js: keep an API token in this browser and show who it is.
"use strict";
(function () {
  const GW = window.GW, $ = GW.$;

  async function show() {
    const who = await GW.whoami();
    const el = $("#login-current");
    el.hidden = !who;
    if (who) el.innerHTML = GW.esc(GW.t("login.current")) + ": <b>" + GW.esc(who.name) + "</b> · " + GW.esc(GW.t("who." + who.role)) + (who.dept ? " · " + GW.esc(GW.deptName(who.dept)) : "");
  }

  async function signIn(tok) {
    GW.setToken(tok);
    const who = await GW.whoami();
    if (!who) {
      GW.clearToken();
      $("#login-error").textContent = GW.t("login.bad");
      return;
    }
    $("#login-error").textContent = "";
    GW.toast(GW.t("login.ok") + " " + who.name);
    const next = { verifier: "/ui/queue", dispatcher: "/ui/dispatch", department: "/ui/tasks", street: "/ui/tasks" }[who.role] || "/ui/map";
    setTimeout(() => { location.href = next; }, 400);
  }

  document.addEventListener("DOMContentLoaded", async () => {
    $("#login-form").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("#token").value.trim()); });
    $("#logout").addEventListener("click", () => { GW.clearToken(); location.reload(); });
    for (const b of document.querySelectorAll(".use-token")) b.addEventListener("click", () => signIn(b.dataset.token));
    await GW.loadRefs().catch(() => null);
    show();
    document.body.dataset.ready = "1";
  });
})();
