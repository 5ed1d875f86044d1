import assert from "node:assert/strict";
import { expectedModules, parseJunit, verdict } from "./run.ts";
import { backendHint, chooseBackend, vulkanLibraries } from "../bench/backend.ts";

/** A JUnit report as deno test writes it, with `cases` as the body of one suite. */
function report(cases: string, suite = "./tests/a_test.ts"): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="deno test" tests="3" failures="0" errors="0" time="0.3">
    <testsuite name="${suite}" tests="3" disabled="0" errors="0" failures="0">
${cases}
    </testsuite>
    <testsuite name="./mod.ts#4-8.ts" tests="1" disabled="0" errors="0" failures="0">
        <testcase name="file:///x/mod.ts#4-8.ts" classname="./mod.ts#4-8.ts" time="0.008">
        </testcase>
    </testsuite>
</testsuites>
`;
}

const PASS = (name: string) =>
  `<testcase name="${name}" classname="./tests/a_test.ts" time="0.001" line="1" col="6">\n</testcase>`;
const ALL_PASSED = report(
  [
    PASS("one"),
    PASS("steps &gt; here"),
    PASS("steps"),
    `<testcase name="ign" classname="./tests/a_test.ts" time="0.000"><skipped/></testcase>`,
  ].join("\n"),
);
const ONE_FAILED = report(
  [
    PASS("one"),
    `<testcase name="fail &amp; more" classname="./tests/a_test.ts" time="0.001">
            <failure message="Uncaught Error: boom">Error: boom</failure>
        </testcase>`,
  ].join("\n"),
);
const OK = { success: true, code: 0, signal: null };
const EXPECTED = { modules: ["./tests/a_test.ts"] };

Deno.test("parseJunit reads suites, cases, failures, skips and steps", () => {
  const suites = parseJunit(ALL_PASSED);
  assert.deepEqual(suites.map((s) => s.name), ["./tests/a_test.ts", "./mod.ts#4-8.ts"]);
  assert.deepEqual(suites[0].cases.map((c) => [c.name, c.step, c.skipped]), [
    ["one", false, false],
    ["steps > here", true, false],
    ["steps", false, false],
    ["ign", false, true],
  ]);
  const failed = parseJunit(ONE_FAILED)[0].cases[1];
  assert.equal(failed.name, "fail & more");
  assert.equal(failed.failure, "Uncaught Error: boom");
  assert.throws(() => parseJunit(ALL_PASSED.slice(0, 300)), SyntaxError);
  assert.throws(() => parseJunit("ok | 3 passed | 0 failed"), SyntaxError);
});

Deno.test("test wrapper passes a clean run whose report lists every test as passed", () => {
  const result = verdict(OK, ALL_PASSED, EXPECTED);
  assert.equal(result.exitCode, 0);
  assert.equal(result.passed, 3); // one, steps, the doc example; the step and the ignored test are not counted
  assert.match(result.message, /3 tests passed, 1 ignored or filtered out/);
});

Deno.test("test wrapper fails a failing test, even when deno test exits 0", () => {
  for (const status of [OK, { success: false, code: 1, signal: null }]) {
    const result = verdict(status, ONE_FAILED, EXPECTED);
    assert.equal(result.exitCode, 1);
    assert.match(result.message, /1 test case failed:\n {2}\.\/tests\/a_test\.ts => fail & more/);
  }
});

Deno.test("test wrapper fails a crash before the report, and a missing report", () => {
  const crashed = verdict({ success: false, code: 139, signal: "SIGSEGV" }, undefined, EXPECTED);
  assert.equal(crashed.exitCode, 139);
  assert.match(crashed.message, /killed by SIGSEGV without writing its report/);
  // A test that calls Deno.exit(0) ends deno test "successfully", with no report.
  const exited = verdict(OK, undefined, EXPECTED);
  assert.equal(exited.exitCode, 1);
  assert.match(exited.message, /exited with code 0 without writing its report/);
  // A report cut short (the process died while writing it).
  const cut = verdict(
    { success: false, code: 134, signal: "SIGABRT" },
    ALL_PASSED.slice(0, 400),
    EXPECTED,
  );
  assert.equal(cut.exitCode, 134);
  assert.match(cut.message, /does not parse/);
});

Deno.test("test wrapper fails too few tests and test modules missing from the report", () => {
  const few = verdict(OK, ALL_PASSED, { ...EXPECTED, minPassed: 4 });
  assert.equal(few.exitCode, 1);
  assert.match(few.message, /3 tests passed, fewer than the 4 expected/);
  const missing = verdict(OK, ALL_PASSED, { modules: ["./tests/a_test.ts", "./tests/b_test.ts"] });
  assert.equal(missing.exitCode, 1);
  assert.match(missing.message, /1 test module reported no tests .*\.\/tests\/b_test\.ts/);
  // Everything filtered out: no test ran.
  const none = verdict(
    OK,
    `<testsuites name="deno test">\n<testsuite name="./tests/a_test.ts">\n` +
      `<testcase name="one"><skipped/></testcase>\n</testsuite>\n</testsuites>\n`,
    EXPECTED,
  );
  assert.equal(none.exitCode, 1);
  assert.match(none.message, /0 tests passed, fewer than the 1 expected/);
});

Deno.test("test wrapper accepts only a teardown crash after an all-passed report", () => {
  for (const signal of ["SIGSEGV", "SIGABRT"]) {
    const crashed = verdict({ success: false, code: 134, signal }, ALL_PASSED, EXPECTED);
    assert.equal(crashed.exitCode, 0);
    assert.match(crashed.message, new RegExp(`3 tests passed.*died with ${signal}`, "s"));
    assert.equal(
      verdict({ success: false, code: 134, signal }, ONE_FAILED, EXPECTED).exitCode,
      134,
    );
  }
  assert.equal(
    verdict({ success: false, code: 137, signal: "SIGKILL" }, ALL_PASSED, EXPECTED).exitCode,
    137,
  );
  // A non-zero exit after a clean report (e.g. an error outside any test) fails.
  const code1 = verdict({ success: false, code: 1, signal: null }, ALL_PASSED, EXPECTED);
  assert.equal(code1.exitCode, 1);
  assert.match(code1.message, /but deno test exited with code 1/);
});

Deno.test("expectedModules lists test modules under folders and files given directly", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/tests/sub`, { recursive: true });
    for (const f of ["tests/a_test.ts", "tests/sub/b.test.ts", "tests/_helpers.ts", "mod.ts"]) {
      await Deno.writeTextFile(`${root}/${f}`, "");
    }
    assert.deepEqual(
      expectedModules(["--parallel", "--doc", "mod.ts", "tests/", "--filter", "x"], root),
      ["./tests/a_test.ts", "./tests/sub/b.test.ts"],
    );
    assert.deepEqual(expectedModules(["tests/a_test.ts", "missing/"], root), ["./tests/a_test.ts"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** Runs tests/run.ts in `cwd` on the given test modules; returns its exit code and stderr. */
async function runWrapper(cwd: string, files: Record<string, string>, args: string[]) {
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${cwd}/${name}`, text);
  }
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      "--allow-run",
      new URL("./run.ts", import.meta.url).pathname,
      ...args,
    ],
    cwd,
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return { code, stderr: new TextDecoder().decode(stderr) };
}

Deno.test("deno task test: the verdict of real deno test runs comes from their report", async () => {
  const cwd = await Deno.makeTempDir();
  try {
    const passing = { "a_test.ts": `Deno.test("a", () => {});\nDeno.test("b", () => {});\n` };
    const ok = await runWrapper(cwd, passing, ["a_test.ts"]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /ok: 2 tests passed/);
    const fewer = await runWrapper(cwd, passing, ["--expect", "3", "a_test.ts"]);
    assert.equal(fewer.code, 1);
    assert.match(fewer.stderr, /2 tests passed, fewer than the 3 expected/);
    const failing = await runWrapper(cwd, {
      "f_test.ts": `Deno.test("f", () => { throw new Error("no"); });\n`,
    }, ["a_test.ts", "f_test.ts"]);
    assert.equal(failing.code, 1);
    assert.match(failing.stderr, /1 test case failed:\n {2}\.\/f_test\.ts => f/);
    // A crash in the middle of the run: deno test dies before it writes its report.
    const crash = await runWrapper(cwd, {
      "c_test.ts": `Deno.test("c", () => { Deno.kill(Deno.pid, "SIGKILL"); });\n`,
    }, ["a_test.ts", "c_test.ts"]);
    assert.notEqual(crash.code, 0);
    assert.match(crash.stderr, /killed by SIGKILL without writing its report/);
    // A module that fails to load is left out of deno's report.
    const broken = await runWrapper(cwd, { "l_test.ts": `throw new Error("load");\n` }, [
      "a_test.ts",
      "l_test.ts",
    ]);
    assert.notEqual(broken.code, 0);
    assert.match(broken.stderr, /FAILED/);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("chooseBackend keeps the user's choice, else one driver: Vulkan if installed, else OpenGL", () => {
  const env = (vars: Record<string, string>) => ({ get: (k: string) => vars[k] });
  assert.deepEqual(chooseBackend(env({ DENO_WEBGPU_BACKEND: "gl" }), "linux", () => true), {
    name: "OpenGL",
    why: "DENO_WEBGPU_BACKEND=gl",
  });
  assert.equal(chooseBackend(env({}), "linux", () => true).set, "vulkan");
  assert.equal(
    chooseBackend(env({ VK_DRIVER_FILES: "x.json" }), "linux", () => false).set,
    "vulkan",
  );
  const gl = chooseBackend(env({}), "linux", () => false);
  assert.equal(gl.set, "gl");
  assert.equal(gl.name, "OpenGL");
  assert.equal(chooseBackend(env({}), "darwin", () => false).name, "Metal");
  assert.equal(chooseBackend(env({}), "windows", () => false).set, undefined);
  assert.match(backendHint("OpenGL", true, "linux"), /apt-get install -y mesa-vulkan-drivers/);
  assert.equal(backendHint("Vulkan", true, "linux"), "");
  assert.equal(backendHint("OpenGL", false, "linux"), "");
});

Deno.test("vulkanLibraries lists the loader, the drivers and layers their manifests name", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/icd`);
    await Deno.mkdir(`${root}/layers`);
    await Deno.writeTextFile(`${root}/driver.so`, "");
    const icd = (path: string) => JSON.stringify({ ICD: { library_path: path } });
    await Deno.writeTextFile(`${root}/icd/a.json`, icd(`${root}/driver.so`));
    await Deno.writeTextFile(`${root}/icd/b.json`, icd(`${root}/missing.so`)); // left out
    await Deno.writeTextFile(`${root}/icd/c.json`, "{ not json");
    await Deno.writeTextFile(
      `${root}/layers/l.json`,
      JSON.stringify({ layer: { library_path: "libLayer.so" } }),
    );
    assert.deepEqual(vulkanLibraries([`${root}/icd`, `${root}/none`], [`${root}/layers`]), [
      "libvulkan.so.1",
      `${root}/driver.so`,
      "libLayer.so",
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
