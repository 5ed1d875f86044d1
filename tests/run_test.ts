import assert from "node:assert/strict";
import { verdict } from "./run.ts";

const PASSED = "\x1b[32mok\x1b[0m | 84 passed | 0 failed \x1b[38;5;245m(48s)\x1b[0m\n\n";
const FAILED = "FAILED | 83 passed | 1 failed (50s)\n";

Deno.test("test wrapper keeps deno test's verdict for clean exits", () => {
  assert.deepEqual(verdict({ success: true, code: 0, signal: null }, PASSED), {
    exitCode: 0,
    message: "",
  });
  assert.equal(verdict({ success: false, code: 1, signal: null }, FAILED).exitCode, 1);
  // A non-zero exit after an "ok" summary (e.g. a leak report) still fails.
  assert.equal(verdict({ success: false, code: 1, signal: null }, PASSED).exitCode, 1);
});

Deno.test("test wrapper passes only a teardown crash after an all-passed summary", () => {
  for (const signal of ["SIGSEGV", "SIGABRT"]) {
    const crashed = verdict({ success: false, code: 134, signal }, PASSED);
    assert.equal(crashed.exitCode, 0);
    assert.match(crashed.message, /all 84 tests passed/);
  }
  const withSteps = "ok | 3 passed (12 steps) | 0 failed | 1 ignored (2s)\n";
  assert.equal(verdict({ success: false, code: 139, signal: "SIGSEGV" }, withSteps).exitCode, 0);
});

Deno.test("test wrapper fails crashes before the summary, after failures, and other signals", () => {
  const midRun = "tests/matmul_test.ts => matmul ... ok (1s)\n";
  const early = verdict({ success: false, code: 139, signal: "SIGSEGV" }, midRun);
  assert.equal(early.exitCode, 139);
  assert.match(early.message, /killed by SIGSEGV/);
  assert.equal(verdict({ success: false, code: 134, signal: "SIGABRT" }, FAILED).exitCode, 134);
  assert.equal(verdict({ success: false, code: 137, signal: "SIGKILL" }, PASSED).exitCode, 137);
});
