/**
 * sigmax's WGSL through a second compiler: Chromium's (Tint), which enforces
 * rules that naga (Deno's) does not check, above all the uniformity analysis:
 * a `workgroupBarrier()` must sit in uniform control flow, and a loop bound
 * read from a private variable is not uniform. Every matmul variant (both
 * kernels, every transpose, vec4 or not, each epilogue, the split-K sum) and
 * every WGSL module the attention plans create (both tilings, both
 * activations, causal or not, f32 and f16, three head dims, forward and
 * backward) must compile there without an error.
 *
 * Two known differences between the compilers are bridged, not hidden: naga
 * rejects `enable subgroups;` and accepts subgroup built-ins without it
 * (DESIGN.md), so a module that calls a subgroup built-in gets the directive
 * before Tint sees it; and a variant whose feature (f16, subgroups)
 * Chromium's adapter lacks is reported as not checked.
 *
 * Without /usr/bin/chromium the test is skipped with a message, unless
 * SIGMAX_REQUIRE_BROWSER=1 (CI), where it fails instead.
 */

import assert from "node:assert/strict";
import { announceBrowser, CHROMIUM, HAVE_CHROMIUM, launchBrowser, REQUIRED } from "./_browser.ts";
import { matmulDirectWgsl, matmulSplitSumWgsl, matmulWgsl } from "../kernels/matmul.ts";
import { AttentionPlan } from "../mod.ts";

announceBrowser("WGSL browser test");

/** Every matmul kernel variant sigmax can generate. */
function matmulModules(): { label: string; code: string }[] {
  const out: { label: string; code: string }[] = [];
  for (const [name, gen] of [["tiled", matmulWgsl], ["direct", matmulDirectWgsl]] as const) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        for (const vec4 of [false, true]) {
          for (const bias of [false, true]) {
            for (const columnSums of [false, true]) {
              const config = {
                transA,
                transB,
                vec4A: vec4,
                vec4B: vec4,
                vec4C: vec4,
                bias,
                columnSums,
              };
              out.push({ label: `${name} ${JSON.stringify(config)}`, code: gen(config) });
            }
          }
        }
      }
    }
  }
  for (const columnSums of [false, true]) {
    out.push({
      label: `split sum columnSums=${columnSums}`,
      code: matmulSplitSumWgsl({ columnSums }),
    });
  }
  return out;
}

/** The WGSL of every module the attention plans create over the grid above. */
async function attentionModules(): Promise<{ label: string; code: string }[]> {
  const out: { label: string; code: string }[] = [];
  const proto = GPUDevice.prototype;
  const original = proto.createShaderModule;
  let current = "";
  proto.createShaderModule = function (this: GPUDevice, descriptor: GPUShaderModuleDescriptor) {
    out.push({ label: `${current} ${descriptor.label ?? ""}`, code: descriptor.code });
    return original.call(this, descriptor);
  };
  try {
    for (const tiling of ["gpu", "software"] as const) {
      for (const activation of ["softmax", "sigmoid"] as const) {
        for (const causal of [false, true]) {
          for (const precision of ["f32", "f16"] as const) {
            for (const headDim of [32, 64, 128]) {
              current = `${tiling} ${activation} causal=${causal} ${precision} D=${headDim}`;
              try {
                const plan = await AttentionPlan.create(
                  { batch: 1, heads: 2, seqLen: 37, headDim },
                  { activation, causal, precision, tiling },
                  { backward: true },
                );
                plan.destroy();
              } catch (e) {
                // Only f16 may be refused (an adapter without shader-f16); anything else fails.
                if (precision !== "f16") throw e;
              }
            }
          }
        }
      }
    }
  } finally {
    proto.createShaderModule = original;
  }
  return out;
}

Deno.test({
  name: "every matmul and attention module compiles in Chromium's WGSL compiler (Tint)",
  ignore: !HAVE_CHROMIUM && !REQUIRED,
  async fn() {
    if (!HAVE_CHROMIUM) {
      assert.fail(
        `${CHROMIUM} is missing and SIGMAX_REQUIRE_BROWSER=1: install it (apt-get install -y chromium)`,
      );
    }
    const modules = [...matmulModules(), ...await attentionModules()];
    assert.ok(modules.length > 64, `only ${modules.length} modules collected`);
    // Naga accepts subgroup built-ins without the directive; Tint needs it.
    const tintModules = modules.map((m) => ({
      ...m,
      code: /\bsubgroup[A-Z]\w*\s*\(/.test(m.code) && !/^\s*enable subgroups;/m.test(m.code)
        ? `enable subgroups;\n${m.code}`
        : m.code,
    }));
    const dir = await Deno.makeTempDir({ prefix: "sigmax-wgsl-" });
    const page = `${dir}/blank.html`;
    await Deno.writeTextFile(page, "<!DOCTYPE html><title>wgsl</title>");
    const browser = await launchBrowser({ webgpu: true });
    try {
      const tab = await browser.newPage();
      await tab.goto(new URL(`file://${page}`).href);
      const result = await tab.evaluate(async (mods) => {
        const gpu = (navigator as unknown as { gpu?: GPU }).gpu;
        const adapter = await gpu?.requestAdapter();
        if (!adapter) return { error: "Chromium has no WebGPU adapter", rows: [] };
        const wanted = (["shader-f16", "subgroups"] as GPUFeatureName[])
          .filter((f) => adapter.features.has(f));
        const device = await adapter.requestDevice({ requiredFeatures: wanted });
        const rows: { label: string; status: string }[] = [];
        for (const m of mods) {
          const needs = [
            ...(/^\s*enable f16;/m.test(m.code) ? ["shader-f16"] : []),
            ...(/^\s*enable subgroups;/m.test(m.code) ? ["subgroups"] : []),
          ];
          const missing = needs.filter((f) => !wanted.includes(f as GPUFeatureName));
          if (missing.length) {
            rows.push({ label: m.label, status: `not checked: no ${missing.join(", ")}` });
            continue;
          }
          const info = await device.createShaderModule({ code: m.code }).getCompilationInfo();
          const errors = info.messages.filter((x) => x.type === "error")
            .map((x) => `${x.lineNum}:${x.linePos} ${x.message}`);
          rows.push({ label: m.label, status: errors.length ? errors.join(" | ") : "ok" });
        }
        return { error: "", rows };
      }, tintModules);
      assert.equal(result.error, "", result.error);
      const failed = result.rows.filter((r) =>
        r.status !== "ok" && !r.status.startsWith("not checked")
      );
      const unchecked = result.rows.filter((r) => r.status.startsWith("not checked"));
      if (unchecked.length) {
        console.log(
          `WGSL browser test: ${unchecked.length} of ${result.rows.length} modules not checked ` +
            `(${[...new Set(unchecked.map((r) => r.status))].join("; ")})`,
        );
      }
      assert.deepEqual(failed, [], `${failed.length} modules rejected by Tint`);
      // Every matmul variant, at least, must have been checked.
      assert.ok(
        result.rows.filter((r) => r.status === "ok").length >= matmulModules().length,
        "too few modules checked",
      );
    } finally {
      await browser.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
