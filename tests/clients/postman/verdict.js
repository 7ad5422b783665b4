// Reads newman's JSON report and decides the run: every failed assertion must be one of the
// expected failures named on the command line ("Folder / Request / Assertion"), each of which
// is explained in EXPECTED-FAILURES.md. Prints the counts and exits 1 on any other failure.
//
// Usage: node verdict.js REPORT.json "Folder / Request / Assertion" ...
'use strict';

const fs = require('fs');

const [reportPath, ...expected] = process.argv.slice(2);
const report = JSON.parse(fs.readFileSync(reportPath, 'utf8'));

// The report's items carry generated ids; their folders are found through the collection tree.
const folderOf = new Map();
(function walk(items, folder) {
  for (const item of items || []) {
    if (item.item) {
      walk(item.item, folder ? `${folder} / ${item.name}` : item.name);
    } else {
      folderOf.set(item.id, folder);
    }
  }
})(report.collection.item, '');

const stats = report.run.stats.assertions;
if (stats.total === 0) {
  console.log('newman ran no assertion');
  process.exit(1);
}

const seen = new Set();
let unexpected = 0;
for (const failure of report.run.failures) {
  const item = failure.source || {};
  const folder = folderOf.get(item.id) || '(collection)';
  const what = failure.error.test || failure.error.name || 'error';
  const key = `${folder} / ${item.name} / ${what}`;
  if (expected.includes(key)) {
    seen.add(key);
    console.log(`expected failure (documented): ${key}`);
  } else {
    unexpected += 1;
    console.log(`UNEXPECTED failure: ${key}: ${failure.error.message}`);
  }
}
// A documented failure that no longer happens makes the document wrong: that fails the run too.
let stale = 0;
for (const key of expected) {
  if (!seen.has(key)) {
    stale += 1;
    console.log(`no longer fails (update EXPECTED-FAILURES.md and postman.sh): ${key}`);
  }
}

const passed = stats.total - stats.failed;
// Not in the "N passed, N failed" form of a test runner: the documented failures are not
// failures of this run.
console.log(
  `newman: ${passed} of ${stats.total} assertions pass; ${seen.size} fail as ` +
    `EXPECTED-FAILURES.md documents; ${unexpected} unexpected; ${stale} documented but passing`,
);
process.exit(unexpected > 0 || stale > 0 ? 1 : 0);
