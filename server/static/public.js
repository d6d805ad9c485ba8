// Live updates for /kolejka and the widget: ask the same URL again every refresh_s seconds
// (with the ETag the browser keeps, so "nothing new" is a 304 with no body) and copy the
// texts that changed into the page in place, so a screen reader's position and the reader's
// scroll stay where they are. Polling stops while the tab is hidden or paused by the user.
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live) return;
  const every = Math.max(2, Number(live.dataset.refresh) || 10) * 1000;
  const status = document.getElementById("connection");
  const pause = document.getElementById("pause");
  let timer = null, failures = 0, paused = false;

  function say(text) { if (status && status.textContent !== text) status.textContent = text; }

  function update(fresh) {
    // Elements with an id inside #live: same id, new text -> copy it; a new or vanished card -> whole section.
    const next = fresh.getElementById("live");
    if (!next) return;
    const oldIds = [...live.querySelectorAll("[id]")].map((e) => e.id).join(" ");
    const newIds = [...next.querySelectorAll("[id]")].map((e) => e.id).join(" ");
    if (oldIds !== newIds) {
      live.innerHTML = next.innerHTML;
      return;
    }
    for (const el of next.querySelectorAll("[id]")) {
      const here = document.getElementById(el.id);
      if (!here) continue;
      if (here.className !== el.className) here.className = el.className;
      if (el.children.length === 0 || el.tagName === "DD" || el.tagName === "TD") {
        if (here.innerHTML !== el.innerHTML) {
          here.innerHTML = el.innerHTML;
          here.classList.add("changed");
          setTimeout(() => here.classList.remove("changed"), 2500);
        }
      }
      if (el.tagName === "TIME") here.setAttribute("datetime", el.getAttribute("datetime"));
    }
  }

  async function poll() {
    timer = null;
    if (paused || document.hidden) return;
    try {
      const r = await fetch(location.href, { cache: "no-cache", credentials: "omit" });
      if (r.status === 200) update(new DOMParser().parseFromString(await r.text(), "text/html"));
      else if (r.status !== 304) throw new Error(String(r.status));
      failures = 0;
      if (!paused) say(""); // paused while this answer was on its way: keep saying so
    } catch (e) {
      failures += 1;
      if (!paused) say(status ? status.dataset.offline : "");
    }
    schedule();
  }

  function schedule() {
    if (timer !== null || paused || document.hidden) return;
    // After failures, back off (up to a minute) with jitter, so a restarted server is not hit by everyone at once.
    const wait = failures ? Math.min(60000, every * 2 ** Math.min(failures, 3)) : every;
    timer = setTimeout(poll, wait * (0.9 + Math.random() * 0.2));
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) { clearTimeout(timer); timer = null; } else { poll(); }
  });
  if (pause) {
    pause.addEventListener("click", () => {
      paused = !paused;
      pause.setAttribute("aria-pressed", String(paused));
      pause.textContent = paused ? pause.dataset.resume : pause.dataset.pause;
      if (paused) { clearTimeout(timer); timer = null; say(status.dataset.paused); } else { say(""); poll(); }
    });
  }
  schedule();
})();
