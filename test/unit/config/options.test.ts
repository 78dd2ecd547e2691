/**
 * The option table (src/config/options.ts) is the one list of options: parseArgs knows
 * exactly its options, parseConfig reads the environment variables and uses the defaults it
 * names, and `--help` and the README's table are rendered from it.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig, type Config, type Env } from '../../../src/config/config.js';
import { optionsBlock, renderHelp, renderOptionsMarkdown } from '../../../src/config/help.js';
import { COMMANDS, OPTIONS, PARSE_ARGS_OPTIONS, optionSpec, type OptionName } from '../../../src/config/options.js';

const NAMES = Object.keys(OPTIONS) as OptionName[];
const INLINE = ['--dns-listen', 'gateway', '--dns-upstream', '127.0.0.1'];

/**
 * Per option: a value other than its default, and the rest of a command line that is valid
 * with it. A new option of the table fails to compile here until it has its line.
 */
const SAMPLES: Record<OptionName, { value: string | true; base?: string[] }> = {
  listen: { value: '/tmp/ohn-sample.sock' },
  connect: { value: 'unix:///run/coredns/dnstap.sock' },
  'socket-uid': { value: '101' },
  'socket-gid': { value: '102' },
  network: { value: 'other' },
  interface: { value: 'br9' },
  'wait-for-network': { value: true },
  ports: { value: '443,udp/443' },
  'host-ports': { value: '22' },
  'allow-cidr': { value: '10.0.0.0/8' },
  'allow-all': { value: true },
  policy: { value: '/etc/on-his-name/policy.yaml' },
  'min-ttl': { value: '60' },
  'ttl-grace': { value: '60' },
  'max-ips': { value: '7' },
  'max-ips-per-name': { value: '7' },
  backend: { value: 'nftables' },
  'reconcile-interval': { value: '30' },
  'dns-listen': { value: '192.0.2.1:5353', base: ['--dns-upstream', '127.0.0.1'] },
  'dns-upstream': { value: '127.0.0.1:5300', base: ['--dns-listen', 'gateway'] },
  'dns-hold-ms': { value: '50', base: INLINE },
  'dns-timeout-ms': { value: '500', base: INLINE },
  'deny-nxdomain': { value: true, base: INLINE },
  'blocked-interval': { value: '30' },
  audit: { value: true },
  'admin-listen': { value: '9090' },
  'log-level': { value: 'debug' },
  'log-format': { value: 'json' },
  help: { value: true },
  version: { value: true },
};

const flagArgs = (name: OptionName, value: string | true) => (value === true ? [`--${name}`] : [`--${name}`, value]);
const base = (name: OptionName) => [...(SAMPLES[name].base ?? []), 'a.test'];
const attempt = (argv: string[], env: Env = {}): Config | Error => {
  try {
    return parseConfig(argv, env);
  } catch (err) {
    return err as Error;
  }
};

describe('the option table', () => {
  it('is what parseArgs knows: the same names, types, repeatability and aliases, and no default that would hide the environment', () => {
    expect(Object.keys(PARSE_ARGS_OPTIONS)).toEqual(NAMES);
    for (const name of NAMES) {
      const o = optionSpec(name);
      expect(PARSE_ARGS_OPTIONS[name], name).toEqual({ type: o.type, ...(o.multiple ? { multiple: true } : {}), ...(o.short ? { short: o.short } : {}) });
    }
    expect(() => parseConfig(['--bogus', 'a.test'], {})).toThrow(/Unknown option '--bogus'/);
  });

  it.each(NAMES)('--%s: parseConfig takes it, as the type the table says, and it changes the configuration', (name) => {
    const { value } = SAMPLES[name];
    const given = parseConfig([...flagArgs(name, value), ...base(name)], {});
    expect(given).not.toEqual(attempt(base(name)));
    if (value === true) expect(() => parseConfig([`--${name}=1`, 'a.test'], {})).toThrow(/does not take an argument/);
    else expect(() => parseConfig([...base(name), `--${name}`], {})).toThrow(/argument missing/);
    const short = optionSpec(name).short;
    if (short) expect(parseConfig([`-${short}`, ...base(name)], {})).toEqual(given);
  });

  it.each(NAMES.filter((name) => optionSpec(name).env !== undefined))('--%s: its environment variable gives what the flag gives', (name) => {
    const { value } = SAMPLES[name];
    const env = { [optionSpec(name).env!]: value === true ? '1' : value };
    expect(parseConfig(base(name), env)).toEqual(parseConfig([...flagArgs(name, value), ...base(name)], {}));
  });

  it.each(NAMES.filter((name) => optionSpec(name).default !== undefined))('--%s: the default the table shows is the one used', (name) => {
    expect(parseConfig([`--${name}`, optionSpec(name).default!, ...base(name)], {})).toEqual(parseConfig(base(name), {}));
  });

  it('names every choice of an option in its description, and parseConfig takes each', () => {
    for (const name of NAMES) {
      for (const choice of optionSpec(name).choices ?? []) {
        expect(optionSpec(name).description, name).toContain(`\`${choice}\``);
        expect(() => parseConfig([`--${name}`, choice, 'a.test'], {})).not.toThrow();
      }
    }
  });
});

describe('--help', () => {
  const help = renderHelp();
  const flat = help.replace(/\s+/g, ' ');

  it('shows every option with its value, environment variable and default, and every command', () => {
    for (const name of NAMES) {
      const o = optionSpec(name);
      expect(help, name).toContain(`${o.short ? `-${o.short}, ` : ''}--${name}${o.placeholder ? ` ${o.placeholder}` : ''}`);
      if (o.env) expect(flat, name).toContain(o.type === 'boolean' ? `[${o.env}=1]` : `[${o.env}`);
      if (o.default) expect(flat, name).toContain(`default ${o.default}]`);
    }
    for (const command of Object.values(COMMANDS)) expect(help).toContain(`on-his-name ${command.usage}\n`);
  });

  it('names no flag the table does not have', () => {
    const named = new Set([...help.matchAll(/--([a-z][a-z-]*)/g)].map((m) => m[1]!));
    expect([...named].filter((n) => !(n in OPTIONS))).toEqual([]);
  });

  it('fits a terminal of 80 columns but for the pattern examples, and has no backticks left', () => {
    const long = help.split('\n').filter((line) => line.length > 80 && !line.includes('example.com'));
    expect(long).toEqual([]);
    expect(help).not.toContain('`');
  });
});

describe("the README's option table", () => {
  it('is the one rendered from the table', () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const block = optionsBlock(readme);
    expect(block, 'README.md has lost its <!-- options:begin --> and <!-- options:end --> markers').toBeDefined();
    expect(block, "README.md's option table differs from src/config/options.ts: run npm run docs:options").toBe(renderOptionsMarkdown());
  });

  it('names no flag the table does not have', () => {
    const named = new Set([...renderOptionsMarkdown().matchAll(/--([a-z][a-z-]*)/g)].map((m) => m[1]!));
    expect([...named].filter((n) => !(n in OPTIONS))).toEqual([]);
  });
});
