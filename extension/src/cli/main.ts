// `conscience` command line: dispatches to one module per command group.
// Every command uses the same core/ code as the editor. Exit codes: 0 ok, 1 findings or
// failure, 2 usage error.
export type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, { summary: string; load: () => Promise<Command> }> = {
  validate: { summary: 'validate recipes: conscience validate <files|folders> [--format json|text]', load: async () => (await import('./validate')).validate },
  launch: { summary: 'launch a recipe: conscience launch RECIPE --target NAME [--wait]', load: async () => (await import('./runs')).launch },
  runs: { summary: 'list runs: conscience runs [--format json]', load: async () => (await import('./runs')).runs },
  logs: { summary: 'show a run\'s logs: conscience logs RUN [--follow]', load: async () => (await import('./runs')).logs },
  cancel: { summary: 'cancel a run: conscience cancel RUN', load: async () => (await import('./runs')).cancel },
  resume: { summary: 'resume a run from its last checkpoint: conscience resume RUN', load: async () => (await import('./runs')).resume },
  inspect: { summary: 'score prompts with the budget allocator: conscience inspect FILE.jsonl|FILE.csv|- [--format json|text] [--model DIR] [--policy JSON]', load: async () => (await import('./inspect')).inspect },
  eval: { summary: 'evaluate a policy (kind: eval recipe): conscience eval EVAL.yaml [--target NAME] [--wait] [--format json]', load: async () => (await import('./eval')).evalCommand },
  serve: { summary: 'OpenAI-compatible gateway that adds safety budgets: conscience serve --upstream URL [--port P]', load: async () => (await import('./serve')).serve },
};

function usage(): string {
  return ['usage: conscience <command> [options]', '', 'commands:', ...Object.entries(commands).map(([n, c]) => `  ${n.padEnd(9)} ${c.summary}`)].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name ? 0 : 2;
  }
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(`conscience: unknown command '${name}'\n${usage()}\n`);
    return 2;
  }
  return (await cmd.load())(rest);
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => {
    process.stderr.write(`conscience: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
