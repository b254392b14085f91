/**
 * Fault injection for the local stack: every AWS call made through a set of clients passes through one controller
 * that may fail it before the request is sent, or after its response arrived (the effect happened but the caller
 * sees an error, as when a Lambda is killed right after a call). After such a crash the "process" is dead: every
 * further call fails until the harness revives it for the retry. Installed as the outermost middleware, so the
 * SDK's own retries do not hide the fault.
 */
import type { Clients } from '../../lambdas/adapters/clients.ts';

/** The error an injected fault raises. */
export class InjectedFault extends Error {
  override readonly name = 'InjectedFault';
  constructor(
    readonly when: 'before' | 'after',
    readonly call: number,
    readonly command: string,
  ) {
    super(`injected fault ${when} call ${call} (${command})`);
  }
}

export type FaultDecision = 'before' | 'after' | undefined;

export interface FaultController {
  /** Calls seen so far (all clients together). */
  readonly calls: number;
  /** Names of the commands in call order (for reports). */
  readonly log: string[];
  /** True after a crash until `revive()`. */
  readonly dead: boolean;
  revive(): void;
  /** Sets the rule deciding each call's fault; `undefined` turns faults off. */
  setRule(rule: ((call: number, command: string) => FaultDecision) | undefined): void;
}

export function installFaults(clients: Clients): FaultController {
  let calls = 0;
  let dead = false;
  let rule: ((call: number, command: string) => FaultDecision) | undefined;
  const log: string[] = [];
  const middleware =
    (next: (args: unknown) => Promise<unknown>, context: { commandName?: string }) =>
    async (args: unknown): Promise<unknown> => {
      const command = context.commandName ?? 'unknown';
      const call = ++calls;
      log.push(command);
      if (dead) throw new InjectedFault('before', call, command);
      const decision = rule?.(call, command);
      if (decision === 'before') {
        dead = true;
        throw new InjectedFault('before', call, command);
      }
      const result = await next(args);
      if (decision === 'after') {
        dead = true;
        throw new InjectedFault('after', call, command);
      }
      return result;
    };
  const options = { step: 'initialize', name: 'sessionizerFaults', priority: 'high' } as const;
  clients.s3.middlewareStack.add(middleware as never, options);
  clients.ddb.middlewareStack.add(middleware as never, options);
  return {
    get calls() {
      return calls;
    },
    log,
    get dead() {
      return dead;
    },
    revive() {
      dead = false;
    },
    setRule(next) {
      rule = next;
    },
  };
}
