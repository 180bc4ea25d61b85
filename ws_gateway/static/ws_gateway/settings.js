// Skin (config.get/set skin, skin.changed) applied as the page's colours, and the model picker.

import { $, clear, h } from "./dom.js";

// Skin colour keys -> CSS custom properties of console.css.
const SKIN_VARS = {
  ui_accent: "--accent",
  ui_label: "--label",
  ui_ok: "--ok",
  ui_error: "--error",
  ui_warn: "--warn",
  banner_text: "--text",
  banner_dim: "--dim",
  session_border: "--border",
  status_bar_bg: "--bg",
  response_border: "--agent-border",
  input_rule: "--input-rule",
};
const COLOR = /^#[0-9a-f]{3,8}$/i;

export function applySkin(skin) {
  if (!skin || typeof skin !== "object") return;
  const root = document.documentElement.style;
  for (const [key, prop] of Object.entries(SKIN_VARS)) {
    const value = skin.colors && skin.colors[key];
    if (typeof value === "string" && COLOR.test(value)) root.setProperty(prop, value);
  }
  if (skin.name) document.documentElement.dataset.skin = skin.name;
  const name = skin.branding && skin.branding.agent_name;
  if (name) $("brand").textContent = name;
  const select = $("skin-select");
  if (skin.name && [...select.options].some((o) => o.value === skin.name)) select.value = skin.name;
}

export class Settings {
  constructor({ call, sessionCall, notice }) {
    this.call = call;
    this.sessionCall = sessionCall;
    this.notice = notice;
    this.skin = $("skin-select");
    this.model = $("model-select");
    this.skin.addEventListener("change", () => this.setSkin(this.skin.value));
    this.model.addEventListener("change", () => this.setModel(this.model.value));
  }

  async loadSkins() {
    try {
      const result = await this.call("config.get", { key: "skin" });
      clear(this.skin);
      for (const name of result.available || []) this.skin.append(h("option", { value: name, text: name }));
      if (result.value) this.skin.value = typeof result.value === "string" ? result.value : result.value.name;
    } catch {
      /* keep the page's colours */
    }
  }

  async setSkin(name) {
    try {
      await this.call("config.set", { key: "skin", value: name });
    } catch (err) {
      this.notice(err.message);
    }
  }

  async loadModels(hasSession) {
    this.model.disabled = !hasSession;
    if (!hasSession) return;
    let result;
    try {
      result = await this.sessionCall("model.options", {});
    } catch {
      return;
    }
    clear(this.model);
    for (const provider of result.providers || []) {
      const group = h("optgroup", { label: provider.name || provider.slug });
      for (const model of provider.models || []) {
        const value = provider.slug === "demo" ? "demo" : `${provider.slug}:${model}`;
        group.append(h("option", { value, text: model, dataset: { model } }));
      }
      this.model.append(group);
    }
    this.showModel(result.model, result.provider);
  }

  showModel(model, provider) {
    const options = [...this.model.options];
    const match = options.find((o) => o.value === `${provider}:${model}`) || options.find((o) => o.dataset.model === model);
    if (match) this.model.value = match.value;
  }

  async setModel(value) {
    try {
      await this.sessionCall("config.set", { key: "model", value });
      this.notice(`Model: ${value}`);
    } catch (err) {
      this.notice(err.message);
    }
  }
}
