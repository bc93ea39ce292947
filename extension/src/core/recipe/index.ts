// Public surface of the recipe core (no `vscode` import): used by the editor adapter,
// the CLI, tests and the bench.
export { validateText, validateAccelerate, decodeBytes, detectKind, recipeKind, chooseSchema, recipeTrlVersion, type FileAccess, type ValidateOptions, type FileKind } from './validate';
export { type Diagnostic, type QuickFix, type TextEdit, type Severity, positionAt, offsetAt } from './diagnostics';
export { RULES, CODES, rulesMarkdown, type Rule } from './rules';
export { defaultSchema, indexSchema, schemaForVersion, supportedSchemas, type RecipeSchema, type FieldSpec, type SchemaChoice } from './schema';
export { parseYaml, LIMITS } from './yaml';
