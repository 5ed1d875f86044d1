/**
 * The study runner: the grid and its shards, and a sweep killed mid-run then
 * re-run: no run lost, none done twice, the interrupted one resumed.
 */

import assert from "node:assert/strict";
import {
  logSpaced,
  PAPER_PRESETS,
  paperGrid,
  parseShard,
  shardOf,
  STUDY_PRESETS,
  studyGrid,
} from "../training/study/grid.ts";
import { readMoeRuns, readRuns } from "../training/study/runner.ts";

Deno.test("the grid pairs both activations on every (cell, n, seed), with unique stable ids", () => {
  const grid = studyGrid(STUDY_PRESETS.quick);
  const q = STUDY_PRESETS.quick;
  const expected = q.cells.reduce((sum, c) => sum + c.ns.length, 0) * q.seeds.length * 2;
  assert.equal(grid.length, expected);
  assert.equal(new Set(grid.map((r) => r.id)).size, grid.length);
  for (const run of grid.filter((r) => r.attention === "softmax")) {
    const twin = grid.find((r) =>
      r.attention === "sigmoid" && r.cell === run.cell && r.n === run.n && r.seed === run.seed
    );
    assert.ok(twin, `${run.id} has no sigmoid twin`);
    assert.deepEqual({ ...twin.config, attention: "softmax" }, run.config);
  }
  assert.deepEqual(studyGrid(STUDY_PRESETS.quick).map((r) => r.id), grid.map((r) => r.id));
  assert.ok(studyGrid(q, ["count"]).every((r) => r.cell === "count"));
  assert.throws(() => studyGrid(q, ["nope"]), /no cell or task "nope"/);
});

Deno.test("shards cover the grid exactly once", () => {
  const grid = studyGrid(STUDY_PRESETS.quick);
  for (const count of [1, 2, 3, 7]) {
    const seen = new Map<string, number>();
    for (let index = 1; index <= count; index++) {
      for (const run of shardOf(grid, { index, count })) {
        seen.set(run.id, (seen.get(run.id) ?? 0) + 1);
      }
    }
    assert.equal(seen.size, grid.length);
    assert.ok([...seen.values()].every((k) => k === 1));
  }
  assert.deepEqual(parseShard("2/4"), { index: 2, count: 4 });
  for (const bad of ["0/2", "3/2", "1", "a/b", "1/0"]) {
    assert.throws(() => parseShard(bad), /--shard must be i\/n/);
  }
});

/** Runs `deno run cli.ts study` with `args` (the task's permissions). */
function study(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-env", "--allow-read", "--allow-write", "cli.ts", "study", ...args],
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

async function listCheckpoints(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(`${dir}/checkpoints`)) {
      if (e.name.endsWith(".ckpt")) out.push(e.name.replace(/\.ckpt$/, ""));
    }
  } catch {
    // not created yet
  }
  return out;
}

