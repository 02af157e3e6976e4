// ESLint flat config: typescript-eslint's type-aware recommended rules. Types come from
// the project service (TypeScript's language service finds each file's tsconfig through
// the references of the root tsconfig.json, tests, examples and tools included).
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig(
  {
    ignores: ['**/dist/**', 'docs-site/**', '**/node_modules/**', '.nx/**', '**/coverage/**', '.vitest-attachments/**', 'out/**', '.venv-golden/**'],
  },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      ecmaVersion: 2023,
      sourceType: 'module',
      // Code runs in Node and in browsers.
      globals: { ...globals.node, ...globals.browser },
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-explicit-any': 'warn',
      // `async` without `await` is how this codebase implements Promise-returning interfaces (cpu
      // `read`, in-memory sources): it turns a synchronous throw into a rejection, as callers expect.
      '@typescript-eslint/require-await': 'off',
      // Error messages print shapes as `[${shape}]` on purpose; `never` shows up in exhaustiveness
      // branches that still guard plain-JavaScript callers.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true, allowArray: true, allowNever: true }],
    },
  },
  {
    // JavaScript files are typechecked only when they opt in (`// @ts-check`); without types
    // every value is `any`, so the type-aware rules would only report noise there.
    files: ['**/*.{js,mjs,cjs}'],
    extends: [tseslint.configs.disableTypeChecked],
  },
);
