/**
 * What a run reports as it goes: the JSON-lines log (rewound to the
 * checkpoint when a run resumes) and the progress line on stderr.
 *
 * @module
 */

import type { EvalRecord } from "./evaluate.ts";
import { formatSeconds } from "./format.ts";

/** An append-only JSON-lines file; a resumed run first drops the lines after its checkpoint. */
export class JsonLog {
  private constructor(readonly path: string, readonly file: Deno.FsFile) {}

  static async open(path: string): Promise<JsonLog> {
    const file = await Deno.open(path, { create: true, append: true });
    return new JsonLog(path, file);
  }

  /** Keeps only what a run resumed at `step` had logged up to it (nothing when step is 0). */
  async rewind(step: number): Promise<void> {
    const text = await Deno.readTextFile(this.path);
    const kept = step === 0 ? [] : text.split("\n").filter((line) => {
      if (!line.trim()) return false;
      try {
        const rec = JSON.parse(line) as { type?: string; step?: number };
        return rec.type === "start" || rec.type === "resume"
          ? true
          : (rec.step ?? 0) <= step && rec.type !== "end";
      } catch {
        return false; // a line cut short by a kill
      }
    });
    await Deno.writeTextFile(this.path, kept.map((l) => l + "\n").join(""));
  }

  async write(record: Record<string, unknown>): Promise<void> {
    await this.file.write(new TextEncoder().encode(JSON.stringify(record) + "\n"));
  }

  async close(): Promise<void> {
    await this.file.sync().catch(() => {});
    this.file.close();
  }
}

/** The progress line: step, loss, last metric, tokens/s, ETA. On a terminal it rewrites one line. */
export class Progress {
  #lastPrint = 0;
  #metric = "";
  readonly #tty: boolean;
  readonly #started = performance.now();

  constructor(readonly enabled: boolean, readonly steps: number, readonly startStep: number) {
    this.#tty = Deno.stderr.isTerminal();
  }

  step(step: number, loss: number | undefined, tokensPerSecond: number): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (now - this.#lastPrint < (this.#tty ? 250 : 5000) && step !== this.steps) return;
    this.#lastPrint = now;
    const done = step - this.startStep;
    const perStep = (now - this.#started) / 1000 / Math.max(1, done);
    const eta = formatSeconds(perStep * (this.steps - step));
    const line = `step ${step}/${this.steps}  loss ${loss === undefined ? "…" : loss.toFixed(4)}` +
      `${this.#metric}  ${formatRate(tokensPerSecond)} tok/s  ETA ${eta}`;
    this.#print(line);
  }

  eval(record: EvalRecord, name: string): void {
    this.#metric = `  test ${name} ${record.metric.toFixed(4)} @${record.step}`;
  }

  done(): void {
    if (this.enabled && this.#tty) Deno.stderr.writeSync(new TextEncoder().encode("\n"));
  }

  #print(line: string): void {
    const text = this.#tty ? `\r${line}\x1b[K` : `${line}\n`;
    Deno.stderr.writeSync(new TextEncoder().encode(text));
  }
}

function formatRate(r: number): string {
  return r >= 1e6
    ? `${(r / 1e6).toFixed(2)}M`
    : r >= 1e3
    ? `${(r / 1e3).toFixed(1)}k`
    : r.toFixed(0);
}
