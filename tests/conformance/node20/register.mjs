// Node 20 support for @modelcontextprotocol/conformance, which targets Node >= 22.
// Loaded with `node --import ./node20/register.mjs`; a no-op on Node 22 and later.
// The package's only Node 22 API is `fs.globSync`, imported by name at the top of
// its bundle, so the module fails to link on Node 20 before any scenario runs.
// This hook gives that one importer an `fs` that adds `globSync`; nothing on disk
// is changed.
import { register } from 'node:module';

const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
    register('./hooks.mjs', import.meta.url);
}
