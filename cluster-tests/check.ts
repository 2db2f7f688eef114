/**
 * Check a recorded history: `node dist/cluster-tests/check.js <history.jsonl> [--out dir]`.
 *
 * Runs every checker that applies (checkers/index.ts), writes `verdicts.json` and the
 * self-contained `report.html` to the output directory (default: the history's directory), and
 * prints the summary table. Exit codes: 0 all pass (warnings allowed), 1 a violation, 2 inconclusive
 * (a checker hit a search limit), 3 usage or unreadable history.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { overallStatus, runCheckers } from './checkers';
import { HistoryFormatError, HistoryPairingError, readHistoryFile } from './history';
import { renderHtmlReport } from './report/html';
import { summaryTable } from './report/summary';

export const EXIT_PASS = 0;
export const EXIT_VIOLATION = 1;
export const EXIT_INCONCLUSIVE = 2;
export const EXIT_USAGE = 3;

const USAGE = 'usage: node dist/cluster-tests/check.js <history.jsonl> [--out dir]';

export function main(argv: readonly string[], log: (line: string) => void = (l) => process.stdout.write(l + '\n')): number {
  let input: string | undefined;
  let outDir: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--out') outDir = argv[++i];
    else if (a === '-h' || a === '--help') {
      log(USAGE);
      return EXIT_PASS;
    } else if (input === undefined) input = a;
    else {
      log(USAGE);
      return EXIT_USAGE;
    }
  }
  if (input === undefined || (outDir === undefined && argv.includes('--out'))) {
    log(USAGE);
    return EXIT_USAGE;
  }
  const dir = outDir ?? path.dirname(input);
  let history;
  try {
    history = readHistoryFile(input);
  } catch (e) {
    if (e instanceof HistoryFormatError || (e as NodeJS.ErrnoException).code === 'ENOENT') {
      log(`cannot read history: ${(e as Error).message}`);
      return EXIT_USAGE;
    }
    throw e;
  }
  let verdicts;
  try {
    verdicts = runCheckers(history);
  } catch (e) {
    if (e instanceof HistoryPairingError) {
      log(`malformed history: ${e.message}`);
      return EXIT_USAGE;
    }
    throw e;
  }
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'verdicts.json'), JSON.stringify({ history: path.resolve(input), overall: overallStatus(verdicts), verdicts }, null, 2) + '\n');
  fs.writeFileSync(path.join(dir, 'report.html'), renderHtmlReport(history, verdicts, { subtitle: path.basename(input) }));
  log(summaryTable(verdicts));
  log('');
  const overall = overallStatus(verdicts);
  log(`overall: ${overall.toUpperCase()}  (report: ${path.join(dir, 'report.html')})`);
  return overall === 'fail' ? EXIT_VIOLATION : overall === 'unknown' ? EXIT_INCONCLUSIVE : EXIT_PASS;
}

if (require.main === module) {
  process.exitCode = main(process.argv.slice(2));
}
