/* The live code on /code: count down, renew in place, say what is wrong.
 *
 * The page arrives with a code already rendered (it works without this
 * script). This script then asks GET /api/v1/code for the next code once the
 * current one reaches its refresh_after time, and swaps the QR in place: no
 * page reload. Times are the server's (seconds since the epoch); the phone's
 * clock may be off, so the offset to the server's clock is measured.
 *
 * - Offline (navigator.onLine false, or a fetch that fails at the network
 *   level): the current code stays on screen while it is valid, with a
 *   message; once expired it is greyed out, "offline - code expired". Renewal
 *   resumes at once when the browser comes back online.
 * - 401 (the session ended): a message and a link to log in again; renewal
 *   stops, the code shown stays until it expires.
 * - 403 (codes withdrawn): the code is greyed out at once.
 * - Other failures: retried with a growing delay (2 s up to 30 s).
 */
(function () {
  "use strict";

  var app = document.getElementById("code-app");
  var qr = document.getElementById("qr");
  if (!app || !qr || !app.dataset.api) {
    return;
  }
  var frame = document.getElementById("qr-frame");
  var overlay = document.getElementById("qr-overlay");
  var countdown = document.getElementById("countdown");
  var status = document.getElementById("status");
  var statusText = document.getElementById("status-text");
  var loginLink = document.getElementById("login-link");
  var refreshForm = document.getElementById("refresh-form");
  var refreshButton = document.getElementById("refresh");
  var data = app.dataset;

  var MIN_RENEWAL_INTERVAL_MS = 2000;
  var MAX_RETRY_DELAY_S = 30;
  // Re-measure the clock offset only when it moved by more than this: the
  // Date header has one-second resolution.
  var SKEW_TOLERANCE_S = 2;

  var state = {
    expiresAt: Number(data.expiresAt),
    refreshAfter: Number(data.refreshAfter),
    skew: Number(data.serverNow) - Date.now() / 1000,
    inFlight: false,
    manual: false, // the resident pressed the button: say that it is working
    notBefore: 0, // Date.now() before which no automatic renewal is tried
    failures: 0,
    stopped: false, // after 401 or 403: nothing more to fetch
    problem: navigator.onLine === false ? "offline" : null
  };

  // For people and tests looking at the page: how many codes replaced the first.
  var info = (window.codeservice = { renewals: 0, lastRenewalAt: null });

  function message(name, seconds) {
    var text = data["msg" + name] || "";
    return seconds === undefined ? text : text.replace("{seconds}", String(seconds));
  }

  function serverNow() {
    return Date.now() / 1000 + state.skew;
  }

  function render() {
    if (state.handedOver) {
      return;
    }
    var now = serverNow();
    var left = Math.max(0, Math.ceil(state.expiresAt - now));
    var expired = left <= 0;

    frame.classList.toggle("expired", expired);
    overlay.hidden = !expired;
    var expiredText = state.problem === "offline" ? message("OfflineExpired") : message("Expired");
    if (expired && overlay.textContent !== expiredText) {
      overlay.textContent = expiredText;
    }
    countdown.textContent = expired ? expiredText : message("ExpiresIn", left);

    var text = "";
    if (state.problem === "offline") {
      text = expired ? message("OfflineExpiredHelp") : message("Offline", left);
    } else if (state.problem === "retrying") {
      text = message("Retrying");
    } else if (state.problem === "session") {
      text = message("SessionExpired");
    } else if (state.problem === "revoked") {
      text = message("Revoked");
    } else if (state.inFlight && state.manual) {
      text = message("Refreshing");
    }
    if (statusText.textContent !== text) {
      statusText.textContent = text;
    }
    if (state.problem) {
      status.setAttribute("data-kind", state.problem);
    } else {
      status.removeAttribute("data-kind");
    }
    loginLink.hidden = state.problem !== "session";
    refreshButton.disabled = state.inFlight || state.problem === "revoked";
    if (state.problem === "session") {
      // The button now leads to the login page (a plain GET of /code redirects there).
      refreshButton.disabled = false;
    }
  }

  function parseSvg(text) {
    if (typeof text !== "string") {
      return null;
    }
    var doc = new DOMParser().parseFromString(text, "image/svg+xml");
    var root = doc.documentElement;
    if (!root || root.localName !== "svg" || doc.getElementsByTagName("parsererror").length) {
      return null;
    }
    return document.importNode(root, true);
  }

  function measureSkew(response) {
    var date = Date.parse(response.headers.get("Date") || "");
    if (!isNaN(date)) {
      var skew = date / 1000 - Date.now() / 1000;
      if (Math.abs(skew - state.skew) > SKEW_TOLERANCE_S) {
        state.skew = skew;
      }
    }
  }

  function apply(body, response) {
    var svg = parseSvg(body && body.qr_svg);
    if (!svg || typeof body.expires_at !== "number" || typeof body.refresh_after !== "number") {
      failed("retrying");
      return;
    }
    measureSkew(response);
    while (qr.firstChild) {
      qr.removeChild(qr.firstChild);
    }
    qr.appendChild(svg);
    state.expiresAt = body.expires_at;
    state.refreshAfter = body.refresh_after;
    state.failures = 0;
    state.problem = null;
    state.notBefore = Date.now() + MIN_RENEWAL_INTERVAL_MS;
    info.renewals += 1;
    info.lastRenewalAt = Date.now();
    app.setAttribute("data-renewals", String(info.renewals));
  }

  function failed(problem) {
    state.failures += 1;
    state.problem = problem;
    var delay = Math.min(MAX_RETRY_DELAY_S, Math.pow(2, state.failures));
    state.notBefore = Date.now() + delay * 1000;
  }

  function stop(problem) {
    state.stopped = true;
    state.problem = problem;
    if (problem === "revoked") {
      state.expiresAt = Math.min(state.expiresAt, serverNow());
    }
  }

  function renew(manual) {
    if (state.inFlight || state.stopped) {
      return;
    }
    state.manual = manual === true;
    if (navigator.onLine === false) {
      failed("offline");
      render();
      return;
    }
    state.inFlight = true;
    render();
    fetch(data.api, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json" }
    })
      .then(function (response) {
        if (response.ok) {
          return response.json().then(function (body) {
            apply(body, response);
          });
        }
        if (response.status === 401) {
          stop("session");
        } else if (response.status === 403) {
          stop("revoked");
        } else {
          failed("retrying");
        }
        return null;
      })
      .catch(function (error) {
        // A TypeError is a network failure: offline as far as the resident can tell.
        failed(error instanceof TypeError ? "offline" : "retrying");
      })
      .then(function () {
        state.inFlight = false;
        render();
      });
  }

  function tick() {
    if (!state.stopped && !state.inFlight && serverNow() >= state.refreshAfter && Date.now() >= state.notBefore) {
      renew();
    }
    render();
  }

  refreshForm.addEventListener("submit", function (event) {
    if (state.stopped) {
      return; // let the plain GET go: it shows the login page or the revocation
    }
    event.preventDefault();
    state.notBefore = 0;
    renew(true);
  });

  window.addEventListener("online", function () {
    if (state.problem === "offline") {
      state.problem = null;
    }
    state.notBefore = 0;
    state.failures = 0;
    renew();
  });

  window.addEventListener("offline", function () {
    if (!state.stopped) {
      state.problem = "offline";
    }
    render();
  });

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") {
      tick();
    }
  });

  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      tick();
    }
  });

  var timer = window.setInterval(tick, 1000);
  tick();

  // device.js takes the QR over once this phone makes its own device codes.
  info.stop = function () {
    state.stopped = true;
    state.handedOver = true;
    window.clearInterval(timer);
  };
})();
