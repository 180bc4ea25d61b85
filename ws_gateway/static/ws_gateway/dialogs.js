// Modal confirmation and one-line prompts on native <dialog> elements (Esc closes them).

import { $ } from "./dom.js";

export function confirmDialog(text, okLabel = "OK") {
  const dialog = $("confirm-dialog");
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okLabel;
  dialog.returnValue = "cancel";
  dialog.showModal();
  $("confirm-ok").focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

export function promptDialog(label, value = "") {
  const dialog = $("prompt-dialog");
  const input = $("prompt-value");
  $("prompt-label").textContent = label;
  input.value = value;
  dialog.returnValue = "cancel";
  dialog.showModal();
  input.select();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok" ? input.value.trim() : null), {
      once: true,
    });
  });
}