Deno.test("a study killed mid-run and re-run loses no run, repeats none, and resumes the interrupted one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sigmax-study-" });
  try {
    const base = ["--preset", "tiny", "--out", dir, "--checkpoint-every", "5", "--quiet"];
    // Shard 1 of 2, killed as soon as a run has a checkpoint on disk.
    const first = study([...base, "--shard", "1/2"]);
    let interrupted: string[] = [];
    for (let i = 0; i < 3000 && interrupted.length === 0; i++) {
      interrupted = await listCheckpoints(dir);
      if (interrupted.length === 0) await new Promise((r) => setTimeout(r, 10));
    }
    first.kill("SIGKILL");
    await first.status;
    await first.stderr.cancel();
    interrupted = await listCheckpoints(dir);
    assert.ok(interrupted.length > 0, "the kill came after the run finished; no checkpoint left");

    // Shard 1 again (resumes, then finishes), then shard 2 (which also analyses: all runs present).
    for (const shard of ["1/2", "2/2"]) {
      const child = study([...base, "--shard", shard]);
      const { code } = await child.status;
      const err = new TextDecoder().decode(
        (await new Response(child.stderr).arrayBuffer()) as ArrayBuffer,
      );
      assert.equal(code, 0, err);
    }
    const grid = studyGrid(STUDY_PRESETS.tiny);
    const runs = await readRuns(dir);
    assert.deepEqual(runs.map((r) => r.spec.id), grid.map((r) => r.id));
    const events = (await Deno.readTextFile(`${dir}/events.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    for (const run of grid) {
      const done = events.filter((e) => e.run === run.id && e.event === "done");
      assert.equal(done.length, 1, `${run.id} finished ${done.length} times`);
    }
    for (const id of interrupted) {
      assert.ok(events.some((e) => e.run === id && e.event === "resume"), `${id} was not resumed`);
    }
    assert.deepEqual(await listCheckpoints(dir), []);
    for (const file of ["study.json", "study.md", "study.html"]) {
      assert.ok((await Deno.stat(`${dir}/${file}`)).size > 0, `${file} is missing`);
    }
    const analysis = JSON.parse(await Deno.readTextFile(`${dir}/study.json`));
    assert.equal(analysis.runs, grid.length);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("study rejects bad options with exit code 2", async () => {
  for (
    const [args, message] of [
      [
        ["--preset", "huge"],
        /--preset must be paper-quick, paper-quick-lownoise, paper-quick-bound20, paper, paper-tiny,\s+paper-attention, quick, full or tiny/,
      ],
      [["--preset", "paper-tiny", "--task", "nope"], /no cell "nope"/],
      [["--preset", "tiny", "--shard", "3/2"], /--shard must be i\/n/],
      [["--preset", "tiny", "--task", "nope"], /no cell or task "nope"/],
      [
        ["--preset", "tiny", "--checkpoint-every", "0"],
        /--checkpoint-every must be a positive integer/,
      ],
    ] as const
  ) {
    const child = study([...args]);
    const { code } = await child.status;
    const err = new TextDecoder().decode(
      (await new Response(child.stderr).arrayBuffer()) as ArrayBuffer,
    );
    assert.equal(code, 2, `${args.join(" ")}: ${err}`);
    assert.match(err, message);
  }
});

Deno.test("the paper grid pairs both gates on every (cell, n, seed); paper-quick spans ≥ 8 n over ≥ 2 decades with ≥ 10 seeds", () => {
  for (const preset of Object.values(PAPER_PRESETS)) {
    const grid = paperGrid(preset);
    const expected = preset.cells.reduce((sum, c) => sum + c.ns.length, 0) * preset.seeds.length *
      2;
    assert.equal(grid.length, expected);
    assert.equal(new Set(grid.map((r) => r.id)).size, grid.length);
    for (const run of grid.filter((r) => r.attention === "softmax")) {
      const twin = grid.find((r) =>
        r.attention === "sigmoid" && r.cell === run.cell && r.n === run.n && r.seed === run.seed
      );
      assert.ok(twin, `${run.id} has no sigmoid twin`);
      // Same data seed, same cell; the gate of truth and fit is the only difference, but
      // for the noise of a positive control's planted gate.
      assert.deepEqual({ ...twin.moe, gate: "softmax", noise: run.moe.noise }, run.moe);
      const cell = preset.cells.find((c) => c.name === run.cell)!;
      if (!cell.planted) assert.equal(twin.moe.noise, run.moe.noise);
      else {
        const shrunk = cell.planted.gate === "sigmoid" ? twin : run;
        const n0 = Math.min(...cell.ns);
        assert.equal(shrunk.moe.noise, preset.noise * (run.n / n0) ** -cell.planted.exponent);
        assert.equal((shrunk === twin ? run : twin).moe.noise, preset.noise);
      }
    }
  }
  for (const name of ["paper-quick", "paper"] as const) {
    const p = PAPER_PRESETS[name];
    assert.ok(p.seeds.length >= 10, `${name}: ${p.seeds.length} seeds`);
    for (const cell of p.cells) {
      assert.ok(cell.ns.length >= 8, `${name} ${cell.name}: ${cell.ns.length} n`);
      assert.ok(
        Math.max(...cell.ns) / Math.min(...cell.ns) >= 100,
        `${name} ${cell.name}: < 2 decades`,
      );
    }
    assert.ok(
      p.cells.some((c) => c.role === "control") && p.cells.some((c) => c.role === "primary") &&
        p.cells.some((c) => c.role === "planted"),
    );
  }
  assert.deepEqual(logSpaced(10, 1000, 3), [10, 100, 1000]);
  assert.throws(() => logSpaced(10, 5, 3), /logSpaced needs/);
  const grid = paperGrid(PAPER_PRESETS["paper-quick"]);
  for (const count of [1, 3, 8]) {
    const seen = new Set<string>();
    for (let index = 1; index <= count; index++) {
      for (const run of shardOf(grid, { index, count })) {
        assert.ok(!seen.has(run.id));
        seen.add(run.id);
      }
    }
    assert.equal(seen.size, grid.length);
  }
  assert.throws(() => paperGrid(PAPER_PRESETS["paper-tiny"], ["nope"]), /no cell "nope"/);
});

Deno.test("the paper study runs in shards, skips finished fits on a re-run, and reports seeds with missing runs as such", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sigmax-paper-" });
  try {
    const base = ["--preset", "paper-tiny", "--out", dir, "--quiet"];
    const run = async (args: string[]) => {
      const child = study([...base, ...args]);
      const { code } = await child.status;
      const err = new TextDecoder().decode(
        (await new Response(child.stderr).arrayBuffer()) as ArrayBuffer,
      );
      assert.equal(code, 0, err);
    };
    await run(["--shard", "1/2"]);
    const grid = paperGrid(PAPER_PRESETS["paper-tiny"]);
    const half = await readMoeRuns(dir);
    assert.deepEqual(
      half.map((r) => r.spec.id),
      shardOf(grid, { index: 1, count: 2 }).map((r) => r.id),
    );
    // Half the runs: every seed misses some, so no cell has 2 complete seeds yet.
    let analysis = JSON.parse(await Deno.readTextFile(`${dir}/study.json`));
    assert.ok(analysis.cells.every((c: { verdict: string }) => c.verdict === "no data"));
    await run(["--shard", "2/2"]);
    await run([]); // everything done: skips all
    const runs = await readMoeRuns(dir);
    assert.deepEqual(runs.map((r) => r.spec.id), grid.map((r) => r.id));
    const events = (await Deno.readTextFile(`${dir}/events.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    for (const r of grid) {
      assert.equal(events.filter((e) => e.run === r.id && e.event === "done").length, 1, r.id);
    }
    analysis = JSON.parse(await Deno.readTextFile(`${dir}/study.json`));
    assert.equal(analysis.kind, "paper");
    assert.equal(analysis.runs, grid.length);
    for (const c of analysis.cells) {
      assert.deepEqual(c.seeds, PAPER_PRESETS["paper-tiny"].seeds);
      assert.notEqual(c.verdict, "no data");
    }
    // --analyze on a folder without runs says so (exit 1), instead of failing to write.
    const empty = await Deno.makeTempDir({ prefix: "sigmax-paper-empty-" });
    const child = study(["--preset", "paper-tiny", "--out", `${empty}/none`, "--analyze"]);
    const { code } = await child.status;
    const err = new TextDecoder().decode(
      (await new Response(child.stderr).arrayBuffer()) as ArrayBuffer,
    );
    await Deno.remove(empty, { recursive: true });
    assert.equal(code, 1, err);
    assert.match(err, /no finished runs in .*: nothing to analyse/);
    // A lost run leaves its seed out of the analysis, named as incomplete.
    const lost = grid.find((r) => r.seed === 2)!;
    await Deno.remove(`${dir}/runs/${lost.id}.json`);
    await run(["--analyze"]);
    analysis = JSON.parse(await Deno.readTextFile(`${dir}/study.json`));
    const cell = analysis.cells.find((c: { cell: string }) => c.cell === lost.cell);
    assert.deepEqual(cell.incompleteSeeds, [2]);
    assert.equal(cell.verdict, "no data");
    for (const file of ["study.md", "study.html"]) {
      assert.ok((await Deno.stat(`${dir}/${file}`)).size > 0, `${file} is missing`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("paper-attention trains as an estimator: full batch, no weight decay or clipping, a plateau criterion, ≥ 8 n over ≥ 2 decades, ≥ 10 seeds, 2 teacher draws", () => {
  const p = STUDY_PRESETS["paper-attention"];
  assert.ok(p.seeds.length >= 10);
  for (const cell of p.cells) {
    assert.equal(cell.train.fullBatch, true, cell.name);
    assert.equal(cell.train.weightDecay, 0, cell.name);
    assert.equal(cell.train.clip, 0, cell.name);
    assert.ok((cell.train.plateauTol ?? 0) > 0, cell.name);
    assert.ok(cell.ns.length >= 8 && Math.max(...cell.ns) / Math.min(...cell.ns) >= 100, cell.name);
  }
  const draws = new Set(p.cells.filter((c) => c.teacher).map((c) => c.taskOptions.teacherSeed));
  assert.equal(draws.size, 2);
  assert.ok(p.cells.filter((c) => c.teacher).every((c) => c.teacher!.studentHeads === 1));
  for (const task of ["count", "sort", "mqar", "mnist"]) {
    assert.ok(p.cells.some((c) => c.task === task), task);
  }
});
