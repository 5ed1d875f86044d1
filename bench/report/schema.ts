/**
 * The sweep results document's validation: what `deno task report` accepts
 * ({@linkcode validateResults}), with an error that names the first bad
 * field ({@linkcode ResultsError}), and the names and orders of the
 * implementations, activations, passes and precisions.
 *
 * Written by hand rather than with a schema library: a valibot schema of the
 * same document is about 40 lines against these 170, but the report is in
 * the static module graph of cli.ts, so the library would be installed for
 * every command (the demo included), or loaded at run time, which would make
 * {@linkcode validateResults} (and the renderers that call it) async; and
 * its messages (`Invalid type: Expected number but received "12"` at
 * `records.3.gflops`) are no clearer than these, which name the field as
 * the document writes it and say what was there.
 *
 * @module
 */

import type { Implementation, SweepResults } from "../results.ts";

/** A results document that is not a valid {@linkcode SweepResults}; `field` names the first bad field. */
export class ResultsError extends Error {
  /** The path of the first bad field, e.g. `records[3].gflops` (`""` for the document itself). */
  readonly field: string;

  /** Makes the error for `field` with a message that names it. */
  constructor(field: string, message: string) {
    super(message);
    this.name = "ResultsError";
    this.field = field;
  }
}

type Json = Record<string, unknown>;

/** Every implementation a results document can name, in the report's order. */
export const IMPLEMENTATIONS: readonly Implementation[] = [
  "fused",
  "unfused",
  "tfjs",
  "ort",
  "jax",
];
/** The peers: implementations outside sigmax, timed on the wall clock. */
export const PEERS: readonly Implementation[] = ["tfjs", "ort", "jax"];
/** The activations, in the report's order. */
export const ACTIVATIONS = ["softmax", "sigmoid"] as const;
/** The passes, in the report's order. */
export const PASSES = ["forward", "backward"] as const;
/** The precisions, in the report's order. */
export const PRECISIONS = ["f32", "f16"] as const;

function describe(value: unknown): string {
  if (value === undefined) return "nothing (the field is missing)";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") {
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  }
  return String(value);
}

function bad(field: string, what: string, got: unknown): never {
  throw new ResultsError(field, `${field || "the document"} must be ${what}, got ${describe(got)}`);
}

function object(value: unknown, field: string): Json {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    bad(field, "an object", value);
  }
  return value as Json;
}

function array(o: Json, key: string, field: string): unknown[] {
  const value = o[key];
  if (!Array.isArray(value)) bad(field, "an array", value);
  return value;
}

function string(o: Json, key: string, field: string, optional = false): void {
  const value = o[key];
  if (optional && value === undefined) return;
  if (typeof value !== "string") bad(field, "a string", value);
}

function boolean(o: Json, key: string, field: string): void {
  if (typeof o[key] !== "boolean") bad(field, "true or false", o[key]);
}

function number(
  o: Json,
  key: string,
  field: string,
  kind: "positive integer" | "non-negative" = "non-negative",
  optional = false,
): void {
  const value = o[key];
  if (optional && value === undefined) return;
  if (typeof value !== "number" || !Number.isFinite(value)) bad(field, "a finite number", value);
  if (kind === "positive integer" && !(Number.isInteger(value) && value > 0)) {
    bad(field, "a positive integer", value);
  }
  if (kind === "non-negative" && value < 0) bad(field, "a number ≥ 0", value);
}

function oneOf(o: Json, key: string, field: string, values: readonly string[]): void {
  const value = o[key];
  if (typeof value !== "string" || !values.includes(value)) {
    bad(field, `one of ${values.map((v) => `"${v}"`).join(", ")}`, value);
  }
}

/** The fields a record and a failure share: who, which pass, which shape. */
function checkCase(o: Json, at: string): void {
  oneOf(o, "impl", `${at}.impl`, IMPLEMENTATIONS);
  oneOf(o, "activation", `${at}.activation`, ACTIVATIONS);
  oneOf(o, "pass", `${at}.pass`, PASSES);
  oneOf(o, "precision", `${at}.precision`, PRECISIONS);
  for (const key of ["batch", "heads", "seqLen", "headDim"]) {
    number(o, key, `${at}.${key}`, "positive integer");
  }
  boolean(o, "causal", `${at}.causal`);
}

