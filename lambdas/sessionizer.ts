/** Lambda entry point (placeholder until the pipeline lands). */
export const handler = async (_event: unknown): Promise<void> => {
  throw new Error('not implemented yet');
};
