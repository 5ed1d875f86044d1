/**
 * sigmax's fused kernels against ONNX Runtime Web and jax-js in one process,
 * on one clock, interleaved: each round runs every variant once, in turn, so
 * that a slow patch of a noisy machine hits them all alike; after `--warmup`
 * untimed rounds, the median of `--reps` timed rounds.
 *
 * The clock is the wall clock for every side (the peers have no other):
 * sigmax from `queue.submit` of its recorded kernels to
 * `onSubmittedWorkDone()`; ORT from `session.run` (inputs and output
 * resident on the GPU) to its device's `onSubmittedWorkDone()`; jax-js from
 * the jitted call to `blockUntilReady()`. The peers' figures so include their
 * CPU-side dispatch, as a user sees it.
 *
 * Passes: forward for both peers; backward for jax-js only (ORT has none).
 * jax-js's backward is one `jit(grad)` call, which runs the forward pass too,
 * so it is set against sigmax's forward + backward recorded into one
 * submission.
 *
 * `deno run -A bench/peers/compare.ts [--seq 1024] [--heads 4] [--dim 64]
 * [--reps 5] [--warmup 1] [--peers ort,jax] [--passes forward,backward]
 * [--out FILE]`
 * prints a Markdown table.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type AttentionWorkload, attentionWorkload } from "../../kernels/attention_timing.ts";
import { measureSubmit, summarize } from "../../kernels/device.ts";
import type { AttentionShape } from "../../kernels/attention_options.ts";
import { loadPeers, PEER_NAMES, peerCase } from "./peers.ts";

/** One thing timed: a label, a call that returns its wall ms, and a cleanup. */
interface Variant {
  side: "sigmax" | "ort" | "jax";
  pass: "forward" | "backward";
  activation: "softmax" | "sigmoid";
  causal: boolean;
  /** What the peer ran (kernel, device), for the table. */
  note: string;
  run(): Promise<number>;
  free(): Promise<void> | void;
  samples: number[];
}

const HELP = `usage: deno run -A bench/peers/compare.ts [options]

  --seq N        sequence length (default 1024)
  --heads N      heads (default 4); batch is 1
  --dim N        head dim (default 64)
  --reps N       timed rounds, at least 5 (default 5)
  --warmup N     untimed rounds first (default 1)
  --peers LIST   ort,jax (default both)
  --passes LIST  forward,backward (default both; ORT has forward only)
  --out FILE     also write the table so far to FILE after every timed round
`;

function positive(name: string, value: string | undefined, fallback: number): number {
  const n = value === undefined ? fallback : Number(value);
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`--${name}: expected a positive integer, got ${value}`);
  }
  return n;
}

function list<T extends string>(name: string, value: string | undefined, allowed: T[]): T[] {
  if (value === undefined) return allowed;
  const items = value.split(",").filter(Boolean);
  for (const x of items) {
    if (!allowed.includes(x as T)) {
      throw new RangeError(`--${name}: expected some of ${allowed.join(",")}, got ${x}`);
    }
  }
  return items as T[];
}

async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      seq: { type: "string" },
      heads: { type: "string" },
      dim: { type: "string" },
      reps: { type: "string" },
      warmup: { type: "string" },
      peers: { type: "string" },
      passes: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  const shape: AttentionShape = {
    batch: 1,
    heads: positive("heads", values.heads, 4),
    seqLen: positive("seq", values.seq, 1024),
    headDim: positive("dim", values.dim, 64),
  };
  const reps = Math.max(5, positive("reps", values.reps, 5));
  const warmup = values.warmup === "0" ? 0 : positive("warmup", values.warmup, 1);
  const peers = list("peers", values.peers, [...PEER_NAMES]);
  const passes = list("passes", values.passes, ["forward", "backward"]);
  const log = (s: string) => console.error(s);

  const variants: Variant[] = [];
  const loaded = await loadPeers(peers);
  for (const [peer, why] of loaded.skipped) log(`${peer}: not available: ${why}`);

  for (const pass of passes) {
    for (const activation of ["softmax", "sigmoid"] as const) {
      for (const causal of [false, true]) {
        const base = { pass, activation, causal };
        const work: AttentionWorkload = await attentionWorkload(
          shape,
          { activation, causal },
          pass,
        );
        const encode = pass === "forward" ? work.encode : (encoder: GPUCommandEncoder) => {
          work.plan.encodeForward(encoder, work.buffers);
          work.encode(encoder);
        };
        variants.push({
          ...base,
          side: "sigmax",
          samples: [],
          note: pass === "forward" ? "fused forward" : "fused forward + backward",
          run: async () => (await measureSubmit(work.plan.device, encode)).wallMs,
          free: () => work.destroy(),
        });
        for (const peer of peers) {
          const c = await peerCase(loaded, peer, shape, base);
          if (!c) continue;
          variants.push({
            ...base,
            side: peer,
            samples: [],
            note: c.ran,
            run: c.run,
            free: c.free,
          });
        }
      }
    }
  }
  const { batch: B, heads: H, seqLen: S, headDim: D } = shape;
  const table = (): string => {
    const lines: string[] = [];
    const rounds = variants[0]?.samples.length ?? 0;
    lines.push(
      `B=${B} H=${H} S=${S} D=${D}, wall clock, medians of ${rounds} interleaved rounds ` +
        `[min–max] after ${warmup} warmup.\n`,
    );
    lines.push("| pass | attention | sigmax fused ms | peer | peer ms | fused/peer | peer ran |");
    lines.push("|---|---|---|---|---|---|---|");
    const fmt = (v: Variant) => {
      const s = summarize(v.samples);
      return {
        med: s.msMedian,
        text: `${s.msMedian.toFixed(1)} [${s.msMin.toFixed(1)}–${s.msMax.toFixed(1)}]`,
      };
    };
    for (const v of variants.filter((x) => x.side !== "sigmax")) {
      const mine = variants.find((x) =>
        x.side === "sigmax" && x.pass === v.pass && x.activation === v.activation &&
        x.causal === v.causal
      )!;
      const a = fmt(mine), b = fmt(v);
      lines.push(
        `| ${v.pass} | ${v.activation}${v.causal ? " causal" : ""} | ${a.text} | ${v.side} | ` +
          `${b.text} | ${(b.med / a.med).toFixed(2)}× | ${v.note} |`,
      );
    }
    return lines.join("\n") + "\n";
  };
  log(`${variants.length} variants at B=${B} H=${H} S=${S} D=${D}; ${warmup} + ${reps} rounds`);
  try {
    for (let round = -warmup; round < reps; round++) {
      const t0 = performance.now();
      for (const v of variants) {
        const ms = await v.run();
        if (round >= 0) v.samples.push(ms);
      }
      log(
        `round ${round + warmup + 1}/${warmup + reps} (${round < 0 ? "warmup" : "timed"}): ` +
          `${((performance.now() - t0) / 1000).toFixed(1)} s`,
      );
      // The table so far, after every timed round, so that a run cut short keeps its rounds.
      if (round >= 0 && values.out) await Deno.writeTextFile(values.out, table());
    }
  } finally {
    for (const v of variants) await v.free();
  }
  console.log(table());
}

if (import.meta.main) await main(Deno.args);
