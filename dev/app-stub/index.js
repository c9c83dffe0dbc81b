'use strict';
// The test review app (the original operator's dev-resources/app-stub): an express server on
// port 5000 whose every GET shows the version baked into the image, the process environment
// (without npm's own npm_* variables; values of *PASSWORD* variables masked) and the rows of the
// `migrations` table, one per deployment update.
const express = require('express');
const { query } = require('./db');
const { readVersion } = require('./version');

const PORT = 5000;
const version = readVersion();

function escapeHtml(text) {
  const entities = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  return String(text).replace(/[&<>"']/g, (c) => entities[c]);
}

function environment() {
  const shown = {};
  for (const name of Object.keys(process.env).sort()) {
    if (name.startsWith('npm_')) continue;
    const value = process.env[name];
    shown[name] = /PASSWORD/i.test(name) ? `(set, ${value.length} characters)` : value;
  }
  return shown;
}

function pretty(value) {
  return escapeHtml(JSON.stringify(value, null, 2));
}

const app = express();

app.get('*', async (_req, res) => {
  const migrations = await query('SELECT * FROM migrations ORDER BY applied_at');
  res.type('html').send(`<!doctype html>
<html>
  <head><meta charset="utf-8"><title>Test Review App ${escapeHtml(version)}</title></head>
  <body>
    <h1>Test Review App version ${escapeHtml(version)}</h1>
    <h2>Environment</h2>
    <pre>${pretty(environment())}</pre>
    <h2>Migrations</h2>
    <pre>${pretty(migrations)}</pre>
  </body>
</html>
`);
});

app.listen(PORT, () => {
  console.log(`Test Review App version ${version} listening on port ${PORT}`);
});