/**
 * Checks that `doc` (parsed JSON) is a results document this report can read:
 * version 1, every array present, every enum one of its values, every number
 * finite (and a positive integer for batch, heads, seqLen, headDim).
 * Returns it typed; throws a {@linkcode ResultsError} naming the first bad
 * field otherwise (e.g. `records[3].gflops must be a finite number, got null`).
 */
export function validateResults(doc: unknown): SweepResults {
  const o = object(doc, "");
  if (o.version !== 1) bad("version", "1", o.version);
  string(o, "preset", "preset");
  string(o, "date", "date");
  const adapter = object(o.adapter, "adapter");
  string(adapter, "description", "adapter.description");
  boolean(adapter, "software", "adapter.software");
  boolean(adapter, "shaderF16", "adapter.shaderF16");
  number(o, "seconds", "seconds");
  for (const [i, item] of array(o, "records", "records").entries()) {
    const at = `records[${i}]`;
    const r = object(item, at);
    checkCase(r, at);
    for (const key of ["msMedian", "msMin", "msMax", "gflops", "peakBytes", "msWallMedian"]) {
      number(r, key, `${at}.${key}`);
    }
    for (const key of ["msWallMin", "msWallMax"]) {
      number(r, key, `${at}.${key}`, "non-negative", true);
    }
    oneOf(r, "clock", `${at}.clock`, ["timestamp", "wall"]);
    // Every ORT figure says which kernel ran (FlashAttention or the unfused fallback).
    string(r, "ran", `${at}.ran`, r.impl !== "ort");
  }
  for (const [i, item] of array(o, "failures", "failures").entries()) {
    const at = `failures[${i}]`;
    const f = object(item, at);
    checkCase(f, at);
    string(f, "error", `${at}.error`);
  }
  for (const [i, item] of array(o, "maxSeqLen", "maxSeqLen").entries()) {
    const at = `maxSeqLen[${i}]`;
    const m = object(item, at);
    oneOf(m, "impl", `${at}.impl`, IMPLEMENTATIONS);
    oneOf(m, "activation", `${at}.activation`, ACTIVATIONS);
    number(m, "headDim", `${at}.headDim`, "positive integer");
    number(m, "maxSeqLen", `${at}.maxSeqLen`);
    number(m, "failedAt", `${at}.failedAt`, "non-negative", true);
    string(m, "reason", `${at}.reason`, true);
    number(m, "boundBytes", `${at}.boundBytes`);
  }
  if (o.roofline !== undefined) {
    const r = object(o.roofline, "roofline");
    number(r, "gflops", "roofline.gflops");
    number(r, "size", "roofline.size");
    number(r, "tfjsGflops", "roofline.tfjsGflops", "non-negative", true);
    number(r, "jaxGflops", "roofline.jaxGflops", "non-negative", true);
  }
  for (const [i, item] of array(o, "training", "training").entries()) {
    const at = `training[${i}]`;
    const t = object(item, at);
    oneOf(t, "impl", `${at}.impl`, ["sigmax", "tfjs"]);
    oneOf(t, "activation", `${at}.activation`, ACTIVATIONS);
    number(t, "tokensPerSecond", `${at}.tokensPerSecond`);
    number(t, "msMedian", `${at}.msMedian`);
    const model = object(t.model, `${at}.model`);
    for (const key of ["width", "layers", "heads", "seqLen", "batch"]) {
      number(model, key, `${at}.model.${key}`);
    }
  }
  if (o.model !== undefined) {
    if (!Array.isArray(o.model)) bad("model", "an array", o.model);
    for (const [i, item] of (o.model as unknown[]).entries()) {
      const at = `model[${i}]`;
      const m = object(item, at);
      oneOf(m, "pass", `${at}.pass`, PASSES);
      number(m, "headDim", `${at}.headDim`, "positive integer");
      for (
        const key of ["sigmoidOverSoftmax", "fusedOverUnfusedSoftmax", "fusedOverUnfusedSigmoid"]
      ) {
        number(m, key, `${at}.${key}`);
      }
    }
  }
  if (o.peersSkipped !== undefined) {
    if (!Array.isArray(o.peersSkipped)) bad("peersSkipped", "an array", o.peersSkipped);
    for (const [i, item] of (o.peersSkipped as unknown[]).entries()) {
      const p = object(item, `peersSkipped[${i}]`);
      oneOf(p, "impl", `peersSkipped[${i}].impl`, PEERS);
      string(p, "reason", `peersSkipped[${i}].reason`);
    }
  }
  return doc as SweepResults;
}
