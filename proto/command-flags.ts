// Declarative command-line flags: one table per command gives parsing, validation and --help text.
// A bad flag is a UsageError (exit code 2) whose message names the flag.

export type FlagType = 'string' | 'number' | 'int' | 'boolean' | 'list';

export interface FlagSpec {
  name: string;
  type: FlagType;
  help: string;
  default?: string | number | boolean | string[];
  choices?: readonly string[];
  required?: boolean;
  /** Extra check after parsing; return an error message to refuse the value. */
  check?: (value: number | string) => string | undefined;
}

export interface CommandSpec {
  name: string;
  summary: string;
  usage?: string;
  flags: FlagSpec[];
  examples?: string[];
}

export class UsageError extends Error {
  readonly exitCode = 2;
}

export type FlagValues = Record<string, string | number | boolean | string[] | undefined>;

function toCamel(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function parseValue(spec: FlagSpec, raw: string): string | number {
  if (spec.type === 'number' || spec.type === 'int') {
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value)) throw new UsageError(`--${spec.name}: expected a number, got "${raw}"`);
    if (spec.type === 'int' && !Number.isInteger(value)) throw new UsageError(`--${spec.name}: expected an integer, got "${raw}"`);
    const problem = spec.check?.(value);
    if (problem) throw new UsageError(`--${spec.name}: ${problem}`);
    return value;
  }
  if (spec.choices && !spec.choices.includes(raw)) {
    throw new UsageError(`--${spec.name}: expected one of ${spec.choices.join('|')}, got "${raw}"`);
  }
  const problem = spec.check?.(raw);
  if (problem) throw new UsageError(`--${spec.name}: ${problem}`);
  return raw;
}

/** Parses argv against the command's flags; keys of the result are camelCase flag names. */
export function parseFlags(command: CommandSpec, argv: string[]): FlagValues {
  const byName = new Map(command.flags.map((f) => [f.name, f]));
  const values: FlagValues = {};
  for (const f of command.flags) {
    if (f.default !== undefined) values[toCamel(f.name)] = Array.isArray(f.default) ? [...f.default] : f.default;
    else if (f.type === 'boolean') values[toCamel(f.name)] = false;
    else if (f.type === 'list') values[toCamel(f.name)] = [];
  }
  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument "${arg}" (see dpfed ${command.name} --help)`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const spec = byName.get(name);
    if (!spec) throw new UsageError(`unknown flag --${name} (see dpfed ${command.name} --help)`);
    const key = toCamel(name);
    if (spec.type === 'boolean') {
      if (eq >= 0) {
        const raw = arg.slice(eq + 1);
        if (raw !== 'true' && raw !== 'false') throw new UsageError(`--${name}: expected true or false, got "${raw}"`);
        values[key] = raw === 'true';
      } else values[key] = true;
      continue;
    }
    let raw: string;
    if (eq >= 0) raw = arg.slice(eq + 1);
    else {
      if (i + 1 >= argv.length) throw new UsageError(`--${name}: missing value`);
      raw = argv[++i];
    }
    if (spec.type === 'list') {
      const list = seen.has(name) ? (values[key] as string[]) : [];
      list.push(String(parseValue(spec, raw)));
      values[key] = list;
    } else {
      if (seen.has(name)) throw new UsageError(`--${name}: given more than once`);
      values[key] = parseValue(spec, raw);
    }
    seen.add(name);
  }
  for (const f of command.flags) {
    if (f.required && !seen.has(f.name)) throw new UsageError(`--${f.name} is required (see dpfed ${command.name} --help)`);
  }
  return values;
}

export function renderHelp(command: CommandSpec): string {
  const lines = [`dpfed ${command.name}: ${command.summary}`, '', `Usage: ${command.usage ?? `dpfed ${command.name} [flags]`}`, '', 'Flags:'];
  const left = command.flags.map((f) => `  --${f.name}${f.type === 'boolean' ? '' : ` ${f.choices ? f.choices.join('|') : f.type === 'list' ? 'VALUE (repeatable)' : f.type.toUpperCase()}`}`);
  const width = Math.min(44, Math.max(...left.map((l) => l.length), 10) + 2);
  command.flags.forEach((f, i) => {
    const def = f.default !== undefined && f.default !== '' ? ` (default: ${Array.isArray(f.default) ? f.default.join(',') : f.default})` : '';
    const req = f.required ? ' (required)' : '';
    const pad = left[i].length >= width ? `\n${' '.repeat(width)}` : ' '.repeat(width - left[i].length);
    lines.push(`${left[i]}${pad}${f.help}${def}${req}`);
  });
  lines.push(`  --help${' '.repeat(Math.max(1, width - 8))}Show this help`);
  if (command.examples?.length) lines.push('', 'Examples:', ...command.examples.map((e) => `  ${e}`));
  return lines.join('\n') + '\n';
}

/** Runs a command body with uniform --help and usage-error handling; returns the exit code. */
export async function runCommand(command: CommandSpec, argv: string[], body: (flags: FlagValues) => Promise<number>): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(renderHelp(command));
    return 0;
  }
  let flags: FlagValues;
  try {
    flags = parseFlags(command, argv);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`dpfed ${command.name}: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  try {
    return await body(flags);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`dpfed ${command.name}: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}
