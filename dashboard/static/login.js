/* The login form: POST JSON credentials, then go to the board. */
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("hw-config").textContent);
  const form = document.getElementById("login-form");
  const error = document.getElementById("login-error");
  const button = document.getElementById("login-button");

  function show(message) {
    error.textContent = message;
    error.hidden = false;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    error.hidden = true;
    button.disabled = true;
    try {
      const response = await fetch("/api/v1/login", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({
          username: document.getElementById("username").value.trim(),
          password: document.getElementById("password").value,
        }),
        credentials: "same-origin",
      });
      if (response.ok) {
        window.location.assign("/");
        return;
      }
      const key = response.status === 429 ? "login_throttled"
        : response.status === 401 ? "login_failed" : "login_error";
      show(config.strings[key]);
    } catch (err) {
      show(config.strings.login_error);
    } finally {
      button.disabled = false;
    }
  });
})();
