// The embedded runtime's window-edge timer, on vitest's fake clock: what it evaluates and when,
// and that it leaves no timer behind.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type CompiledPersona, compilePersona } from '../../core/persona/evaluate.js';
import { Persona } from '../../core/persona/schema.js';
import { startPersonaTicker } from '../../local/persona-ticker.js';

const T0 = Date.parse('2026-12-01T08:59:30.000Z');

function windowed(name: string, start: string, end: string): CompiledPersona {
  return compilePersona(
    Persona.parse({
      apiVersion: 'persona/v1',
      kind: 'Persona',
      metadata: { name },
      spec: { hosts: {}, parameters: {}, criteria: { schedule: { windows: [{ start, end }] } } },
    }),
    1,
  );
}

let evaluated: { names: string[]; at: number }[];

beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
  evaluated = [];
});

afterEach(() => {
  vi.useRealTimers();
});

const evaluate = async (personas: readonly CompiledPersona[], at: number) => {
  evaluated.push({ names: personas.map((p) => p.name), at });
};

describe('the persona ticker', () => {
  it('evaluates the personas whose window edge it is, at the edge, then arms for the next edge', async () => {
    const personas = [windowed('morning', '09:00', '12:00'), windowed('evening', '18:00', '22:00')];
    const ticker = startPersonaTicker({ load: async () => personas, evaluate });
    await vi.advanceTimersByTimeAsync(0);
    expect(ticker.armedFor).toBe(Date.parse('2026-12-01T09:00:00Z'));
    await vi.advanceTimersByTimeAsync(29_999);
    expect(evaluated).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(evaluated).toEqual([{ names: ['morning'], at: Date.parse('2026-12-01T09:00:00Z') }]);
    expect(ticker.armedFor).toBe(Date.parse('2026-12-01T12:00:00Z'));
    await ticker.stop();
  });

  it('reads the personas again every minute while the next edge is further away, evaluating nothing', async () => {
    const load = vi.fn(async () => [windowed('late', '10:00', '11:00')]);
    const ticker = startPersonaTicker({ load, evaluate });
    await vi.advanceTimersByTimeAsync(3 * 60_000 + 1);
    expect(load).toHaveBeenCalledTimes(4);
    expect(evaluated).toEqual([]);
    await ticker.stop();
  });

  it('re-arms at once when poked because personas changed', async () => {
    let personas = [windowed('late', '10:00', '11:00')];
    const ticker = startPersonaTicker({ load: async () => personas, evaluate });
    await vi.advanceTimersByTimeAsync(0);
    expect(ticker.armedFor).toBe(Date.parse('2026-12-01T10:00:00Z'));
    personas = [...personas, windowed('soon', '09:00', '09:30')];
    ticker.poke();
    await vi.advanceTimersByTimeAsync(0);
    expect(ticker.armedFor).toBe(Date.parse('2026-12-01T09:00:00Z'));
    await vi.advanceTimersByTimeAsync(30_000);
    expect(evaluated.map((e) => e.names)).toEqual([['soon']]);
    await ticker.stop();
  });

  it('evaluates an edge that passed while a poke was being handled, rather than skipping it', async () => {
    const personas = [windowed('morning', '09:00', '12:00')];
    const ticker = startPersonaTicker({ load: async () => personas, evaluate });
    await vi.advanceTimersByTimeAsync(0);
    // The clock passes the edge without the timer having run yet (a busy event loop).
    vi.setSystemTime(Date.parse('2026-12-01T09:00:05Z'));
    ticker.poke();
    await vi.advanceTimersByTimeAsync(0);
    expect(evaluated).toEqual([{ names: ['morning'], at: Date.parse('2026-12-01T09:00:05Z') }]);
    await ticker.stop();
  });

  it('reports a failed read and tries again a minute later', async () => {
    const errors: unknown[] = [];
    let fail = true;
    const ticker = startPersonaTicker({
      load: async () => {
        if (fail) throw new Error('DynamoDB Local is not answering');
        return [windowed('morning', '09:00', '12:00')];
      },
      evaluate,
      onError: (e) => errors.push(e),
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(errors).toHaveLength(1);
    fail = false;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(ticker.armedFor).toBe(Date.parse('2026-12-01T12:00:00Z'));
    expect(evaluated.map((e) => e.names)).toEqual([['morning']]);
    await ticker.stop();
  });

  it('leaves no timer behind once stopped, and arms none after', async () => {
    const ticker = startPersonaTicker({
      load: async () => [windowed('morning', '09:00', '12:00')],
      evaluate,
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(vi.getTimerCount()).toBe(1);
    await ticker.stop();
    expect(vi.getTimerCount()).toBe(0);
    ticker.poke();
    await vi.advanceTimersByTimeAsync(120_000);
    expect(vi.getTimerCount()).toBe(0);
    expect(evaluated).toEqual([]);
  });
});
