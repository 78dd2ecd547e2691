/**
 * The option table (options.ts) as people read it: `--help` on a terminal, and the
 * README's Syntax table, which `npm run docs:options` writes between its markers. Pure.
 */
import { COMMANDS, OPTIONS, SECTIONS, type OptionSpec, type Section } from './options.js';

const WIDTH = 80;
/** Where descriptions start in `--help`; a longer flag puts its description on the next line. */
const DESCRIPTION_COLUMN = 28;

export const README_BEGIN = '<!-- options:begin -->';
export const README_END = '<!-- options:end -->';

const PATTERNS = `Patterns (case-insensitive, trailing dot optional):
  example.com.        that name only
  *.example.com.      one label below example.com (not example.com, not a.b.example.com)
  api-*.example.com.  '*' inside a label matches within that label
  **.example.com.     any depth below example.com (not example.com itself)`;

const ABOUT =
  'Containers on the Docker network may open connections (--ports) only to addresses that a DNS ' +
  'answer for an allowed name carried. Answers arrive as dnstap from the DNS server (CoreDNS: ' +
  `dnstap unix://${OPTIONS.listen.default} full), from a DNS server that listens for dnstap ` +
  'readers (--connect), or through on-his-name itself as the containers\' DNS server (--dns-listen).';

type Entry = [name: string, spec: OptionSpec];

function entries(): Entry[] {
  return Object.entries(OPTIONS as Record<string, OptionSpec>);
}

function bySection(): Array<[Section, Entry[]]> {
  return (Object.keys(SECTIONS) as Section[]).map((section) => [section, entries().filter(([, o]) => o.section === section)]);
}

/** `-h, --help`, `--ports LIST`. */
function flag(name: string, o: OptionSpec): string {
  return `${o.short ? `-${o.short}, ` : ''}--${name}${o.placeholder ? ` ${o.placeholder}` : ''}`;
}

/** `WAIT_FOR_NETWORK=1` for a switch, the name otherwise. */
function envName(o: OptionSpec): string | undefined {
  if (o.env === undefined) return undefined;
  return o.type === 'boolean' ? `${o.env}=1` : o.env;
}

const plain = (text: string) => text.replace(/`/g, '');

/** Words into lines of at most `width`; a word longer than that stands alone. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/** A left column and wrapped text beside it, the text on the next line when the left one is too wide. */
function columns(left: string, text: string, column: number): string[] {
  const pad = ' '.repeat(column);
  const lines = wrap(text, WIDTH - column);
  if (left.length + 2 > column) return [left, ...lines.map((l) => pad + l)];
  return lines.map((l, i) => (i === 0 ? left.padEnd(column) : pad) + l);
}

export function renderHelp(): string {
  const out = ['on-his-name - a DNS-driven egress firewall for Docker hosts', '', 'Usage:'];
  for (const command of Object.values(COMMANDS)) out.push(`  on-his-name ${command.usage}`, ...wrap(command.description, WIDTH - 6).map((l) => `      ${l}`));
  out.push('  on-his-name --help | --version', '', ...wrap(ABOUT, WIDTH), '', PATTERNS, '');
  out.push('Options (environment variable and default in brackets; flags win):');
  for (const [section, options] of bySection()) {
    const info: { title: string; intro?: string } = SECTIONS[section];
    out.push('', `${info.title}:`);
    if (info.intro) out.push(...wrap(plain(info.intro), WIDTH - 2).map((l) => `  ${l}`));
    for (const [name, o] of options) {
      const env = envName(o);
      const shown = o.type === 'boolean' ? undefined : (o.default ?? o.unset);
      const bracket = [env, shown === undefined ? undefined : `default ${shown}`].filter(Boolean).join(', ');
      out.push(...columns(`  ${flag(name, o)}`, `${plain(o.description)}${bracket ? ` [${bracket}]` : ''}`, DESCRIPTION_COLUMN));
    }
  }
  return `${out.join('\n')}\n`;
}

const code = (text: string) => `\`${text}\``;

/** The README's option tables, one per section, without the markers. */
export function renderOptionsMarkdown(): string {
  const out = ['<!-- Generated from src/config/options.ts by `npm run docs:options`: edit the table there, not here. -->'];
  for (const [section, options] of bySection()) {
    const info: { title: string; intro?: string } = SECTIONS[section];
    out.push('', `**${info.title}**${info.intro ? `. ${info.intro}` : ''}`, '', '| option | environment | default | what it does |', '|---|---|---|---|');
    for (const [name, o] of options) {
      const flags = `${o.short ? `${code(`-${o.short}`)}, ` : ''}${code(`--${name}${o.placeholder ? ` ${o.placeholder}` : ''}`)}`;
      const env = envName(o);
      const shown = o.default !== undefined ? code(o.default) : o.type === 'boolean' && o.section !== 'general' ? 'off' : (o.unset ?? '');
      out.push(`| ${flags} | ${env ? code(env) : ''} | ${shown} | ${o.description.replace(/\|/g, '\\|')} |`);
    }
  }
  return `${out.join('\n')}\n`;
}

/** README text with the block between the markers replaced; an error when the markers are missing. */
export function replaceOptionsBlock(readme: string, block: string = renderOptionsMarkdown()): string {
  const begin = readme.indexOf(README_BEGIN);
  const end = readme.indexOf(README_END);
  if (begin < 0 || end < begin) throw new Error(`README.md has no ${README_BEGIN} … ${README_END} block`);
  return `${readme.slice(0, begin + README_BEGIN.length)}\n${block}${readme.slice(end)}`;
}

/** The block between the markers as it stands, or undefined without them. */
export function optionsBlock(readme: string): string | undefined {
  const begin = readme.indexOf(README_BEGIN);
  const end = readme.indexOf(README_END);
  if (begin < 0 || end < begin) return undefined;
  return readme.slice(begin + README_BEGIN.length + 1, end);
}
