// The ONE module that knows about @vscode/webview-ui-toolkit. Webviews build their controls
// through these functions only, so the toolkit (deprecated upstream since 2025-01-01) can be
// swapped for @vscode-elements/elements or plain themed HTML by rewriting this file alone.
// Every function returns a plain HTMLElement and takes plain callbacks; no toolkit type leaks.
import {
  provideVSCodeDesignSystem, vsCodeButton, vsCodeCheckbox, vsCodeDivider, vsCodeDropdown,
  vsCodeOption, vsCodeProgressRing,
} from '@vscode/webview-ui-toolkit';

let registered = false;
export function registerUi(): void {
  if (registered) return;
  registered = true;
  provideVSCodeDesignSystem().register(
    vsCodeButton(), vsCodeDropdown(), vsCodeOption(), vsCodeCheckbox(), vsCodeDivider(), vsCodeProgressRing(),
  );
}

export interface Common {
  testId?: string;
  title?: string;
}
function common(el: HTMLElement, o: Common): void {
  if (o.testId) el.dataset.testid = o.testId;
  if (o.title) el.title = o.title;
}

export function button(label: string, onClick: () => void, o: Common & { secondary?: boolean; icon?: boolean } = {}): HTMLElement {
  const b = document.createElement('vscode-button');
  b.textContent = label;
  if (o.secondary) b.setAttribute('appearance', 'secondary');
  if (o.icon) b.setAttribute('appearance', 'icon');
  if (o.title) b.setAttribute('aria-label', o.title);
  b.addEventListener('click', () => onClick());
  common(b, o);
  return b;
}

export function setDisabled(el: HTMLElement, disabled: boolean): void {
  el.toggleAttribute('disabled', disabled);
}

export function dropdown(
  options: { value: string; label: string }[],
  value: string,
  onChange: (value: string) => void,
  o: Common = {},
): HTMLElement & { value: string } {
  const d = document.createElement('vscode-dropdown') as HTMLElement & { value: string };
  for (const opt of options) {
    const e = document.createElement('vscode-option') as HTMLElement & { value: string };
    e.setAttribute('value', opt.value);
    e.textContent = opt.label;
    if (opt.value === value) e.setAttribute('selected', '');
    d.appendChild(e);
  }
  d.addEventListener('change', () => onChange(d.value));
  common(d, o);
  return d;
}

export function checkbox(label: string, checked: boolean, onChange: (checked: boolean) => void, o: Common = {}): HTMLElement {
  const c = document.createElement('vscode-checkbox') as HTMLElement & { checked: boolean };
  c.textContent = label;
  if (checked) c.setAttribute('checked', '');
  c.addEventListener('change', () => onChange(c.checked));
  common(c, o);
  return c;
}

/** A badge. Not the toolkit's: its template sets an inline style attribute, which a strict CSP blocks. */
export function badge(text: string, o: Common = {}): HTMLElement {
  const b = document.createElement('span');
  b.className = 'ui-badge';
  b.textContent = text;
  common(b, o);
  return b;
}

export function divider(): HTMLElement {
  return document.createElement('vscode-divider');
}

export function progressRing(o: Common = {}): HTMLElement {
  const p = document.createElement('vscode-progress-ring');
  common(p, o);
  return p;
}

/** A themed range slider (the toolkit has none): plain input styled by ui.css. */
export function slider(
  min: number, max: number, step: number, value: number, onInput: (v: number) => void, o: Common = {},
): HTMLInputElement {
  const s = document.createElement('input');
  s.type = 'range';
  s.className = 'ui-slider';
  s.min = String(min);
  s.max = String(max);
  s.step = String(step);
  s.value = String(value);
  s.addEventListener('input', () => onInput(Number(s.value)));
  common(s, o);
  return s;
}

/** A themed number field (plain input styled by ui.css); empty reads as null. */
export function numberField(value: number | null, onChange: (v: number | null) => void, o: Common & { placeholder?: string; step?: number } = {}): HTMLInputElement {
  const f = document.createElement('input');
  f.type = 'number';
  f.className = 'ui-number';
  f.step = String(o.step ?? 'any');
  if (o.placeholder) f.placeholder = o.placeholder;
  if (value !== null) f.value = String(value);
  f.addEventListener('change', () => {
    const v = f.value.trim() === '' ? null : Number(f.value);
    onChange(v === null || Number.isFinite(v) ? v : null);
  });
  common(f, o);
  return f;
}
