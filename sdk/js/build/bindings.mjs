// Speeds up the JavaScript bindings componentize-js generates for the
// `interceptor-plugin` world. The bindings are plain JavaScript that runs, like
// the plugin, interpreted inside the component; three things in them cost far
// more than the plugin's own work on a typical message:
//
// - lowering a string (a `rewrite` or `respond` payload, a log line) counts its
//   UTF-8 length with a JavaScript loop over every character (~220 ns a byte:
//   22 ms to return 100 KiB); the engine's native TextEncoder does it instead;
// - the exports `await` the plugin's handler, a detour through the job queue
//   on every call; the SDK's handlers are synchronous, so the exports call them
//   directly (they stay `async`: the engine wants a promise back, and gets one
//   that is already settled);
// - every call builds debug-log argument objects, then drops them unless the
//   JCO_DEBUG variable is set (the proxy never sets it).
//
// Each rewrite checks its anchor and the build fails if componentize-js
// changed shape, rather than silently shipping slow bindings.

const FAST_ENCODE = `function _utf8AllocateAndEncode(s, realloc, memory) {
  if (typeof s !== 'string') {
    throw new TypeError('expected a string, received [' + typeof s + ']');
  }
  if (s.length === 0) { return { ptr: 1, len: 0 }; }
  const bytes = TEXT_ENCODER_UTF8.encode(s);
  const len = bytes.length;
  const ptr = realloc(0, 0, 1, len);
  new Uint8Array(memory.buffer, ptr, len).set(bytes);
  return { ptr, len };
}
`;

function replaceOnce(text, pattern, replacement, what) {
  const matches = text.match(new RegExp(pattern.source, pattern.flags.includes("g") ? pattern.flags : `${pattern.flags}g`));
  if (matches === null || matches.length !== 1) {
    throw new Error(`componentize-js bindings changed: cannot find ${what} (found ${matches?.length ?? 0} matches)`);
  }
  return text.replace(pattern, replacement);
}

/** Rewrites the generated bindings (see above). */
export function transformBindings(bindings) {
  let out = bindings;
  out = replaceOnce(
    out,
    /function _utf8AllocateAndEncode\(s, realloc, memory\) \{[\s\S]*?\n\}\n/,
    FAST_ENCODE,
    "the string encoder",
  );
  for (const name of ["init", "intercept"]) {
    out = replaceOnce(
      out,
      new RegExp(`await (interceptor[0-9]+${name[0].toUpperCase()}${name.slice(1)})\\(`),
      "$1(",
      `the call to the plugin's ${name}`,
    );
  }
  const before = out.length;
  out = out.replace(/\n[ \t]*_debugLog\((?:[^()]|\([^()]*\))*\);/g, "");
  if (out.length === before) {
    throw new Error("componentize-js bindings changed: no debug-log calls to remove");
  }
  return out;
}
