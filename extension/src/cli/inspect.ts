export async function inspect(_argv: string[]): Promise<number> {
  process.stderr.write('conscience inspect: not implemented yet\n');
  return 1;
}
