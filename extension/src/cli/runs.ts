const todo = (name: string) => async (_argv: string[]): Promise<number> => {
  process.stderr.write(`conscience ${name}: not implemented yet\n`);
  return 1;
};
export const launch = todo('launch');
export const runs = todo('runs');
export const logs = todo('logs');
export const cancel = todo('cancel');
export const resume = todo('resume');
