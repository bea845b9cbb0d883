// node:fs plus a minimal globSync for Node 20 (see register.mjs).
import fs from 'node:fs';
import path from 'node:path';

export * from 'node:fs';
export default fs;

// Matches `pattern` relative to options.cwd (default process.cwd()). Supports what
// the conformance bundle passes: `*` and `?` within one path segment and `**` for
// any number of segments. Returns paths relative to cwd, like fs.globSync.
export function globSync(pattern, options = {}) {
    const cwd = options.cwd ? String(options.cwd) : process.cwd();
    const segments = String(pattern).split('/').filter((s) => s !== '' && s !== '.');
    const results = [];
    walk(cwd, '', segments, results);
    return [...new Set(results)].sort();
}

function segmentRegex(segment) {
    const body = segment.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
    return new RegExp(`^${body}$`);
}

function walk(base, rel, segments, results) {
    if (segments.length === 0) {
        if (rel !== '') results.push(rel);
        return;
    }
    const [head, ...rest] = segments;
    const dir = path.join(base, rel);
    if (head === '**') {
        walk(base, rel, rest, results);
        for (const entry of readDir(dir)) {
            if (entry.isDirectory()) walk(base, path.join(rel, entry.name), segments, results);
        }
        return;
    }
    if (!/[*?]/.test(head)) {
        if (fs.existsSync(path.join(dir, head))) walk(base, path.join(rel, head), rest, results);
        return;
    }
    const re = segmentRegex(head);
    for (const entry of readDir(dir)) {
        if (re.test(entry.name)) walk(base, path.join(rel, entry.name), rest, results);
    }
}

function readDir(dir) {
    try {
        return fs.readdirSync(dir, { withFileTypes: true });
    } catch {
        return [];
    }
}
