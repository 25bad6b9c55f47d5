// The card's rotating QR: shows the token of the current window (server-drawn SVGs from
// /my/tokens, embedded in the page at first), the time it has left, and asks for fresh
// tokens a minute before the last one it holds runs out. Times are Unix seconds of the
// server's clock: the phone's clock is corrected by the offset seen at each answer.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("tokens").textContent);
  var offset = data.now - Date.now() / 1000;
  var shown = null;
  var asking = false;
  var askedAt = 0;
  var qr = document.getElementById("qr");
  var left = document.getElementById("left-s");
  var stale = document.getElementById("refresh-needed");
  var offline = document.getElementById("offline");

  function now() { return Date.now() / 1000 + offset; }

  function refresh() {
    if (asking || Date.now() - askedAt < 15000) return;  // offline: once every 15 s
    asking = true;
    askedAt = Date.now();
    fetch("/my/tokens", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { location.href = "/my/join"; return null; }
        offline.classList.toggle("hidden", r.headers.get("X-From-Cache") !== "1");
        return r.ok ? r.json() : null;
      })
      .then(function (fresh) {
        if (fresh && fresh.tokens && fresh.tokens.length) {
          if (fresh.now) offset = fresh.now - Date.now() / 1000;
          data = fresh;
        }
      })
      .catch(function () { offline.classList.remove("hidden"); })
      .then(function () { asking = false; tick(); });
  }

  function tick() {
    var t = now();
    var current = null;
    var last = 0;
    data.tokens.forEach(function (w) {
      if (w.valid_from <= t && t < w.expires_at) current = w;
      last = Math.max(last, w.expires_at);
    });
    if (current === null) {
      qr.classList.add("stale");
      stale.classList.remove("hidden");
      left.textContent = "0:00";
    } else {
      if (shown !== current.token) {
        qr.innerHTML = current.svg;
        qr.dataset.token = current.token;
        shown = current.token;
      }
      qr.classList.remove("stale");
      stale.classList.add("hidden");
      var s = Math.max(0, Math.floor(current.expires_at - t));
      left.textContent = Math.floor(s / 60) + ":" + ("0" + (s % 60)).slice(-2);
    }
    // ask a minute before the last held token runs out (and when none is current)
    if (last - t < 60 + (data.tokens.length - 1) * 300 || current === null) refresh();
  }

  qr.dataset.token = data.tokens.length ? data.tokens[0].token : "";
  shown = qr.dataset.token;
  setInterval(tick, 1000);
  tick();
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/my/sw.js", { scope: "/my/" }).catch(function () {});
  }
})();
