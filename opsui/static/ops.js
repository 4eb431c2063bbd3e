// Auto-refresh of the ops page: fetch the same URL again, swap <main>, keep the log scrolled.
// The server renders everything; without this script the page is still complete.
"use strict";
(function () {
  const seconds = Number(document.body.dataset.refresh) || 5;
  const toggle = document.getElementById("auto-refresh");

  function scrollLog() {
    const log = document.getElementById("log-text");
    if (log) log.scrollTop = log.scrollHeight;
  }

  async function refresh() {
    if (document.hidden || (toggle && !toggle.checked)) return;
    let reply;
    try {
      reply = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
    } catch (error) {
      return; // the page server is restarting: try again next time
    }
    if (reply.status === 401) {
      location.reload(); // the session is gone: show the login form
      return;
    }
    const doc = new DOMParser().parseFromString(await reply.text(), "text/html");
    const fresh = doc.querySelector("main");
    const open = new Set(
      Array.from(document.querySelectorAll("main details[open] summary"), (s) => s.textContent)
    );
    if (!fresh) return;
    document.querySelector("main").replaceWith(fresh);
    fresh.querySelectorAll("details summary").forEach((s) => {
      if (open.has(s.textContent)) s.parentElement.open = true;
    });
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes) + 1);
    scrollLog();
  }

  scrollLog();
  setInterval(refresh, seconds * 1000);
})();
