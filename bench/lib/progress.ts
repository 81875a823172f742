/**
 * The progress line on stderr: redrawn in place on a terminal, and at most one line
 * every few seconds otherwise (CI logs), so a long scenario is never silent.
 *
 * @module
 */

const PLAIN_INTERVAL = 5_000;

export class Progress {
  readonly #tty = process.stderr.isTTY;
  #lastPlain = 0;
  #drawn = false;

  /** Shows the current state of a long step. */
  update(text: string): void {
    if (this.#tty) {
      process.stderr.write(`\r\x1b[K${text}`);
      this.#drawn = true;
      return;
    }
    const now = Date.now();
    if (now - this.#lastPlain < PLAIN_INTERVAL) return;
    this.#lastPlain = now;
    process.stderr.write(`${text}\n`);
  }

  /** A line that stays: a finished step or a result. */
  log(text: string): void {
    if (this.#drawn) process.stderr.write('\r\x1b[K');
    this.#drawn = false;
    process.stderr.write(`${text}\n`);
    this.#lastPlain = Date.now();
  }
}
