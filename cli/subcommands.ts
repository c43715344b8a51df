// Commands made of subcommands (`dpfed enrol add|list|revoke`, `dpfed certs init|issue`, `dpfed identity
// init|show`): the first argument picks a flag table; --help lists the subcommands, each has its own.
import { renderHelp, runCommand, type CommandSpec, type FlagValues } from '@dpfed/proto/command-flags';

export interface Subcommand {
  spec: CommandSpec;
  body: (flags: FlagValues) => Promise<number>;
}

export function overview(command: string, summary: string, subcommands: Record<string, Subcommand>): string {
  const width = Math.max(...Object.keys(subcommands).map((k) => k.length)) + 4;
  return [
    `dpfed ${command}: ${summary}`,
    '',
    `Usage: dpfed ${command} <${Object.keys(subcommands).join('|')}> [flags]      dpfed ${command} <subcommand> --help`,
    '',
    'Subcommands:',
    ...Object.entries(subcommands).map(([name, s]) => `  ${name.padEnd(width)}${s.spec.summary}`),
    '',
    ...Object.values(subcommands).map((s) => renderHelp(s.spec)),
  ].join('\n');
}

/** Runs `argv[0]` of `subcommands`; an unknown or missing one is exit code 2 naming the valid ones. */
export async function runSubcommand(command: string, summary: string, subcommands: Record<string, Subcommand>, argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(overview(command, summary, subcommands));
    return 0;
  }
  const chosen = sub === undefined ? undefined : subcommands[sub];
  if (!chosen) {
    process.stderr.write(
      `dpfed ${command}: ${sub === undefined ? 'missing subcommand' : `unknown subcommand "${sub}"`} (expected ${Object.keys(subcommands).join(', ')}; see dpfed ${command} --help)\n`,
    );
    return 2;
  }
  return runCommand(chosen.spec, rest, chosen.body);
}
