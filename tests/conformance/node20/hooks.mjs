// Resolve hook for register.mjs: `fs` imported from the conformance bundle resolves
// to fs.mjs (node:fs plus globSync); every other import is untouched.
const CONFORMANCE_DIST = '/node_modules/@modelcontextprotocol/conformance/dist/';
const FS_WITH_GLOB = new URL('./fs.mjs', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
    const fromConformance = context.parentURL?.includes(CONFORMANCE_DIST);
    if (fromConformance && (specifier === 'fs' || specifier === 'node:fs')) {
        return { url: FS_WITH_GLOB, shortCircuit: true };
    }
    return nextResolve(specifier, context);
}
