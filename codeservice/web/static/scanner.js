/* The browser scanner (/scanner) for venue staff.
 *
 * The scene and its context are chosen in the page (kept in sessionStorage
 * so that a reload keeps them; the scanner key is never in the page at all:
 * the session cookie is HttpOnly). Codes come from the rear camera (the
 * browser's BarcodeDetector where it reads QR codes, else the vendored jsQR
 * on a downscaled frame) or from a hardware reader typing into the page and
 * pressing Enter (a keyboard wedge). Each goes to POST /scanner/verify with
 * the session's CSRF token; the answer fills the screen (colour, icon and
 * words), is announced by the live region around it, and plays a short tone.
 * The same text seen again by the camera within DUPLICATE_MS of its last
 * sighting is not sent again; dismissing the answer ("Scan next", a tap,
 * Escape) forgets it, so a deliberate rescan is sent. Online only: with no
 * network the page says so and points to the offline gate loop.
 */
(function () {
  "use strict";

  var DUPLICATE_MS = 3000;
  var ANSWER_MS = { ok: 3000, refused: 6000 };
  var FRAME_MS = 150;
  var MAX_FRAME_WIDTH = 640;
  var SCENE_KEY = "codeservice-scanner-scene";

  var app = document.getElementById("scanner-app");
  if (!app) return;
  var msg = function (name) { return app.getAttribute("data-msg-" + name) || ""; };
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var verifyUrl = app.getAttribute("data-verify");
  var storageKey = SCENE_KEY + ":" + app.getAttribute("data-scanner");

  var sceneForm = document.getElementById("scene-form");
  var sceneSelect = document.getElementById("scene");
  var scanView = document.getElementById("scan-view");
  var scanTitle = document.getElementById("scan-title");
  var status = document.getElementById("scan-status");
  var wedgeForm = document.getElementById("wedge-form");
  var wedge = document.getElementById("wedge");
  var countsEl = document.getElementById("counts");
  var offlineEl = document.getElementById("offline");
  var answerEl = document.getElementById("answer");
  var nextButton = document.getElementById("answer-next");
  var cameraBox = document.getElementById("camera");
  var video = document.getElementById("video");
  var cameraToggle = document.getElementById("camera-toggle");

  var scene = null;       // {name, label, context}
  var busy = false;
  var answerTimer = null;
  var lastText = null;    // the camera's last decoded text, and when it was last seen
  var lastSeen = 0;
  var stream = null;
  var detector = null;
  var canvas = document.createElement("canvas");
  var audio = null;

  // -- the scene ---------------------------------------------------------------

  function showContextFields() {
    var fieldsets = sceneForm.querySelectorAll("fieldset.context");
    for (var i = 0; i < fieldsets.length; i++) {
      var on = fieldsets[i].getAttribute("data-scene") === sceneSelect.value;
      fieldsets[i].hidden = !on;
      fieldsets[i].disabled = !on;
    }
  }

  function readContext() {
    var fieldset = sceneForm.querySelector('fieldset.context[data-scene="' + sceneSelect.value + '"]');
    var context = {};
    if (!fieldset) return context;
    var json = fieldset.querySelector("[data-json]");
    if (json) {
      try {
        var parsed = JSON.parse(json.value || "{}");
        return parsed && typeof parsed === "object" && !Array.isArray(parsed) ? parsed : null;
      } catch (e) {
        json.setAttribute("aria-invalid", "true");
        return null;
      }
    }
    var inputs = fieldset.querySelectorAll("[data-key]");
    for (var i = 0; i < inputs.length; i++) {
      var value = inputs[i].value.trim();
      if (!value) continue;
      context[inputs[i].getAttribute("data-key")] =
        inputs[i].getAttribute("data-type") === "integer" ? parseInt(value, 10) : value;
    }
    return context;
  }

  function startScanning(chosen) {
    scene = chosen;
    try { sessionStorage.setItem(storageKey, JSON.stringify(chosen)); } catch (e) { /* private mode */ }
    var parts = [chosen.label];
    for (var name in chosen.context) {
      if (Object.prototype.hasOwnProperty.call(chosen.context, name) && typeof chosen.context[name] !== "object") {
        parts.push(String(chosen.context[name]));
      }
    }
    scanTitle.textContent = parts.join(" · ");
    sceneForm.hidden = true;
    scanView.hidden = false;
    setStatus(msg("ready"));
    wedge.focus();
  }

  sceneSelect.addEventListener("change", showContextFields);
  sceneForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var required = sceneForm.querySelectorAll("fieldset:not([disabled]) [required]");
    for (var i = 0; i < required.length; i++) {
      if (!required[i].value.trim()) {
        required[i].setAttribute("aria-invalid", "true");
        required[i].focus();
        return;
      }
      required[i].removeAttribute("aria-invalid");
    }
    var context = readContext();
    if (context === null) return;
    unlockAudio();
    var option = sceneSelect.options[sceneSelect.selectedIndex];
    startScanning({ name: sceneSelect.value, label: option.textContent, context: context });
    startCamera();
  });
  document.getElementById("change-scene").addEventListener("click", function () {
    stopCamera();
    clearAnswer();
    try { sessionStorage.removeItem(storageKey); } catch (e) { /* private mode */ }
    scanView.hidden = true;
    sceneForm.hidden = false;
    sceneSelect.focus();
  });

  // -- the answer --------------------------------------------------------------

  function setStatus(text) { status.textContent = text; }

  function fillList(list, items) {
    list.textContent = "";
    (items || []).forEach(function (item) {
      var dt = document.createElement("dt");
      dt.textContent = item.label;
      var dd = document.createElement("dd");
      dd.textContent = item.value;
      list.appendChild(dt);
      list.appendChild(dd);
    });
  }

  function showAnswer(answer) {
    clearTimeout(answerTimer);
    answerEl.className = "answer " + (answer.ok ? "answer-ok" : "answer-refused");
    answerEl.querySelector(".answer-icon").textContent = answer.ok ? "\u2714" : "\u2716";
    answerEl.querySelector(".answer-headline").textContent = answer.headline;
    answerEl.querySelector(".answer-words").textContent = answer.words;
    var sceneWords = answerEl.querySelector(".answer-scene");
    sceneWords.textContent = answer.scene_words || "";
    sceneWords.hidden = !answer.scene_words;
    var check = answerEl.querySelector(".answer-check");
    check.hidden = !answer.check_id;
    if (answer.check_id) {
      check.querySelector(".answer-check-title").textContent = answer.check_id_words;
      fillList(check.querySelector(".answer-check-list"), answer.check_id);
    }
    fillList(answerEl.querySelector(".answer-detail"), answer.detail);
    answerEl.hidden = false;
    document.body.classList.add("answering");
    tone(answer.ok);
    // A paper code's hint stays until staff dismiss it: they are comparing it with the ID card.
    if (!answer.check_id) {
      answerTimer = setTimeout(function () { clearAnswer(); }, answer.ok ? ANSWER_MS.ok : ANSWER_MS.refused);
    }
  }

  function clearAnswer(deliberate) {
    clearTimeout(answerTimer);
    answerEl.hidden = true;
    document.body.classList.remove("answering");
    if (deliberate) lastText = null;  // the same code shown again now is a deliberate rescan
    if (!scanView.hidden) wedge.focus();
  }

  nextButton.addEventListener("click", function () { clearAnswer(true); });
  answerEl.addEventListener("click", function (event) {
    if (event.target !== nextButton) clearAnswer(true);
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !answerEl.hidden) clearAnswer(true);
  });

  function showCounts(counts) {
    if (!counts) return;
    countsEl.textContent = msg("counts")
      .replace("{accepted}", String(counts.accepted))
      .replace("{refused}", String(counts.refused));
  }

  // -- tones (WebAudio): one high beep accepted, two low ones refused -------------

  function unlockAudio() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!audio && Context) {
      try { audio = new Context(); } catch (e) { audio = null; }
    }
    if (audio && audio.state === "suspended") audio.resume();
  }

  function beep(frequency, start, length) {
    var oscillator = audio.createOscillator();
    var gain = audio.createGain();
    oscillator.type = "sine";
    oscillator.frequency.value = frequency;
    gain.gain.setValueAtTime(0.2, audio.currentTime + start);
    gain.gain.setValueAtTime(0, audio.currentTime + start + length);
    oscillator.connect(gain);
    gain.connect(audio.destination);
    oscillator.start(audio.currentTime + start);
    oscillator.stop(audio.currentTime + start + length + 0.02);
  }

  function tone(ok) {
    if (!audio) return;
    try {
      if (ok) {
        beep(880, 0, 0.15);
      } else {
        beep(220, 0, 0.15);
        beep(220, 0.22, 0.15);
      }
    } catch (e) { /* no sound is no reason to stop scanning */ }
  }

  // -- verification --------------------------------------------------------------

  function setOffline(offline) {
    offlineEl.hidden = !offline;
    document.body.classList.toggle("offline", offline);
  }

  function submit(text, source) {
    // Only a line end goes: a Base45 code (RSD1:, RSP1:) may end with a space.
    text = String(text).replace(/[\r\n]+$/, "");
    if (!text.trim() || busy || !scene) return;
    if (source === "camera") {
      var now = Date.now();
      var repeat = text === lastText && now - lastSeen < DUPLICATE_MS;
      lastText = text;
      lastSeen = now;
      if (repeat) return;
    }
    if (!navigator.onLine) {
      setOffline(true);
      tone(false);
      return;
    }
    busy = true;
    setStatus(msg("checking"));
    fetch(verifyUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, "Accept": "application/json" },
      body: JSON.stringify({ token: text, scene: scene.name, context: scene.context }),
    }).then(function (response) {
      if (response.status === 401) {
        // The scanner was revoked, or its session ended: back to the sign-in page.
        window.location.reload();
        return null;
      }
      return response.json().then(function (body) {
        if (!response.ok || !body.answer) throw new Error((body.error && body.error.message) || "HTTP " + response.status);
        setOffline(false);
        showAnswer(body.answer);
        showCounts(body.counts);
        setStatus(msg("ready"));
      });
    }).catch(function (error) {
      if (!navigator.onLine || error instanceof TypeError) {
        setOffline(true);
        setStatus(msg("ready"));
      } else {
        setStatus(msg("error"));
      }
      tone(false);
    }).then(function () {
      busy = false;
    });
  }

  // The keyboard wedge: the reader types into the focused field, then Enter.
  wedgeForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = wedge.value;
    wedge.value = "";
    submit(text, "reader");
  });
  // Keys typed while the field has lost focus (a tap elsewhere) still reach it.
  document.addEventListener("keydown", function (event) {
    if (scanView.hidden || event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target === wedge || (target && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(target.tagName))) return;
    if (event.key.length === 1) {
      wedge.focus();
    } else if (event.key === "Enter" && wedge.value) {
      event.preventDefault();
      wedgeForm.requestSubmit ? wedgeForm.requestSubmit() : wedgeForm.dispatchEvent(new Event("submit"));
    }
  });

  window.addEventListener("offline", function () { setOffline(true); });
  window.addEventListener("online", function () { setOffline(false); });
  setOffline(!navigator.onLine);

  // -- the camera ------------------------------------------------------------------

  function setCameraButton() {
    cameraToggle.textContent = stream ? msg("camera-stop") : msg("camera-start");
    cameraToggle.setAttribute("aria-pressed", stream ? "true" : "false");
  }

  function startCamera() {
    if (stream || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      if (!stream) setStatus(msg("camera-none"));
      return;
    }
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
      .then(function (media) {
        stream = media;
        video.srcObject = media;
        cameraBox.hidden = false;
        setCameraButton();
        return video.play();
      })
      .then(function () {
        makeDetector();
        scheduleFrame();
      })
      .catch(function () {
        stopCamera();
        setStatus(msg("camera-none"));
      });
  }

  function stopCamera() {
    if (stream) stream.getTracks().forEach(function (track) { track.stop(); });
    stream = null;
    video.srcObject = null;
    cameraBox.hidden = true;
    setCameraButton();
  }

  cameraToggle.addEventListener("click", function () {
    unlockAudio();
    if (stream) stopCamera(); else startCamera();
  });

  function makeDetector() {
    detector = null;
    if (!("BarcodeDetector" in window)) return;
    window.BarcodeDetector.getSupportedFormats().then(function (formats) {
      if (formats.indexOf("qr_code") >= 0) detector = new window.BarcodeDetector({ formats: ["qr_code"] });
    }).catch(function () { detector = null; });
  }

  function scheduleFrame() {
    if (stream) setTimeout(readFrame, FRAME_MS);
  }

  function readFrame() {
    if (!stream || video.readyState < 2 || busy || document.hidden) {
      scheduleFrame();
      return;
    }
    if (detector) {
      detector.detect(video).then(function (codes) {
        if (codes.length) submit(codes[0].rawValue, "camera");
      }).catch(function () { detector = null; }).then(scheduleFrame);
      return;
    }
    if (typeof window.jsQR === "function") {
      var scale = Math.min(1, MAX_FRAME_WIDTH / (video.videoWidth || MAX_FRAME_WIDTH));
      var width = Math.max(1, Math.round(video.videoWidth * scale));
      var height = Math.max(1, Math.round(video.videoHeight * scale));
      canvas.width = width;
      canvas.height = height;
      var context = canvas.getContext("2d", { willReadFrequently: true });
      context.drawImage(video, 0, 0, width, height);
      var image = context.getImageData(0, 0, width, height);
      var found = window.jsQR(image.data, width, height, { inversionAttempts: "dontInvert" });
      if (found && found.data) submit(found.data, "camera");
    }
    scheduleFrame();
  }

  // -- start ---------------------------------------------------------------------

  showContextFields();
  var saved = null;
  try { saved = JSON.parse(sessionStorage.getItem(storageKey) || "null"); } catch (e) { saved = null; }
  var allowed = saved && Array.prototype.some.call(sceneSelect.options, function (o) { return o.value === saved.name; });
  if (allowed && saved.context && typeof saved.context === "object") {
    sceneSelect.value = saved.name;
    showContextFields();
    startScanning(saved);
  }
})();
