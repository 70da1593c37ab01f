/* The service worker of /code (served as /sw.js, scope /code): the page
 * opens with no network after one online visit.
 *
 * It caches only what holds no resident's data: the static shell of the
 * page (/code/shell: the code card, empty, in the language of the last
 * online visit), its script, style sheet and the vendored QR encoder. The
 * resident's own page, /code, is never cached (it holds a CSRF token and an
 * online code): online it comes from the network; when the network fails
 * (or takes longer than NETWORK_TIMEOUT_MS) the shell stands in for it, and
 * reads the device state from IndexedDB. Nothing else is touched: the API
 * and every other page go to the network as if there were no worker.
 * Logging out sends Clear-Site-Data, which removes the caches, IndexedDB
 * and this worker.
 */
"use strict";

var CACHE = "codeservice-shell-v1";
var NETWORK_TIMEOUT_MS = 5000;
var base = self.location;
var SHELL = new URL("code/shell", base).href;
var PAGE = new URL("code", base).pathname;
var ASSETS = [
  SHELL,
  new URL("static/app.css", base).href,
  new URL("static/icon.svg", base).href,
  new URL("static/rsd.js", base).href,
  new URL("static/device.js", base).href,
  new URL("static/vendor/qrcode-generator/qrcode.js", base).href,
  new URL("static/manifest.webmanifest", base).href
];

self.addEventListener("install", function (event) {
  event.waitUntil(
    caches.open(CACHE).then(function (cache) {
      return cache.addAll(ASSETS);
    }).then(function () {
      return self.skipWaiting();
    })
  );
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys().then(function (names) {
      return Promise.all(names.filter(function (name) {
        return name !== CACHE;
      }).map(function (name) {
        return caches.delete(name);
      }));
    }).then(function () {
      return self.clients.claim();
    })
  );
});

function fromNetwork(request) {
  return new Promise(function (resolve, reject) {
    var timer = setTimeout(function () {
      reject(new Error("the network is too slow"));
    }, NETWORK_TIMEOUT_MS);
    fetch(request).then(function (response) {
      clearTimeout(timer);
      resolve(response);
    }, function (error) {
      clearTimeout(timer);
      reject(error);
    });
  });
}

function refreshShell() {
  // The shell follows the language of the latest online visit.
  return caches.open(CACHE).then(function (cache) {
    return cache.add(SHELL);
  }).catch(function () {});
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") {
    return;
  }
  var url = new URL(request.url);
  if (request.mode === "navigate" && url.origin === base.origin && url.pathname === PAGE) {
    event.respondWith(
      fromNetwork(request).then(function (response) {
        event.waitUntil(refreshShell());
        return response;
      }, function () {
        return caches.match(SHELL).then(function (shell) {
          return shell || Response.error();
        });
      })
    );
    return;
  }
  var asset = url.origin + url.pathname;
  if (url.search || ASSETS.indexOf(asset) < 0) {
    return;
  }
  // Network first, so a deploy is picked up at once; the cache when offline.
  event.respondWith(
    fromNetwork(request).then(function (response) {
      if (response.ok) {
        var copy = response.clone();
        event.waitUntil(caches.open(CACHE).then(function (cache) {
          return cache.put(asset, copy);
        }));
      }
      return response;
    }, function () {
      return caches.match(asset).then(function (cached) {
        return cached || Response.error();
      });
    })
  );
});
