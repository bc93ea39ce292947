#!/usr/bin/env node
// The `conscience` CLI: a thin shim over the bundled dist/cli.js (built by `npm run build`).
require('../dist/cli.js');
