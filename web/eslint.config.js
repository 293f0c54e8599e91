// ESLint for the UI's sources (`npm run lint`, run by `make test`): ESLint's recommended
// rules for browser modules, plus the few that catch real mistakes in code like this one
// (loose equality, shadowed or unused names, reassigned constants).
import js from '@eslint/js';
import globals from 'globals';

export default [
  js.configs.recommended,
  {
    files: ['src/**/*.js'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: globals.browser,
    },
    rules: {
      eqeqeq: ['error', 'always'],
      'no-var': 'error',
      'prefer-const': 'error',
      'no-shadow': 'error',
      'no-unused-vars': ['error', { args: 'after-used', caughtErrors: 'none' }],
      'no-use-before-define': ['error', { functions: false, classes: true, variables: false }],
      'no-implicit-coercion': ['error', { allow: ['!!'] }],
      'object-shorthand': 'error',
      'prefer-template': 'error',
    },
  },
];
