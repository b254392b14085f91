/**
 * Progress of long local runs (replay, catch-up, benchmarks): a bar (cli-progress) when stdout is a terminal,
 * otherwise plain lines. Both go to stderr, so stdout stays the command's result (the JSON summary line).
 */
import cliProgress from 'cli-progress';

export interface Progress {
  tick(detail?: string): void;
  stop(): void;
}

export function progress(
  label: string,
  total: number,
  options: { tty?: boolean; every?: number } = {},
): Progress {
  const tty = options.tty ?? process.stdout.isTTY === true;
  let done = 0;
  if (tty && total > 1) {
    const bar = new cliProgress.SingleBar(
      { format: `${label} [{bar}] {value}/{total} {detail}`, hideCursor: true, clearOnComplete: false },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { detail: '' });
    return {
      tick: (detail = '') => bar.update(++done, { detail }),
      stop: () => bar.stop(),
    };
  }
  const every = options.every ?? Math.max(1, Math.ceil(total / 20));
  return {
    tick: (detail) => {
      done++;
      if (done % every === 0 || done === total) {
        process.stderr.write(`${label}: ${done}/${total}${detail ? ` ${detail}` : ''}\n`);
      }
    },
    stop: () => undefined,
  };
}
