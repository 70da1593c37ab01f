/* Contract section 9's device code, made in the browser: `RSD1:` + Base45 of
 * a COSE_Sign1 whose payload is {1: the credential as issued, 2: t}.
 *
 * Pure and small, written to mirror the Python side byte for byte:
 * cbor() is verifiers/cbor.py's dumps (RFC 8949 4.2.1 core deterministic
 * encoding, of only what a device code needs: unsigned and negative
 * integers, byte and text strings, arrays, maps, tags, true/false/null),
 * base45() is verifiers/base45.py's b45encode (RFC 9285), deviceCode() is
 * verifiers/offline_codes.py's device_code. tests/test_browser_device.py
 * compares their bytes.
 *
 * Values: a safe integer is a CBOR integer, a Uint8Array a byte string, a
 * string a text string, an Array an array, a Map a map (its keys may be
 * integers), new RSD.Tag(n, value) a tag. Anything else throws.
 */
(function (global) {
  "use strict";

  var BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
  var PREFIX = "RSD1:";
  var TWO_32 = 0x100000000;
  var utf8 = new TextEncoder();

  function Tag(tag, value) {
    this.tag = tag;
    this.value = value;
  }

  function head(major, n, out) {
    var top = major << 5;
    if (n < 24) {
      out.push(top | n);
    } else if (n < 0x100) {
      out.push(top | 24, n);
    } else if (n < 0x10000) {
      out.push(top | 25, n >>> 8, n & 0xff);
    } else if (n < TWO_32) {
      out.push(top | 26, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
    } else {
      var high = Math.floor(n / TWO_32);
      var low = n % TWO_32;
      out.push(top | 27, high >>> 24, (high >>> 16) & 0xff, (high >>> 8) & 0xff, high & 0xff,
        low >>> 24, (low >>> 16) & 0xff, (low >>> 8) & 0xff, low & 0xff);
    }
  }

  function pushBytes(out, bytes) {
    for (var i = 0; i < bytes.length; i++) {
      out.push(bytes[i]);
    }
  }

  function compareBytes(a, b) {
    var length = Math.min(a.length, b.length);
    for (var i = 0; i < length; i++) {
      if (a[i] !== b[i]) {
        return a[i] - b[i];
      }
    }
    return a.length - b.length;
  }

  function encodeInto(value, out) {
    if (value === false || value === true || value === null) {
      out.push(value === false ? 0xf4 : value === true ? 0xf5 : 0xf6);
    } else if (typeof value === "number") {
      if (!Number.isSafeInteger(value)) {
        throw new TypeError("CBOR: only safe integers are encoded, not " + value);
      }
      if (value >= 0) {
        head(0, value, out);
      } else {
        head(1, -1 - value, out);
      }
    } else if (value instanceof Uint8Array) {
      head(2, value.length, out);
      pushBytes(out, value);
    } else if (typeof value === "string") {
      var text = utf8.encode(value);
      head(3, text.length, out);
      pushBytes(out, text);
    } else if (Array.isArray(value)) {
      head(4, value.length, out);
      value.forEach(function (item) {
        encodeInto(item, out);
      });
    } else if (value instanceof Map) {
      // Deterministic: the members sorted by their keys' encoded bytes.
      var members = [];
      value.forEach(function (item, key) {
        members.push([cbor(key), cbor(item)]);
      });
      members.sort(function (a, b) {
        return compareBytes(a[0], b[0]);
      });
      head(5, members.length, out);
      members.forEach(function (member) {
        pushBytes(out, member[0]);
        pushBytes(out, member[1]);
      });
    } else if (value instanceof Tag) {
      head(6, value.tag, out);
      encodeInto(value.value, out);
    } else {
      throw new TypeError("CBOR: cannot encode " + Object.prototype.toString.call(value));
    }
  }

  /** The deterministic CBOR encoding of value, as a Uint8Array. */
  function cbor(value) {
    var out = [];
    encodeInto(value, out);
    return Uint8Array.from(out);
  }

  /** Base45 (RFC 9285 section 4) of bytes. */
  function base45(bytes) {
    var out = "";
    var i = 0;
    for (; i + 1 < bytes.length; i += 2) {
      var n = bytes[i] * 256 + bytes[i + 1];
      out += BASE45[n % 45] + BASE45[Math.floor(n / 45) % 45] + BASE45[Math.floor(n / 2025)];
    }
    if (i < bytes.length) {
      out += BASE45[bytes[i] % 45] + BASE45[Math.floor(bytes[i] / 45)];
    }
    return out;
  }

  /** RFC 9052 4.4: ["Signature1", protected, h'', payload]. */
  function sigStructure(protectedBytes, payload) {
    return cbor(["Signature1", protectedBytes, new Uint8Array(0), payload]);
  }

  /**
   * The device code for credential (the bytes as issued) at t (seconds on
   * the service's clock). sign(bytes) returns (a promise of) the 64-byte
   * ES256 signature r||s over them: WebCrypto's ECDSA output as it is.
   * Resolves to the code's text.
   */
  function deviceCode(credential, t, sign) {
    var protectedBytes = cbor(new Map([[1, -7]]));
    var payload = cbor(new Map([[1, credential], [2, t]]));
    return Promise.resolve(sign(sigStructure(protectedBytes, payload))).then(function (signature) {
      var sign1 = new Tag(18, [protectedBytes, new Map(), payload, new Uint8Array(signature)]);
      return PREFIX + base45(cbor(sign1));
    });
  }

  /** The bytes of unpadded base64url text (the service's `credential`); null if it is not that. */
  function fromBase64url(text) {
    if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
      return null;
    }
    var binary = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
    return Uint8Array.from(binary, function (ch) {
      return ch.charCodeAt(0);
    });
  }

  global.RSD = {
    Tag: Tag,
    cbor: cbor,
    base45: base45,
    sigStructure: sigStructure,
    deviceCode: deviceCode,
    fromBase64url: fromBase64url
  };
})(self);
