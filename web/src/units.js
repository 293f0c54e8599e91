// Volumes in the user's unit (profile `volume_unit`: 'ml' or 'oz'). The API is always in whole
// millilitres; ounces (US fluid ounce = 29.5735 ml) are shown and typed to 0.1. A value typed
// to 0.1 oz is stored as round(oz × 29.5735) ml and reads back the same: one ml is 0.034 oz,
// so the rounding never moves the displayed tenth. Amounts are 1..2000 ml, i.e. 0.1..67.6 oz.
// No DOM here: the node unit test imports this module as it is.

export const ML_PER_OZ = 29.5735;
export const MAX_ML = 2000;
export const MIN_OZ = 0.1;
export const MAX_OZ = 67.6; // floor(2000 / 29.5735, 0.1)

export const unitOf = (user) => (user && user.volume_unit === 'oz' ? 'oz' : 'ml');

// ml (an integer) → tenths of an ounce (an integer), to avoid binary fractions on display.
const tenths = (ml) => Math.round((ml * 10) / ML_PER_OZ);

// 1234 ml → "1234" (ml) or "41.7" (oz): the number alone, for an input's value.
export function toInput(ml, unit) {
  if (ml === null || ml === undefined) return '';
  if (unit !== 'oz') return String(ml);
  const t = tenths(ml);
  return `${Math.floor(t / 10)}.${t % 10}`;
}

// "120 ml" or "4.1 oz" (null → '').
export function fmtVolume(ml, unit) {
  if (ml === null || ml === undefined) return '';
  return `${toInput(ml, unit)} ${unit === 'oz' ? 'oz' : 'ml'}`;
}

// What the user typed → { ml } or { error } (a sentence for the field). ml: whole numbers
// 1..2000; oz: at most one decimal, 0.1..67.6, stored as round(oz × 29.5735) ml.
export function parseVolume(text, unit) {
  const s = String(text ?? '')
    .trim()
    .replace(',', '.');
  if (unit !== 'oz') {
    if (!/^\d+$/.test(s)) return { error: 'Enter a whole number of millilitres.' };
    const ml = Number(s);
    if (ml < 1 || ml > MAX_ML) return { error: `Enter 1 to ${MAX_ML} ml.` };
    return { ml };
  }
  if (!/^(\d+(\.\d)?|\.\d)$/.test(s)) return { error: 'Enter ounces with at most one decimal, e.g. 4.5.' };
  const t = Math.round(Number(s) * 10);
  if (t < MIN_OZ * 10 || t > MAX_OZ * 10) return { error: `Enter ${MIN_OZ} to ${MAX_OZ} oz.` };
  return { ml: Math.round((t * ML_PER_OZ) / 10) };
}

// Input attributes for an amount field in `unit`.
export const inputAttrs = (unit) =>
  unit === 'oz'
    ? { min: MIN_OZ, max: MAX_OZ, step: 0.1, inputmode: 'decimal' }
    : { min: 1, max: MAX_ML, step: 1, inputmode: 'numeric' };

// Durations: 754 → "12 min 34 s"; 3720 → "1 h 2 min"; for "since last feed", 0 s → "0 min".
export function fmtDuration(s, { seconds = true } = {}) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '–';
  s = Math.max(0, Math.floor(s));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  if (hh > 0) return `${hh} h ${mm} min`;
  if (!seconds) return `${mm} min`;
  return mm > 0 ? `${mm} min ${ss} s` : `${ss} s`;
}

// A running timer's clock: 754 → "12:34", 3754 → "1:02:34".
export function clock(s) {
  s = Math.max(0, Math.floor(s));
  const p = (x) => String(x).padStart(2, '0');
  const hh = Math.floor(s / 3600);
  return hh > 0 ? `${hh}:${p(Math.floor((s % 3600) / 60))}:${p(s % 60)}` : `${Math.floor(s / 60)}:${p(s % 60)}`;
}
