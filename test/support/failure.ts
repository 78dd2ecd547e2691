/** What a person needs to see why a lab test failed: the chain as the kernel has it, and the daemon's log. */
import { afterEach } from 'vitest';

/** Registers an afterEach that prints `report()` when the test failed. */
export function printOnFailure(report: () => Promise<string>): void {
  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') console.error(await report());
  });
}

/** `rules` under `heading` (DOCKER-USER unless said), then the daemon's log. */
export function firewallReport(rules: string[], daemonLog: string | undefined, heading = 'DOCKER-USER'): string {
  return `${heading}:\n${rules.join('\n')}\n\ndaemon log:\n${daemonLog ?? '(no daemon)'}`;
}
