// Small enhancements only: every page works without this file.
document.addEventListener("DOMContentLoaded", () => {
  // The program switcher opens the chosen program at once.
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }
  // "Select all" for the bulk forms.
  for (const box of document.querySelectorAll("input[data-select-all]")) {
    box.addEventListener("change", () => {
      const form = document.getElementById(box.dataset.selectAll);
      for (const item of form.querySelectorAll("input[name='referral_id']")) item.checked = box.checked;
    });
    box.hidden = false;
  }
});
