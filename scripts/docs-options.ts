/**
 * `npm run docs:options`: write the README's option tables, between its
 * `<!-- options:begin -->` and `<!-- options:end -->` markers, from src/config/options.ts.
 * test/unit/config/options.test.ts fails until this has been run after a change to the table.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { replaceOptionsBlock } from '../src/config/help.js';

const README = new URL('../README.md', import.meta.url);
const before = readFileSync(README, 'utf8');
const after = replaceOptionsBlock(before);
if (after === before) process.stdout.write('README.md: the option table is up to date\n');
else {
  writeFileSync(README, after);
  process.stdout.write('README.md: option table written from src/config/options.ts\n');
}
