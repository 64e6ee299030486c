// The advocate page's one script (served as a file: the page's CSP runs no inline script).
// The copy button copies the share link (tagged ?ch=copy) and says so in a live region.
"use strict";

(function () {
  function say(button, key) {
    const status = document.getElementById(button.dataset.status);
    if (status) {
      status.textContent = "";
      // A fresh text node each time, so screen readers announce a repeated copy too.
      window.setTimeout(function () { status.textContent = button.dataset[key]; }, 50);
    }
    button.classList.toggle("done", key === "copied");
  }

  function fallbackCopy(field) {
    field.focus();
    field.select();
    try {
      return document.execCommand("copy");
    } catch (error) {
      return false;
    }
  }

  function copy(button) {
    const field = document.getElementById(button.dataset.copy);
    if (!field) {
      return;
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(
        function () { say(button, "copied"); },
        function () { say(button, fallbackCopy(field) ? "copied" : "failed"); });
    } else {
      say(button, fallbackCopy(field) ? "copied" : "failed");
    }
  }

  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () { copy(button); });
  });
  document.querySelectorAll(".link-field").forEach(function (field) {
    field.addEventListener("focus", function () { field.select(); });
  });
})();
