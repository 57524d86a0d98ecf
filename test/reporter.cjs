// mocha's spec output for people, plus mocha's own counts written to .test-results.json for
// .ci/run, which must not parse the human-readable summary.
const fs = require('node:fs');
const Mocha = require('mocha');

class SpecWithResultFile extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    const failures = [];
    runner.on(Mocha.Runner.constants.EVENT_TEST_FAIL, (test, error) => {
      failures.push({ title: test.fullTitle(), file: test.file, message: String(error && error.message) });
    });
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      fs.writeFileSync('.test-results.json', JSON.stringify({ stats: runner.stats, failures }, null, 2));
    });
  }
}

module.exports = SpecWithResultFile;
