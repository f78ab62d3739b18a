// userauth passkeys (api.md §11): the only script of the pages. It drives WebAuthn through the
// JSON API: options arrive with binary members as base64url strings, and the browser's
// PublicKeyCredential goes back the same way. Without it every page still works with passwords.
"use strict";
(function () {
  if (!window.PublicKeyCredential || !navigator.credentials) {
    return;
  }

  function fromB64url(s) {
    var b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) {
      b64 += "=";
    }
    var bin = atob(b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) {
      out[i] = bin.charCodeAt(i);
    }
    return out.buffer;
  }

  function toB64url(buf) {
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) {
      bin += String.fromCharCode(bytes[i]);
    }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withBuffers(list) {
    return (list || []).map(function (c) {
      var copy = Object.assign({}, c);
      copy.id = fromB64url(c.id);
      return copy;
    });
  }

  function creationOptions(o) {
    var opts = Object.assign({}, o);
    opts.challenge = fromB64url(o.challenge);
    opts.user = Object.assign({}, o.user, { id: fromB64url(o.user.id) });
    opts.excludeCredentials = withBuffers(o.excludeCredentials);
    return opts;
  }

  function requestOptions(o) {
    var opts = Object.assign({}, o);
    opts.challenge = fromB64url(o.challenge);
    opts.allowCredentials = withBuffers(o.allowCredentials);
    return opts;
  }

  function credentialJson(cred) {
    var r = cred.response;
    var response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      response.userHandle = r.userHandle ? toB64url(r.userHandle) : null;
    }
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: response,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    };
  }

  function post(path, body) {
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body || {})
    }).then(function (resp) {
      return resp.json().catch(function () {
        return {};
      }).then(function (json) {
        if (!resp.ok) {
          throw new Error(json.message || "The request failed (" + resp.status + ").");
        }
        return json;
      });
    });
  }

  // Progress as a notice, failure as an error (the same live region).
  function show(el, text, failed) {
    if (el) {
      el.textContent = text;
      el.className = failed ? "error" : "notice";
      el.hidden = false;
    }
  }

  function browserError(err) {
    if (err && err.name === "NotAllowedError") {
      return "The passkey request was cancelled or not allowed.";
    }
    return (err && err.message) || "Something went wrong.";
  }

  // The account page: add a passkey (the current password, then the authenticator).
  var add = document.getElementById("add-passkey");
  if (add) {
    var addStatus = document.getElementById("passkey-status");
    add.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var name = add.elements.name.value;
      var password = add.elements.current_password.value;
      show(addStatus, "Follow your browser's prompt to create the passkey…");
      post("/api/v1/passkeys/register/start", { current_password: password })
        .then(function (start) {
          return navigator.credentials
            .create({ publicKey: creationOptions(start.options) })
            .then(function (cred) {
              return post("/api/v1/passkeys/register/finish", {
                challenge_id: start.challenge_id,
                name: name,
                credential: credentialJson(cred)
              });
            });
        })
        .then(function () {
          window.location.assign("/account?done=passkey_added");
        })
        .catch(function (err) {
          show(addStatus, browserError(err), true);
        });
    });
  }

  // The login page: "Log in with a passkey" (shown only when this script runs).
  var login = document.getElementById("passkey-login");
  if (login) {
    var loginStatus = document.getElementById("passkey-login-status");
    login.hidden = false;
    login.addEventListener("click", function () {
      show(loginStatus, "Follow your browser's prompt to use your passkey…");
      post("/api/v1/passkeys/login/start")
        .then(function (start) {
          return navigator.credentials
            .get({ publicKey: requestOptions(start.options) })
            .then(function (cred) {
              return post("/api/v1/passkeys/login/finish", {
                challenge_id: start.challenge_id,
                credential: credentialJson(cred)
              });
            });
        })
        .then(function () {
          var next = login.getAttribute("data-next") || "/account";
          window.location.assign(next);
        })
        .catch(function (err) {
          show(loginStatus, browserError(err), true);
        });
    });
  }
})();
