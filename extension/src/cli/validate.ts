export async function validate(_argv: string[]): Promise<number> {
  process.stderr.write('conscience validate: not implemented yet\n');
  return 1;
}
