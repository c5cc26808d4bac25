// A manual activation: an operator puts a host in a persona now (POST /personas/{name}/activate).
// It is recorded in the host's state as `manual`, kept by evaluation until it expires (the next
// window edge of the host's personas, or a time the operator gives), recorded as a decision with
// action 'manual', and applied by the same switch as every other decision.
import { createHash } from 'node:crypto';
import { ConflictError, InvalidInputError, NotFoundError } from '../errors.js';
import { compilePersona, manualUntil } from './evaluate.js';
import type { Decision, HostPersonaState, Persona } from './schema.js';
import type { PersonaSwitchRequest } from './service.js';
import { HostPersonaConflictError, type HostPersonaStore } from './state.js';
import type { VersionedPersona } from './store.js';

export interface ActivationDeps {
  readonly personas: {
    get(name: string): Promise<VersionedPersona>;
    loadAll(): Promise<readonly VersionedPersona[]>;
  };
  readonly hosts: {
    get(
      name: string,
    ): Promise<{ readonly registration: { readonly name: string; readonly tags: Record<string, string> } }>;
  };
  readonly states: Pick<HostPersonaStore, 'get' | 'save' | 'record'>;
  /** Starts the switch that applies the persona (functions/shared/persona-switch.ts in the API). */
  readonly startSwitch: (request: PersonaSwitchRequest) => Promise<{ readonly operationId: string }>;
  readonly now?: () => number;
  readonly retentionDays?: number;
}

export interface ActivationRequest {
  readonly persona: string;
  readonly host: string;
  /** Epoch ms; undefined: until the next window edge of the host's personas; null: until changed. */
  readonly until?: number | null;
  /** The request's Idempotency-Key: a retry starts no second switch. */
  readonly idempotencyKey?: string;
}

export interface Activation {
  readonly host: string;
  readonly persona: { readonly name: string; readonly version: number };
  readonly manual: { readonly at: number; readonly until: number | null };
  readonly operationId: string;
  readonly decision: Decision;
  /** False when the same activation was already in force (a retried request): nothing recorded again. */
  readonly recorded: boolean;
}

const iso = (t: number) => new Date(t).toISOString();

/** The switch key of a manual activation: one per host, persona and Idempotency-Key. */
export function activationKey(host: string, persona: string, key: string): string {
  const digest = createHash('sha256')
    .update(JSON.stringify(['activate', host, persona, key]))
    .digest('base64url');
  return `manual-${digest.slice(0, 40)}`;
}

export async function activatePersona(deps: ActivationDeps, request: ActivationRequest): Promise<Activation> {
  const now = (deps.now ?? Date.now)();
  const { persona, version } = await deps.personas.get(request.persona);
  const name = persona.metadata.name;
  let registration: { name: string; tags: Record<string, string> };
  try {
    registration = (await deps.hosts.get(request.host)).registration;
  } catch (e) {
    if (e instanceof NotFoundError)
      throw new NotFoundError(`host ${request.host} (body.host) is not registered`, request.host, {
        cause: e,
      });
    throw e;
  }
  const ref = { name: registration.name, labels: registration.tags };
  const compiled = compilePersona(persona, version.version);
  if (!compiled.selects(ref)) {
    throw new ConflictError(
      `persona ${name} does not select host ${registration.name} (body.host): its hosts are ${describeSelector(persona)}`,
    );
  }
  let until: number | null;
  if (request.until === undefined) {
    const others = (await deps.personas.loadAll())
      .filter((p) => p.persona.metadata.name !== name)
      .map((p) => compilePersona(p.persona, p.version.version))
      .filter((p) => p.selects(ref));
    until = manualUntil([compiled, ...others], now);
  } else {
    until = request.until;
    if (until !== null && until <= now) {
      throw new InvalidInputError('an activation ends in the future', [
        { path: 'body.until', message: `${iso(until)} is not after now (${iso(now)})` },
      ]);
    }
  }

  const decision: Decision = {
    host: registration.name,
    at: now,
    action: 'manual',
    from: null,
    to: name,
    mode: 'act',
    summary: `manual activation of ${name} v${version.version} ${until === null ? 'until changed' : `until ${iso(until)}`}`,
    reasons: [
      {
        path: '',
        holds: 'true',
        detail: `activated by an operator (POST /personas/${name}/activate)`,
        values: { until: until === null ? null : iso(until) },
      },
    ],
  };

  // Written on top of the state read; an evaluation that switched the host meanwhile is read
  // again rather than overwritten.
  let recorded = true;
  let from: string | null = null;
  let at = now;
  for (let attempt = 0; ; attempt++) {
    const state = await deps.states.get(registration.name);
    from = state?.current ?? null;
    // The same activation in force already: a retried request. Record nothing twice.
    if (
      state?.manual?.persona === name &&
      state.manual.until === until &&
      request.idempotencyKey !== undefined
    ) {
      recorded = false;
      at = state.manual.at;
      break;
    }
    const next: HostPersonaState = {
      host: registration.name,
      current: state?.current ?? null,
      ...(state?.currentVersion === undefined ? {} : { currentVersion: state.currentVersion }),
      since: state?.since ?? now,
      ...(state?.falseSince === undefined ? {} : { falseSince: state.falseSince }),
      manual: { persona: name, at: now, until },
    };
    try {
      await deps.states.save(next, state);
      break;
    } catch (e) {
      if (!(e instanceof HostPersonaConflictError) || attempt >= 3) throw e;
    }
  }
  const made: Decision = { ...decision, from };
  if (recorded) {
    await deps.states.record(
      made,
      deps.retentionDays === undefined ? {} : { retentionDays: deps.retentionDays },
    );
  }
  const { operationId } = await deps.startSwitch({
    host: registration.name,
    to: { name, version: version.version },
    decision: made,
    ...(request.idempotencyKey === undefined
      ? {}
      : { idempotencyKey: activationKey(registration.name, name, request.idempotencyKey) }),
  });
  return {
    host: registration.name,
    persona: { name, version: version.version },
    manual: { at, until },
    operationId,
    decision: made,
    recorded,
  };
}

function describeSelector(persona: Persona): string {
  const { names, labels } = persona.spec.hosts;
  const parts = [
    ...(names === undefined ? [] : [`names ${names.join(', ')}`]),
    ...(labels === undefined
      ? []
      : [
          `labels ${Object.entries(labels)
            .map(([k, v]) => `${k}=${v}`)
            .join(', ')}`,
        ]),
  ];
  return parts.length === 0 ? 'every host' : parts.join(' and ');
}
