// The embedded runtime's stand-in for EventBridge Scheduler: one timer to the next window edge
// of all personas, which evaluates the hosts of the personas whose edge it is. It is armed
// again after each firing, when personas change (poke), and at least every minute, so that a
// persona written behind its back (another process on the same tables) is seen within one.
import { type CompiledPersona, nextWindowEdge } from '../core/persona/evaluate.js';

export interface PersonaTickerDeps {
  /** The personas as they are now, compiled. */
  load(): Promise<readonly CompiledPersona[]>;
  /** Evaluates the hosts of these personas (their window edge has come). */
  evaluate(personas: readonly CompiledPersona[], now: number): Promise<unknown>;
  readonly now?: () => number;
  readonly onError?: (error: unknown) => void;
  /** The longest the timer sleeps before reading the personas again. @default 60 000 ms */
  readonly maxSleepMs?: number;
}

export interface PersonaTicker {
  /** Personas changed: read them again and re-arm now. */
  poke(): void;
  /** Clears the timer and waits for an evaluation under way. */
  stop(): Promise<void>;
  /** The edge the timer is armed for, if any (epoch ms). */
  readonly armedFor: number | undefined;
}

export function startPersonaTicker(deps: PersonaTickerDeps): PersonaTicker {
  const now = deps.now ?? Date.now;
  const maxSleep = deps.maxSleepMs ?? 60_000;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let armedFor: number | undefined;
  // Every edge up to here has been evaluated. Each pass evaluates the edges after it that have
  // come, so a timer that fires early or late, a poke after an edge, or a failed read in
  // between never skips one (nor evaluates one twice).
  let checkedUpTo = now();
  // One pass (read, maybe evaluate, re-arm) at a time; a poke during one re-arms after it.
  let running: Promise<void> | undefined;
  let again = false;

  const schedule = (ms: number) => {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(run, Math.max(0, ms));
    timer.unref();
  };

  const pass = async () => {
    const personas = await deps.load();
    const t = now();
    const due = personas.filter((p) => {
      const edge = nextWindowEdge([p], checkedUpTo);
      return edge !== undefined && edge <= t;
    });
    checkedUpTo = t;
    if (due.length > 0) await deps.evaluate(due, t);
    const at = now();
    armedFor = nextWindowEdge(personas, t);
    schedule(armedFor === undefined ? maxSleep : Math.min(maxSleep, armedFor - at));
  };

  function run() {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = pass()
      .catch((e) => {
        deps.onError?.(e);
        schedule(maxSleep);
      })
      .finally(() => {
        running = undefined;
        if (again && !stopped) {
          again = false;
          run();
        }
      });
  }

  run();
  return {
    poke: run,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
      await running;
    },
    get armedFor() {
      return armedFor;
    },
  };
}
