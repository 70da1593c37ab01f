/* The device code on /code (contract sections 4 and 9): a code this phone
 * makes itself every 30 s, with or without network.
 *
 * On the first online visit the page makes a P-256 key with WebCrypto
 * (extractable: false: the private key never leaves the browser), keeps the
 * CryptoKeyPair in IndexedDB, enrols its public key (POST /api/v1/devices)
 * and keeps the credential the service certifies it with. Whenever online
 * and past half the credential's life it asks for a fresh one (POST
 * /api/v1/devices/{id}/credential; a 404 enrols anew). Each answer's
 * server_time gives the offset of the service's clock to the phone's, so
 * t is on the service's clock even when the phone's is minutes wrong.
 *
 * The service worker (/sw.js) keeps a static shell of this page, with no
 * resident's data in it; offline, /code is that shell, and it reads what
 * it shows (the masked name, the key, the credential) from IndexedDB.
 * Logging out clears IndexedDB, the caches and the worker (Clear-Site-Data).
 *
 * A browser without WebCrypto, IndexedDB or service workers (or a worker
 * that cannot be registered) keeps the online code of code.js, and says so.
 */
(function () {
  "use strict";

  var app = document.getElementById("code-app");
  var qr = document.getElementById("qr");
  if (!app || !qr || !window.RSD) {
    return;
  }
  var data = app.dataset;
  var shell = data.shell === "1";
  var frame = document.getElementById("qr-frame");
  var overlay = document.getElementById("qr-overlay");
  var clock = document.getElementById("clock");
  var countdown = document.getElementById("countdown");
  var statusBox = document.getElementById("status");
  var statusText = document.getElementById("status-text");
  var note = document.getElementById("device-note");
  var hint = document.getElementById("hint");
  var refreshForm = document.getElementById("refresh-form");

  var DB_NAME = "codeservice-device";
  var STORE = "device";
  var RECORD = "this-phone";
  var CODE_INTERVAL_S = 30;
  var FETCH_RETRY_MS = 60000;
  var SKEW_TOLERANCE_MS = 2000;
  var ALGORITHM = { name: "ECDSA", namedCurve: "P-256" };
  var SIGNING = { name: "ECDSA", hash: "SHA-256" };

  var device = null; // the IndexedDB record of this phone, once there is one
  var current = null; // {t, text}: the code on screen
  var making = false;
  var pending = null; // the code being made
  var active = false; // this script shows the device code (code.js stopped)
  var usable = false; // the service worker is registered: this phone can hold a device key
  var nextContact = 0; // Date.now() before which the service is not asked again
  var offline = shell || navigator.onLine === false;

  // For people and tests looking at the page.
  var info = (window.codeservice = window.codeservice || {});
  info.device = { state: "starting", codes: 0, t: null, makeMs: [], signMs: [], drawMs: [] };

  function message(name, values) {
    var text = data["msg" + name] || "";
    Object.keys(values || {}).forEach(function (key) {
      text = text.replace("{" + key + "}", String(values[key]));
    });
    return text;
  }

  function setState(state) {
    info.device.state = state;
    app.setAttribute("data-device-state", state);
  }

  function capable() {
    return Boolean(
      window.isSecureContext && window.crypto && crypto.subtle && window.indexedDB &&
      navigator.serviceWorker && window.Promise && window.TextEncoder
    );
  }

  // -- the service's clock -------------------------------------------------

  function offsetMs() {
    return device && typeof device.offsetMs === "number" ? device.offsetMs : 0;
  }

  function serviceNowMs() {
    return Date.now() + offsetMs();
  }

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function timeOfDay(date) {
    return pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }

  function dateAndTime(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " +
      pad(date.getHours()) + ":" + pad(date.getMinutes());
  }

  // -- IndexedDB ------------------------------------------------------------

  function openDb() {
    return new Promise(function (resolve, reject) {
      var request = indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = function () {
        request.result.createObjectStore(STORE);
      };
      request.onsuccess = function () {
        resolve(request.result);
      };
      request.onerror = function () {
        reject(request.error);
      };
    });
  }

  function transact(mode, work) {
    return openDb().then(function (db) {
      return new Promise(function (resolve, reject) {
        var tx = db.transaction(STORE, mode);
        var request = work(tx.objectStore(STORE));
        tx.oncomplete = function () {
          db.close();
          resolve(request.result);
        };
        tx.onerror = tx.onabort = function () {
          db.close();
          reject(tx.error);
        };
      });
    });
  }

  function load() {
    return transact("readonly", function (store) {
      return store.get(RECORD);
    });
  }

  function save(record) {
    return transact("readwrite", function (store) {
      return store.put(record, RECORD);
    });
  }

  function forget() {
    device = null;
    current = null;
    return transact("readwrite", function (store) {
      return store.delete(RECORD);
    });
  }

  // -- enrolment and credentials ---------------------------------------------

  function post(url, body) {
    var init = { method: "POST", credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init);
  }

  /** The service's answer {device_id, credential, expires_at, server_time}, checked; null if not that. */
  function readCredential(response) {
    var receivedAt = Date.now();
    return response.json().then(function (body) {
      if (!body || typeof body.device_id !== "string" || typeof body.expires_at !== "number" ||
          typeof body.server_time !== "number" || !RSD.fromBase64url(body.credential)) {
        return null;
      }
      return {
        deviceId: body.device_id,
        credential: body.credential,
        expiresAt: body.expires_at,
        issuedAt: body.server_time,
        offsetMs: body.server_time * 1000 - receivedAt
      };
    });
  }

  function who() {
    var name = document.getElementById("masked-name");
    var category = document.getElementById("category");
    return { maskedName: name ? name.textContent : "", category: category ? category.textContent : "" };
  }

  function keep(answer, keys) {
    var record = {
      owner: data.owner,
      keys: keys,
      deviceId: answer.deviceId,
      credential: answer.credential,
      expiresAt: answer.expiresAt,
      issuedAt: answer.issuedAt,
      offsetMs: answer.offsetMs,
      maskedName: who().maskedName,
      category: who().category
    };
    return save(record).then(function () {
      device = record;
      current = null;
      return record;
    });
  }

  function enrol() {
    return crypto.subtle.generateKey(ALGORITHM, false, ["sign", "verify"]).then(function (keys) {
      return crypto.subtle.exportKey("jwk", keys.publicKey).then(function (jwk) {
        return post(data.devicesApi, { public_key: jwk }).then(function (response) {
          if (response.status !== 201) {
            return answered(response);
          }
          return readCredential(response).then(function (answer) {
            return answer ? keep(answer, keys) : null;
          });
        });
      });
    });
  }

  function renewCredential() {
    var url = data.devicesApi + "/" + encodeURIComponent(device.deviceId) + "/credential";
    return post(url).then(function (response) {
      if (response.status === 404) {
        // Withdrawn, or unknown to the service: a new key, enrolled anew.
        return forget().then(enrol);
      }
      if (response.status !== 200) {
        return answered(response);
      }
      return readCredential(response).then(function (answer) {
        return answer ? keep(answer, device.keys) : null;
      });
    });
  }

  /** A refusal: 403 (codes withdrawn) forgets the device; others leave it as it is. */
  function answered(response) {
    if (response.status === 403) {
      return forget().then(function () {
        return null;
      });
    }
    return null;
  }

  function pastHalfLife(record) {
    var now = serviceNowMs() / 1000;
    return now >= record.issuedAt + (record.expiresAt - record.issuedAt) / 2;
  }

  /** Online: enrol, or renew the credential when due. Never rejects. */
  function contact() {
    if (shell || !usable || Date.now() < nextContact) {
      return Promise.resolve();
    }
    nextContact = Date.now() + FETCH_RETRY_MS;
    var work = !device ? enrol() : pastHalfLife(device) ? renewCredential() : Promise.resolve();
    return work.then(
      function () {
        offline = false;
      },
      function (error) {
        offline = error instanceof TypeError && navigator.onLine === false ? true : offline;
      }
    );
  }

  // -- the code on screen -----------------------------------------------------

  function drawQr(text) {
    var code = qrcode(0, "M");
    code.addData(text, "Alphanumeric");
    code.make();
    var count = code.getModuleCount();
    var quiet = 4;
    var size = count + 2 * quiet;
    var path = "";
    for (var row = 0; row < count; row++) {
      for (var col = 0; col < count; col++) {
        if (code.isDark(row, col)) {
          var run = 1;
          while (col + run < count && code.isDark(row, col + run)) {
            run++;
          }
          path += "M" + (col + quiet) + " " + (row + quiet) + "h" + run + "v1h-" + run + "z";
          col += run - 1;
        }
      }
    }
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 " + size + " " + size);
    svg.setAttribute("shape-rendering", "crispEdges");
    svg.setAttribute("data-version", String((count - 17) / 4));
    var background = document.createElementNS(ns, "rect");
    background.setAttribute("width", String(size));
    background.setAttribute("height", String(size));
    background.setAttribute("fill", "#fff");
    var modules = document.createElementNS(ns, "path");
    modules.setAttribute("d", path);
    modules.setAttribute("fill", "#000");
    svg.appendChild(background);
    svg.appendChild(modules);
    while (qr.firstChild) {
      qr.removeChild(qr.firstChild);
    }
    qr.appendChild(svg);
  }

  function makeCode() {
    if (making || !device) {
      return pending || Promise.resolve();
    }
    making = true;
    var t = Math.floor(serviceNowMs() / 1000);
    var started = performance.now();
    var signed = started;
    var credential = RSD.fromBase64url(device.credential);
    pending = RSD.deviceCode(credential, t, function (bytes) {
      return crypto.subtle.sign(SIGNING, device.keys.privateKey, bytes).then(function (signature) {
        signed = performance.now();
        return signature;
      });
    })
      .then(function (text) {
        drawQr(text);
        var done = performance.now();
        current = { t: t, text: text };
        info.device.codes += 1;
        info.device.t = t;
        info.device.text = text;
        info.device.makeMs.push(done - started);
        info.device.signMs.push(signed - started);
        info.device.drawMs.push(done - signed);
        app.setAttribute("data-code-t", String(t));
      })
      .catch(function () {
        current = null;
      })
      .then(function () {
        making = false;
        pending = null;
        render();
      });
    return pending;
  }

  /** Make a code now (for measuring): resolves to the milliseconds it took, once it is on screen. */
  info.device.make = function () {
    return (making ? pending : makeCode()).then(function () {
      return makeCode();
    }).then(function () {
      return info.device.makeMs[info.device.makeMs.length - 1];
    });
  };

  function render() {
    var nowMs = serviceNowMs();
    clock.hidden = false;
    clock.textContent = timeOfDay(new Date(nowMs));
    if (!active || !device) {
      return;
    }
    var now = nowMs / 1000;
    var expired = now > device.expiresAt;
    frame.classList.toggle("expired", expired);
    overlay.hidden = !expired;
    if (expired) {
      if (qr.firstChild) {
        while (qr.firstChild) {
          qr.removeChild(qr.firstChild);
        }
        current = null;
      }
      overlay.textContent = message("DeviceExpired");
      countdown.textContent = "";
      setText(message("DeviceExpired"), "offline");
      setState("expired");
      return;
    }
    setState(offline ? "offline" : "device");
    if (current) {
      var left = Math.max(0, CODE_INTERVAL_S - Math.floor(now - current.t));
      countdown.textContent = message("DeviceRenewsIn", { seconds: left });
    }
    setText(offline ? message("DeviceOffline", { until: dateAndTime(new Date(device.expiresAt * 1000)) }) : "",
      offline ? "offline" : null);
  }

  function setText(text, kind) {
    if (statusText.textContent !== text) {
      statusText.textContent = text;
    }
    if (kind) {
      statusBox.setAttribute("data-kind", kind);
    } else {
      statusBox.removeAttribute("data-kind");
    }
  }

  function tick() {
    if (active && device) {
      var now = serviceNowMs() / 1000;
      if (!offline && pastHalfLife(device)) {
        contact();
      }
      if (now <= device.expiresAt && (!current || now - current.t >= CODE_INTERVAL_S)) {
        makeCode();
      }
    }
    render();
  }

  // -- start -------------------------------------------------------------------

  function showWho(record) {
    var name = document.getElementById("masked-name");
    var category = document.getElementById("category");
    if (name && !name.textContent) {
      name.textContent = record.maskedName || "";
    }
    if (category && !category.textContent && record.category) {
      category.textContent = record.category;
      category.hidden = false;
    }
  }

  function deviceMode() {
    // The online code of code.js stops; this script owns the QR from now on.
    if (info.stop) {
      info.stop();
    }
    if (refreshForm) {
      refreshForm.hidden = true;
    }
    active = true;
    showWho(device);
    tick();
  }

  function unsupported() {
    setState("unsupported");
    if (note) {
      note.textContent = message("DeviceUnsupported");
      note.hidden = false;
    }
    if (hint && !shell) {
      hint.hidden = true;
    }
  }

  function measureOffset() {
    // The page's own server time (whole seconds) corrects a stale offset.
    var pageOffset = Number(data.serverNow) * 1000 - Date.now();
    if (device && !isNaN(pageOffset) && Math.abs(pageOffset - device.offsetMs) > SKEW_TOLERANCE_MS) {
      device.offsetMs = pageOffset;
      save(device);
    }
  }

  function start() {
    if (!capable()) {
      unsupported();
      return;
    }
    // The shell is the worker's own answer: it is registered already.
    var ready = shell ? Promise.resolve() : navigator.serviceWorker
      .register(data.worker, { scope: data.workerScope })
      .then(function (registration) {
        if (!registration || typeof registration.scope !== "string") {
          throw new Error("no service worker"); // blocked (by policy, or a test's browser)
        }
        return navigator.serviceWorker.ready;
      });
    ready
      .then(load)
      .then(function (record) {
        usable = true;
        device = record || null;
        if (!shell && device && device.owner !== data.owner) {
          // Another resident's phone state: never shown to this one.
          return forget();
        }
        return null;
      })
      .then(function () {
        if (!shell) {
          measureOffset();
          return contact();
        }
        return null;
      })
      .then(function () {
        if (device) {
          deviceMode();
        } else if (shell) {
          setState("none");
          overlay.hidden = false;
          overlay.textContent = message("DeviceNone");
          setText(message("DeviceNone"), "offline");
        } else {
          setState("online");
        }
      })
      .catch(function () {
        if (!shell) {
          unsupported();
        }
      });
    window.setInterval(tick, 1000);
    render();
  }

  window.addEventListener("online", function () {
    offline = shell;
    nextContact = 0;
    if (!shell) {
      contact().then(render);
    }
  });
  window.addEventListener("offline", function () {
    offline = true;
    render();
  });

  start();
})();
