/**
 * Policies: which names a service may reach, and on which ports. Pure: the command line,
 * the policy file and a container's labels in, compiled policies out.
 *
 * - The default policy is the command-line patterns plus the file's top-level `allow`, on
 *   the file's top-level ports or else --ports; every client without a policy of its own has it.
 * - Each policy of the file has its own patterns, ports and client ranges.
 * - A container picks one with labels: `on-his-name.policy=NAME`, or its own patterns with
 *   `on-his-name.allow="PATTERN PATTERN…"` (and `on-his-name.ports`). A label that names an
 *   unknown policy or holds a bad pattern, an `on-his-name.` label we do not know, or
 *   `on-his-name.ports` alone, gives the container the refusing policy, which opens
 *   nothing, never the default: a typo must not widen what a service reaches.
 */
import { parsePortSpecs, setPortsRefusal } from '../config/ports.js';
import type { PortSpec } from '../firewall/rules.js';
import { Patterns } from './patterns.js';
import type { PatternOptions } from './pattern.js';
import type { PolicyFile } from './policy-file.js';

export type Origin = 'default' | 'file' | 'label' | 'refused';

export interface Policy {
  /** As logs, the API and the kernel's names call it: "default", a name of the file, `c-` + a container id, or "refused". */
  readonly name: string;
  readonly patterns: Patterns;
  readonly ports: readonly PortSpec[];
  /** Address ranges of the file that have this policy. */
  readonly clients: readonly string[];
  readonly origin: Origin;
  /** Audit mode: what it would block is recorded and let through. */
  readonly audit: boolean;
  /** For the refusing policy of one container: why its labels were refused. */
  readonly refusal?: string;
}

export interface PolicyOptions extends PatternOptions {
  /** --audit: every policy records what it would block and blocks nothing. */
  audit?: boolean;
  /** The most ports of one protocol a label may ask for (the ipset backend's rule takes 15). */
  maxSetPorts?: number;
}

export const DEFAULT_POLICY = 'default';
export const REFUSED_POLICY = 'refused';
export const LABELS = { policy: 'on-his-name.policy', allow: 'on-his-name.allow', ports: 'on-his-name.ports' } as const;
/** Every label under it is ours: one we do not know is a mistake, refused like a bad value. */
export const LABEL_PREFIX = 'on-his-name.';
const KNOWN_LABELS: ReadonlySet<string> = new Set(Object.values(LABELS));

export class PolicySet {
  private constructor(
    readonly defaultPolicy: Policy,
    /** The file's policies, by name. */
    readonly named: ReadonlyMap<string, Policy>,
    private readonly options: PolicyOptions & { ports: readonly PortSpec[] },
  ) {}

  /**
   * The command line's patterns and ports, and the file if there is one. Without a file,
   * at least one pattern is needed (as always); with one, the default policy may allow nothing.
   */
  static compile(patterns: readonly string[], ports: readonly PortSpec[], file: PolicyFile | undefined, options: PolicyOptions = {}): PolicySet {
    const basePorts = file?.ports ?? ports;
    const sources = [...patterns, ...(file?.allow ?? [])];
    const everywhere = options.audit ?? false;
    const defaultPolicy: Policy = {
      name: DEFAULT_POLICY,
      patterns: file ? Patterns.compileAllowingNone(sources, options) : Patterns.compile(sources, options),
      ports: basePorts,
      clients: [],
      origin: 'default',
      audit: everywhere || (file?.audit ?? false),
    };
    const named = new Map<string, Policy>();
    for (const p of file?.policies ?? []) {
      named.set(p.name, {
        name: p.name,
        patterns: Patterns.compileAllowingNone(p.allow, options),
        ports: p.ports ?? basePorts,
        clients: p.clients,
        origin: 'file',
        audit: everywhere || p.audit,
      });
    }
    return new PolicySet(defaultPolicy, named, { ...options, ports: basePorts });
  }

  get all(): Policy[] {
    return [this.defaultPolicy, ...this.named.values()];
  }

  /**
   * The policy a container's labels give it: undefined for a container without any (it
   * gets whatever its address gets), a policy of the file, one of its own, or the refusing
   * policy with the reason.
   */
  forLabels(labels: Readonly<Record<string, string>>, containerId: string): Policy | undefined {
    const ours = Object.keys(labels).filter((key) => key.startsWith(LABEL_PREFIX));
    if (ours.length === 0) return undefined;
    // A misspelt key (on-his-name.polcy) must not leave the container with the default policy.
    const unknown = ours.find((key) => !KNOWN_LABELS.has(key));
    if (unknown !== undefined) return refused(`unknown label ${unknown}: on-his-name reads ${[...KNOWN_LABELS].join(', ')}`, this.options.audit);
    const named = labels[LABELS.policy];
    const own = labels[LABELS.allow];
    if (named !== undefined && own !== undefined) return refused(`both ${LABELS.policy} and ${LABELS.allow} are set: give one`, this.options.audit);
    if (named === undefined && own === undefined) return refused(`${LABELS.ports} without ${LABELS.allow}: the ports go with the container's own patterns`, this.options.audit);
    if (named !== undefined) {
      const policy = named === DEFAULT_POLICY ? this.defaultPolicy : this.named.get(named);
      return policy ?? refused(`${LABELS.policy}=${named} names no policy of the policy file (${[...this.named.keys()].join(', ') || 'none'})`, this.options.audit);
    }
    try {
      const ports = labels[LABELS.ports] ? parsePortSpecs(labels[LABELS.ports]!, LABELS.ports) : this.options.ports;
      const tooMany = this.options.maxSetPorts === undefined ? undefined : setPortsRefusal(ports, this.options.maxSetPorts);
      if (tooMany) return refused(`${LABELS.ports}: ${tooMany}: give fewer, or use another backend`);
      const patterns = own!.split(/[\s,]+/).filter(Boolean);
      // A container's labels cannot ask for audit mode: that would let it widen what it reaches.
      const audit = this.options.audit ?? false;
      return { name: `c-${containerId.slice(0, 12)}`, patterns: Patterns.compile(patterns, this.options), ports, clients: [], origin: 'label', audit };
    } catch (err) {
      return refused(`${LABELS.allow}: ${(err as Error).message}`, this.options.audit ?? false);
    }
  }
}

/** The refusing policy opens nothing; under --audit it too only records. */
function refused(reason: string, audit = false): Policy {
  return { name: REFUSED_POLICY, patterns: Patterns.compileAllowingNone([]), ports: [], clients: [], origin: 'refused', audit, refusal: reason };
}
