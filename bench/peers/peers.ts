/**
 * The peers with fused or jitted attention, ONNX Runtime Web (`ort`) and
 * jax-js (`jax`), as every bench drives them: {@linkcode loadPeers} loads the
 * ones asked for and says why any cannot run here; {@linkcode peerCase}
 * builds one timed case (a shape, an activation, causal or not, a pass) with
 * its inputs resident on the peer's device, a call that returns its
 * wall-clock ms, a description of what the peer ran, and a cleanup. The
 * sweep (bench/sweep.ts), the `deno bench` groups
 * (bench/attention_bench_common.ts) and the interleaved comparison
 * (bench/peers/compare.ts) all time the peers through it.
 *
 * Passes: ORT has no backward (its attention operators have no gradient), so
 * {@linkcode peerCase} returns `undefined` for ORT's backward; jax-js's
 * backward is `jit(grad)`, which runs the forward pass too.
 *
 * @module
 */

import type { AttentionShape } from "../../kernels/attention_options.ts";
import type { OrtHandle } from "./ort.ts";
import type { JaxHandle } from "./jax.ts";
import { attentionPassFlops, type PeerDevice } from "./timing.ts";

/** A peer {@linkcode loadPeers} can load. */
export type PeerName = "ort" | "jax";

/** Every peer, in the report's order. */
export const PEER_NAMES: readonly PeerName[] = ["ort", "jax"];

/** The peers that loaded, and the reason for each that did not. */
export interface Peers {
  ort?: { mod: typeof import("./ort.ts"); handle: OrtHandle };
  jax?: { mod: typeof import("./jax.ts"); handle: JaxHandle };
  /** Peer → why it cannot run here (the package failed to load, no WebGPU, a failed smoke test). */
  skipped: Map<PeerName, string>;
}

/**
 * Loads the peers named (each once per process; a module that fails to
 * import is a skip with its message, never an exception).
 */
export async function loadPeers(names: readonly PeerName[]): Promise<Peers> {
  const peers: Peers = { skipped: new Map() };
  const reason = (e: unknown) => e instanceof Error ? e.message : String(e);
  if (names.includes("ort")) {
    try {
      const mod = await import("./ort.ts");
      const handle = await mod.loadOrt();
      if ("error" in handle) peers.skipped.set("ort", handle.error);
      else peers.ort = { mod, handle };
    } catch (e) {
      peers.skipped.set("ort", `bench/peers/ort.ts failed to load: ${reason(e)}`);
    }
  }
  if (names.includes("jax")) {
    try {
      const mod = await import("./jax.ts");
      const handle = await mod.loadJax();
      if ("error" in handle) peers.skipped.set("jax", handle.error);
      else peers.jax = { mod, handle };
    } catch (e) {
      peers.skipped.set("jax", `bench/peers/jax.ts failed to load: ${reason(e)}`);
    }
  }
  return peers;
}

/** What a case computes. */
export interface PeerCaseOptions {
  activation: "softmax" | "sigmoid";
  causal: boolean;
  pass: "forward" | "backward";
}

/** One timed case of a peer, its inputs resident on the peer's device. */
export interface PeerCase {
  peer: PeerName;
  /** What the peer ran, in words (ORT: operator, kernel from the programs dispatched, device). */
  ran: string;
  device: PeerDevice;
  /** FLOPs credited to one call (FlashAttention's convention). */
  flops: number;
  /** One call; resolves to its wall-clock ms (call → the device's work done). */
  run(): Promise<number>;
  /** Frees the session or arrays. */
  free(): Promise<void>;
}

/**
 * The case of `peer` at `shape` and `options`, or `undefined` when the peer
 * did not load or has no such pass (ORT's backward). ORT's is built on its
 * own device and runs once to see which programs it dispatches.
 */
export async function peerCase(
  peers: Peers,
  peer: PeerName,
  shape: AttentionShape,
  options: PeerCaseOptions,
): Promise<PeerCase | undefined> {
  const { activation, causal, pass } = options;
  const flops = attentionPassFlops(shape, causal, pass);
  if (peer === "ort") {
    if (!peers.ort || pass !== "forward") return undefined;
    const attn = await peers.ort.mod.OrtAttention.create(peers.ort.handle, shape, {
      activation,
      causal,
    });
    try {
      const { ran } = await attn.describe();
      return {
        peer,
        ran,
        device: attn.device === peers.ort.handle.device ? "shared" : "ort",
        flops,
        run: () => attn.run(),
        free: () => attn.release(),
      };
    } catch (e) {
      await attn.release();
      throw e;
    }
  }
  if (!peers.jax) return undefined;
  const work = peers.jax.mod.JaxAttention.create(peers.jax.handle, shape, { activation, causal });
  return {
    peer,
    ran: peers.jax.mod.jaxRan({ activation, causal }, pass),
    device: "jax",
    flops,
    run: () => pass === "forward" ? work.forward() : work.backward(),
    free: () => Promise.resolve(work.dispose()),
  };
}
