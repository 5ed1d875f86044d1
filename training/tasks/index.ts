/**
 * The task registry: every task by name, with its options.
 *
 * @module
 */

import { createCountTask } from "./count.ts";
import { createMnistTask } from "./mnist.ts";
import { createMqarTask } from "./mqar.ts";
import { createSortTask } from "./sort.ts";
import type { Task, TaskOptions } from "./task.ts";
import { createTeacherTask } from "./teacher.ts";

const TEACHER_OPTIONS = [
  "seqLen",
  "dim",
  "outDim",
  "rank",
  "teacherHeads",
  "teacherActivation",
  "expert",
  "noise",
  "scoreStd",
  "teacherSeed",
];

/** Names of the tasks sigmax can train on. */
export const TASK_NAMES = ["teacher", "mqar", "count", "sort", "mnist"] as const;

/** A task name. */
export type TaskName = typeof TASK_NAMES[number];

/**
 * Builds task `name` from `options` (n, seed, testSize and the task's own
 * options). Unknown names and options out of range throw a RangeError; an
 * option the task does not have throws too, so a typo is not ignored.
 */
export async function createTask(
  name: TaskName,
  options: TaskOptions & Record<string, unknown>,
): Promise<Task> {
  const known: Record<TaskName, string[]> = {
    teacher: TEACHER_OPTIONS,
    mqar: ["vocab", "pairs", "queries"],
    count: ["vocab", "seqLen"],
    sort: ["vocab", "seqLen"],
    mnist: ["normalize"],
  };
  if (!TASK_NAMES.includes(name)) {
    throw new RangeError(`unknown task ${JSON.stringify(name)}; tasks: ${TASK_NAMES.join(", ")}`);
  }
  for (const key of Object.keys(options)) {
    if (["n", "seed", "testSize"].includes(key) || known[name].includes(key)) continue;
    throw new RangeError(
      `task ${name} has no option ${JSON.stringify(key)}; its options: ` +
        `${known[name].join(", ") || "(none)"}`,
    );
  }
  const o = options as never;
  switch (name) {
    case "teacher":
      return createTeacherTask(o);
    case "mqar":
      return createMqarTask(o);
    case "count":
      return createCountTask(o);
    case "sort":
      return createSortTask(o);
    case "mnist":
      return await createMnistTask(o);
  }
}
