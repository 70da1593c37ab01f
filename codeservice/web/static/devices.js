/* The devices page: the resident's enrolled phones (GET /api/v1/me/devices),
 * each with a button that withdraws it (DELETE /api/v1/me/devices/{id}).
 *
 * The phone this page runs on is marked (its device id is in IndexedDB, as
 * static/device.js keeps it); withdrawing it also forgets its key and
 * credential here, so /code enrols a new key on its next online visit.
 * Every value from the service is set as text, never as markup.
 */
(function () {
  "use strict";

  var app = document.getElementById("devices-app");
  var list = document.getElementById("devices");
  var status = document.getElementById("devices-status");
  if (!app || !list || !status) {
    return;
  }
  var data = app.dataset;
  var DB_NAME = "codeservice-device";
  var STORE = "device";
  var RECORD = "this-phone";

  function message(name, values) {
    var text = data["msg" + name] || "";
    Object.keys(values || {}).forEach(function (key) {
      text = text.replace("{" + key + "}", String(values[key]));
    });
    return text;
  }

  /** Run work(store) on this phone's device record store; resolves to its result, or null without one. */
  function withStore(mode, work) {
    return new Promise(function (resolve) {
      if (!window.indexedDB) {
        resolve(null);
        return;
      }
      var open = indexedDB.open(DB_NAME, 1);
      open.onupgradeneeded = function () {
        open.result.createObjectStore(STORE);
      };
      open.onerror = function () {
        resolve(null);
      };
      open.onsuccess = function () {
        var db = open.result;
        var tx = db.transaction(STORE, mode);
        var request = work(tx.objectStore(STORE));
        tx.oncomplete = function () {
          db.close();
          resolve(request.result || null);
        };
        tx.onerror = tx.onabort = function () {
          db.close();
          resolve(null);
        };
      };
    });
  }

  function thisPhone() {
    return withStore("readonly", function (store) {
      return store.get(RECORD);
    }).then(function (record) {
      return record && typeof record.deviceId === "string" ? record.deviceId : null;
    });
  }

  function forgetThisPhone() {
    return withStore("readwrite", function (store) {
      return store.delete(RECORD);
    });
  }

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function when(value) {
    var date = new Date(typeof value === "number" ? value * 1000 : value);
    if (isNaN(date.getTime())) {
      return String(value);
    }
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " +
      pad(date.getHours()) + ":" + pad(date.getMinutes());
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function show(devices, mine) {
    while (list.firstChild) {
      list.removeChild(list.firstChild);
    }
    status.textContent = devices.length ? "" : message("Empty");
    devices.forEach(function (device) {
      var item = element("li", "device " + (device.active ? "device-active" : "device-withdrawn"));
      item.setAttribute("data-device-id", device.device_id);
      var head = element("p", "device-head");
      head.appendChild(element("span", "device-state", device.active ? message("Active") : message("Withdrawn")));
      if (device.device_id === mine) {
        head.appendChild(element("span", "badge", message("ThisPhone")));
      }
      item.appendChild(head);
      item.appendChild(element("p", "device-when", message("Enrolled", { date: when(device.created_at) })));
      if (device.active) {
        var button = element("button", "button", message("Withdraw"));
        button.type = "button";
        button.addEventListener("click", function () {
          withdraw(device.device_id, device.device_id === mine, button);
        });
        item.appendChild(button);
      }
      list.appendChild(item);
    });
  }

  function refresh() {
    return Promise.all([
      fetch(data.api, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } }),
      thisPhone()
    ])
      .then(function (results) {
        var response = results[0];
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json().then(function (body) {
          if (!body || !Array.isArray(body.devices)) {
            throw new Error("not a device list");
          }
          show(body.devices.filter(function (device) {
            return device && typeof device.device_id === "string";
          }), results[1]);
        });
      })
      .catch(function () {
        status.textContent = message("Error");
      });
  }

  function withdraw(deviceId, mine, button) {
    button.disabled = true;
    fetch(data.api + "/" + encodeURIComponent(deviceId), { method: "DELETE", credentials: "same-origin" })
      .then(function (response) {
        if (response.status !== 204 && response.status !== 404) {
          throw new Error("HTTP " + response.status);
        }
        return mine ? forgetThisPhone() : null;
      })
      .then(refresh)
      .then(function () {
        status.textContent = message("WithdrawnDone");
        app.setAttribute("data-withdrawn", deviceId);
      })
      .catch(function () {
        button.disabled = false;
        status.textContent = message("Error");
      });
  }

  refresh();
})();
