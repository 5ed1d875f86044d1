/**
 * Which WebGPU backend Deno uses, and the choice made explicit.
 *
 * Deno's WebGPU (wgpu) reads `DENO_WEBGPU_BACKEND` once, when the first
 * adapter is requested; without it, it loads every backend's driver it finds
 * (on Linux both Vulkan and OpenGL/EGL) and takes the first adapter. The
 * adapter does not say which backend it came from. `chooseBackend` picks the
 * one Deno would take anyway on Linux (Vulkan where a Vulkan driver is
 * installed, else OpenGL), so that only that driver is loaded and the name is
 * known. On macOS there is only Metal; elsewhere Deno's default is left alone.
 *
 * @module
 */

/** A backend sigmax can name. */
export type BackendName = "Vulkan" | "OpenGL" | "Metal" | "D3D12" | "Deno's default backend";

/** Folders that hold Vulkan ICD manifests (the loader's search path on Linux). */
export const VULKAN_ICD_DIRS: readonly string[] = [
  "/etc/vulkan/icd.d",
  "/usr/local/share/vulkan/icd.d",
  "/usr/share/vulkan/icd.d",
];

/** What {@linkcode chooseBackend} decided. */
export interface BackendChoice {
  /** The `DENO_WEBGPU_BACKEND` value to set, or undefined to leave it as it is. */
  set?: "vulkan" | "gl";
  /** The backend the process will use. */
  name: BackendName;
  /** How it was chosen, for a log line. */
  why: string;
}

const _NAMES: Record<string, BackendName> = {
  vulkan: "Vulkan",
  vk: "Vulkan",
  gl: "OpenGL",
  gles: "OpenGL",
  opengl: "OpenGL",
  metal: "Metal",
  mtl: "Metal",
  dx12: "D3D12",
  d3d12: "D3D12",
};

/**
 * Decides the backend: the user's `DENO_WEBGPU_BACKEND` when set; on Linux
 * Vulkan when a Vulkan ICD manifest is installed (or `VK_ICD_FILENAMES` /
 * `VK_DRIVER_FILES` names one), else OpenGL; Metal on macOS; on other systems
 * Deno's default. `hasVulkanIcd` is injectable for tests.
 */
export function chooseBackend(
  env: { get(name: string): string | undefined } = Deno.env,
  os: string = Deno.build.os,
  hasVulkanIcd: () => boolean = _hasVulkanIcd,
): BackendChoice {
  const given = env.get("DENO_WEBGPU_BACKEND");
  if (given) {
    const name = given.split(",").length === 1 ? _NAMES[given.trim().toLowerCase()] : undefined;
    return { name: name ?? "Deno's default backend", why: `DENO_WEBGPU_BACKEND=${given}` };
  }
  if (os === "darwin") return { name: "Metal", why: "the only backend on macOS" };
  if (os !== "linux") return { name: "Deno's default backend", why: `Deno's choice on ${os}` };
  if (env.get("VK_ICD_FILENAMES") || env.get("VK_DRIVER_FILES") || hasVulkanIcd()) {
    return { set: "vulkan", name: "Vulkan", why: "a Vulkan driver is installed" };
  }
  return { set: "gl", name: "OpenGL", why: "no Vulkan driver is installed" };
}

function _hasVulkanIcd(): boolean {
  for (const dir of VULKAN_ICD_DIRS) {
    try {
      for (const entry of Deno.readDirSync(dir)) {
        if (entry.name.endsWith(".json")) return true;
      }
    } catch {
      // a missing or unreadable folder holds no driver we can use
    }
  }
  return false;
}

/**
 * Applies {@linkcode chooseBackend} to this process (before its first
 * `getDevice()`: Deno reads the variable once) and returns the choice.
 */
export function useChosenBackend(): BackendChoice {
  const choice = chooseBackend();
  const allowed = Deno.permissions.querySync({ name: "env", variable: "DENO_WEBGPU_BACKEND" });
  if (!choice.set || allowed.state !== "granted") {
    return choice.set
      ? { name: "Deno's default backend", why: "no --allow-env to choose one" }
      : choice;
  }
  Deno.env.set("DENO_WEBGPU_BACKEND", choice.set);
  return choice;
}

/**
 * The one-line hint for Mesa's OpenGL software adapter, where Vulkan
 * lavapipe compiles shaders several times faster and adds `shader-f16`;
 * empty elsewhere.
 */
export function backendHint(
  name: BackendName,
  software: boolean,
  os: string = Deno.build.os,
): string {
  if (name !== "OpenGL" || !software || os !== "linux") return "";
  return "hint: `apt-get install -y mesa-vulkan-drivers` adds Mesa's Vulkan adapter (lavapipe): " +
    "faster shader compiles and shader-f16";
}

/** Folders that hold the Vulkan loader's implicit layers (loaded into every Vulkan process). */
export const VULKAN_LAYER_DIRS: readonly string[] = [
  "/etc/vulkan/implicit_layer.d",
  "/usr/local/share/vulkan/implicit_layer.d",
  "/usr/share/vulkan/implicit_layer.d",
];

/**
 * The shared libraries a Vulkan process loads on Linux: the loader, every
 * installed ICD (driver) and every implicit layer, as their manifests name
 * them. Preloading them (`LD_PRELOAD`) keeps them mapped until the process
 * exits, so that a thread that drops its WebGPU instance cannot unmap a
 * driver while the main thread runs exit handlers (see `tests/run.ts`).
 * Absolute paths that do not exist are left out.
 */
export function vulkanLibraries(
  icdDirs: readonly string[] = VULKAN_ICD_DIRS,
  layerDirs: readonly string[] = VULKAN_LAYER_DIRS,
): string[] {
  const libs = ["libvulkan.so.1"];
  const read = (dirs: readonly string[], key: "ICD" | "layer") => {
    for (const dir of dirs) {
      let entries: Deno.DirEntry[];
      try {
        entries = [...Deno.readDirSync(dir)].sort((a, b) => a.name.localeCompare(b.name));
      } catch {
        continue;
      }
      for (const entry of entries) {
        if (!entry.name.endsWith(".json")) continue;
        try {
          const manifest = JSON.parse(Deno.readTextFileSync(`${dir}/${entry.name}`));
          const path = manifest?.[key]?.library_path;
          if (typeof path !== "string" || path.includes(" ") || path.includes(":")) continue;
          if (path.startsWith("/")) Deno.statSync(path); // throws when it is missing
          libs.push(path);
        } catch {
          // an unreadable manifest or a missing library: the loader skips it too
        }
      }
    }
  };
  read(icdDirs, "ICD");
  read(layerDirs, "layer");
  return [...new Set(libs)];
}
