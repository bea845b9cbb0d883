#!/usr/bin/env node
// Summarises a conformance run made by scripts/conformance.sh.
//
//   node report.mjs OUT_DIR
//
// OUT_DIR/<revision>/<mode>/server-<scenario>-<timestamp>/checks.json are the
// suite's own results (one directory per scenario; modes: direct, http-http,
// http-stdio). Prints, per revision, one row per scenario: its verdict in each
// mode and the number of warnings, then the failing and warning checks seen
// through interpose. Writes OUT_DIR/summary.json. Exits 1 when a scenario that
// passes directly fails (or did not run) through interpose in some mode; with
// CONFORMANCE_STRICT=1 also when interpose adds warnings a scenario has not directly.
import fs from 'node:fs';
import path from 'node:path';

const MODES = ['direct', 'http-http', 'http-stdio'];
const RESULT_DIR = /^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/;

function readMode(dir) {
    const scenarios = new Map(); // scenario -> { failed, warnings, checks }
    if (!fs.existsSync(dir)) return scenarios;
    for (const entry of fs.readdirSync(dir)) {
        const match = RESULT_DIR.exec(entry);
        const file = path.join(dir, entry, 'checks.json');
        if (!match || !fs.existsSync(file)) continue;
        const checks = JSON.parse(fs.readFileSync(file, 'utf8'));
        scenarios.set(match[1], {
            failed: checks.filter((c) => c.status === 'FAILURE'),
            warnings: checks.filter((c) => c.status === 'WARNING'),
            total: checks.length,
        });
    }
    return scenarios;
}

function cell(result) {
    if (!result) return 'not run';
    const verdict = result.failed.length === 0 ? 'pass' : `FAIL ${result.failed.length}/${result.total}`;
    return result.warnings.length === 0 ? verdict : `${verdict} +${result.warnings.length}w`;
}

const out = process.argv[2];
if (!out) {
    console.error('usage: node report.mjs OUT_DIR');
    process.exit(2);
}

const revisions = fs.readdirSync(out).filter((d) => /^\d{4}-\d{2}-\d{2}$/.test(d)).sort();
const summary = {};
const regressions = [];
const newWarnings = [];
for (const revision of revisions) {
    const results = Object.fromEntries(MODES.map((m) => [m, readMode(path.join(out, revision, m))]));
    const scenarios = [...new Set(MODES.flatMap((m) => [...results[m].keys()]))].sort();
    const width = Math.max(8, ...scenarios.map((s) => s.length));
    const row = (cols) => `  ${cols[0].padEnd(width)}  ${cols.slice(1).map((c) => c.padEnd(16)).join('')}`.trimEnd();

    console.log(`\n== ${revision}: scenario verdict per mode (FAIL failed/checks, +Nw = N warnings)`);
    console.log(row(['scenario', ...MODES]));
    summary[revision] = {};
    for (const scenario of scenarios) {
        console.log(row([scenario, ...MODES.map((m) => cell(results[m].get(scenario)))]));
        const direct = results.direct.get(scenario);
        summary[revision][scenario] = {};
        for (const mode of MODES) {
            const r = results[mode].get(scenario);
            summary[revision][scenario][mode] = r
                ? { pass: r.failed.length === 0, failed: r.failed.map((c) => c.id), warnings: r.warnings.map((c) => c.id) }
                : null;
            if (mode !== 'direct' && direct && direct.failed.length === 0 && (!r || r.failed.length > 0)) {
                regressions.push(`${revision} ${mode} ${scenario}`);
            }
            if (mode !== 'direct' && direct && r && r.warnings.length > direct.warnings.length) {
                newWarnings.push(`${revision} ${mode} ${scenario}: ${r.warnings.map((c) => c.id).join(', ')}`);
            }
        }
    }
    const passes = (m) => scenarios.filter((s) => results[m].get(s)?.failed.length === 0).length;
    const warnings = (m) => [...results[m].values()].reduce((n, r) => n + r.warnings.length, 0);
    console.log(row(['passed', ...MODES.map((m) => `${passes(m)}/${scenarios.length}`)]));
    console.log(row(['warnings', ...MODES.map((m) => String(warnings(m)))]));

    for (const mode of MODES.slice(1)) {
        const notes = [];
        for (const [scenario, r] of results[mode]) {
            for (const c of r.failed) notes.push(`    FAIL ${scenario} ${c.id}: ${c.errorMessage ?? ''}`.slice(0, 240));
            for (const c of r.warnings) notes.push(`    WARN ${scenario} ${c.id}: ${c.errorMessage ?? ''}`.slice(0, 240));
        }
        if (notes.length === 0) continue;
        const counts = new Map();
        for (const note of notes) counts.set(note, (counts.get(note) ?? 0) + 1);
        const lines = [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([note, n]) => (n > 1 ? `${note} (x${n})` : note));
        console.log(`  ${mode}: ${notes.length} failing or warning checks\n${lines.join('\n')}`);
    }
}

fs.writeFileSync(path.join(out, 'summary.json'), JSON.stringify({ summary, regressions, newWarnings }, null, 2));
const strict = process.env.CONFORMANCE_STRICT === '1';
if (newWarnings.length > 0) {
    console.log(`\n${newWarnings.length} scenario(s) warn through interpose but not directly${strict ? '' : ' (fatal with CONFORMANCE_STRICT=1)'}:\n  ${newWarnings.join('\n  ')}`);
}
if (regressions.length > 0) {
    console.log(`\n${regressions.length} scenario(s) pass directly but not through interpose:\n  ${regressions.join('\n  ')}`);
    process.exit(1);
}
if (strict && newWarnings.length > 0) process.exit(1);
console.log('\nevery scenario that passes directly passes through interpose');
