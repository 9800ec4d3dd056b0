// Warren's passkeys: the portal's only script (authportal/passkeys.py serves the JSON it
// posts). It shows the passkey buttons and the "Add a passkey" form, which stay hidden without
// JavaScript, and runs navigator.credentials.get() / create() with the portal's options.
"use strict";

(() => {
  // WebAuthn speaks ArrayBuffers; the portal speaks JSON with base64url (RFC 4648 §5).
  const toBuffer = (text) => {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "===".slice((base64.length + 3) % 4));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0)).buffer;
  };
  const toText = (buffer) => {
    let binary = "";
    for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };
  const descriptors = (list) => (list || []).map((c) => ({ ...c, id: toBuffer(c.id) }));

  const post = async (url, body) => {
    const answer = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
    const data = await answer.json().catch(() => ({}));
    if (!answer.ok) throw new Error(data.error || "The portal did not accept that.");
    return data;
  };

  const problem = (where, error) => {
    const shown = where.querySelector("#passkey-problem") || document.getElementById("passkey-problem");
    const cancelled = error && error.name === "NotAllowedError";
    shown.textContent = cancelled ? "No passkey was used. Try again when you are ready." : error.message;
    shown.hidden = false;
  };

  const common = (credential) => ({
    id: credential.id,
    rawId: toText(credential.rawId),
    type: credential.type,
    clientExtensionResults: credential.getClientExtensionResults(),
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
  });

  async function signIn(button) {
    const csrf = button.dataset.csrf;
    const step = button.dataset.step || "sign-in"; // "code": the second factor after a password
    const options = await post("/passkeys/sign-in/options", { csrf, step });
    const credential = await navigator.credentials.get({
      publicKey: {
        ...options,
        challenge: toBuffer(options.challenge),
        allowCredentials: descriptors(options.allowCredentials),
      },
    });
    const response = credential.response;
    const done = await post("/passkeys/sign-in", {
      csrf,
      step,
      rd: button.dataset.rd || null,
      credential: {
        ...common(credential),
        response: {
          clientDataJSON: toText(response.clientDataJSON),
          authenticatorData: toText(response.authenticatorData),
          signature: toText(response.signature),
          userHandle: response.userHandle ? toText(response.userHandle) : undefined,
        },
      },
    });
    window.location.assign(done.location);
  }

  async function register(form) {
    const csrf = form.dataset.csrf;
    const options = await post("/passkeys/register/options", { csrf });
    const credential = await navigator.credentials.create({
      publicKey: {
        ...options,
        challenge: toBuffer(options.challenge),
        user: { ...options.user, id: toBuffer(options.user.id) },
        excludeCredentials: descriptors(options.excludeCredentials),
      },
    });
    const response = credential.response;
    const done = await post("/passkeys/register", {
      csrf,
      name: form.elements.name.value,
      credential: {
        ...common(credential),
        response: {
          clientDataJSON: toText(response.clientDataJSON),
          attestationObject: toText(response.attestationObject),
          transports: response.getTransports ? response.getTransports() : [],
        },
      },
    });
    window.location.assign(done.location);
  }

  if (!window.PublicKeyCredential) return; // no WebAuthn here: the buttons stay hidden
  for (const button of document.querySelectorAll('button[data-passkey="sign-in"]')) {
    button.hidden = false;
    button.addEventListener("click", () => {
      signIn(button).catch((error) => problem(button.closest("div") || document, error));
    });
  }
  for (const form of document.querySelectorAll('form[data-passkey="register"]')) {
    form.parentElement.hidden = false;
    form.addEventListener("submit", (submitted) => {
      submitted.preventDefault();
      register(form).catch((error) => problem(form, error));
    });
  }
})();
