// The members' pages' service worker (scope /my/): keeps the card page, its static files
// and the last /my/tokens answer (the current and the next windows' QR tokens), so the
// card opens and its QR shows with the phone offline for as long as those tokens are
// valid. Network first for the page and the tokens (fresh when online), the cache when
// the network fails; static files from the cache first.
"use strict";
var CACHE = "kassa-my-v1";
var STATIC = ["/my/static/my.css", "/my/static/card.js", "/my/static/icon.svg", "/my/manifest.webmanifest"];

self.addEventListener("install", function (e) {
  e.waitUntil(caches.open(CACHE).then(function (c) { return c.addAll(STATIC); }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (e) {
  e.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (n) { return n !== CACHE; }).map(function (n) { return caches.delete(n); }));
  }).then(function () { return self.clients.claim(); }));
});

function fromCache(request) {
  return caches.open(CACHE).then(function (c) { return c.match(request, { ignoreSearch: true }); }).then(function (hit) {
    if (!hit) return Response.error();
    var headers = new Headers(hit.headers);
    headers.set("X-From-Cache", "1");
    return hit.blob().then(function (body) { return new Response(body, { status: hit.status, headers: headers }); });
  });
}

self.addEventListener("fetch", function (e) {
  var url = new URL(e.request.url);
  if (e.request.method !== "GET" || url.origin !== location.origin) return;
  if (url.pathname === "/my/card" || url.pathname === "/my/tokens") {
    e.respondWith(fetch(e.request).then(function (r) {
      if (r.ok) {
        var copy = r.clone();
        caches.open(CACHE).then(function (c) { c.put(url.pathname, copy); });
      }
      return r;
    }).catch(function () { return fromCache(url.pathname); }));
    return;
  }
  if (url.pathname.indexOf("/my/static/") === 0 || url.pathname === "/my/manifest.webmanifest") {
    e.respondWith(caches.match(e.request).then(function (hit) { return hit || fetch(e.request); }));
  }
});
