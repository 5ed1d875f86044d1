/**
 * How the sweep report's HTML page and Markdown summary write numbers.
 *
 * @module
 */

import type { MaxSeqLenRecord, TrainingStepRecord } from "../results.ts";
import { ACTIVATIONS, IMPLEMENTATIONS } from "./schema.ts";

/** What a missing value reads as. */
export const DASH = "—";

/** One decimal. */
export function fmtNumber(v: number): string {
  return v.toFixed(1);
}

/** `1.23×`. */
export function fmtRatio(v: number): string {
  return `${v.toFixed(2)}×`;
}

/** `12.3%`. */
export function fmtPercent(v: number): string {
  return `${v.toFixed(1)}%`;
}

/** Bytes in B, KiB, MiB, GiB or TiB. */
export function fmtBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

/** Seconds as `12.3 s`, `4 min 5 s` or `1 h 2 min 3 s`. */
export function fmtDuration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  return h > 0 ? `${h} h ${m} min ${rest} s` : `${m} min ${rest} s`;
}

/** A training step's model in words. */
export function modelText(m: TrainingStepRecord["model"]): string {
  return `width ${m.width}, ${m.layers} layers, ${m.heads} heads, seqLen ${m.seqLen}, batch ${m.batch}`;
}

/** The longest-sequence rows by head dim, implementation, activation. */
export function sortMaxSeqLen(rows: readonly MaxSeqLenRecord[]): MaxSeqLenRecord[] {
  return [...rows].sort((a, b) =>
    a.headDim - b.headDim || IMPLEMENTATIONS.indexOf(a.impl) - IMPLEMENTATIONS.indexOf(b.impl) ||
    ACTIVATIONS.indexOf(a.activation) - ACTIVATIONS.indexOf(b.activation)
  );
}
