'use strict';
// One query against the app's database, connecting with the variables the operator sets:
// POSTGRES_HOSTNAME, POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DATABASE (default postgres).
const { Client } = require('pg');

async function query(text, params = []) {
  const user = process.env.POSTGRES_USER;
  const host = process.env.POSTGRES_HOSTNAME;
  const password = process.env.POSTGRES_PASSWORD;
  const database = process.env.POSTGRES_DATABASE || 'postgres';
  if (!user || !host || !password) {
    return {
      status: 'error',
      message: 'Query could not be executed. DB connection data was incomplete.',
    };
  }
  const client = new Client({ user, host, password, database, port: 5432 });
  try {
    await client.connect();
    const result = await client.query(text, params);
    return result.rows;
  } catch (error) {
    return { status: 'error', message: error.message };
  } finally {
    await client.end().catch(() => {});
  }
}

function failed(result) {
  return !Array.isArray(result);
}

module.exports = { query, failed };
