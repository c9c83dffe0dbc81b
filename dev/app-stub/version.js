'use strict';
// The version baked into the image: the file `version.txt` the Dockerfile writes (from the VERSION
// build argument, or the VERSION file dev/serve-source.sh puts in each source tarball).
const fs = require('fs');
const path = require('path');

function readVersion() {
  try {
    return fs.readFileSync(path.join(__dirname, 'version.txt'), 'utf8').trim() || 'unknown';
  } catch (_) {
    return 'unknown';
  }
}

module.exports = { readVersion };
