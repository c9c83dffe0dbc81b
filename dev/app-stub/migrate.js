'use strict';
// `npm run migrate`, the Deployment's migrate init container: records this version in the
// `migrations` table, so every pod start (every deployment update) adds one row whose id is the
// commit the image was built from. Exits non-zero when the database is not reachable yet, so the
// kubelet retries the init container until it is.
const { query, failed } = require('./db');
const { readVersion } = require('./version');

async function main() {
  const version = readVersion();
  const result = await query('INSERT INTO migrations (id, applied_at) VALUES ($1, now())', [version]);
  if (failed(result)) {
    console.error(`migration ${version} failed: ${result.message}`);
    process.exit(1);
  }
  console.log(`migration ${version} recorded`);
}

main();
