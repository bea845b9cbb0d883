// Speeds up the JavaScript bindings componentize-js generates for the
// `interceptor-plugin` world. The bindings are plain JavaScript that runs, like
// the plugin, interpreted inside the component; these things in them cost more
// than the plugin's own work on a typical message:
//
// - lowering a string (a `rewrite` or `respond` payload, a log line) counts its
//   UTF-8 length with a JavaScript loop over every character (~220 ns a byte:
//   22 ms to return 100 KiB); the engine's native `TextEncoder.encodeInto`
//   writes it straight into the allocation instead (14 µs for 100 KiB, where
//   `encode` and a copy took 140-370 µs);
// - the exports `await` the plugin's handler, a detour through the job queue
//   on every call; the SDK's handlers are synchronous, so the exports call them
//   directly (they stay `async`: the engine wants a promise back, and gets one
//   that is already settled);
// - `intercept` wraps the borrowed message in a new resource object per call,
//   registers it with a FinalizationRegistry (meant for owned handles: for a
//   borrow it would drop a stale handle number when collected) and walks a
//   list of borrows to drop; a borrow needs none of that, so one object is
//   reused, given the handle for the call and the handle dropped after it
//   (direction, kind and method, plain arguments, are lifted as generated);
// - each getter of the message builds a closure and unregisters the object
//   from that registry before calling the host; both go;
// - every call builds debug-log argument objects, then drops them unless the
//   JCO_DEBUG variable is set (the proxy never sets it).
//
// Each rewrite checks its anchor and the build fails if componentize-js
// changed shape, rather than silently shipping slow (or wrong) bindings.

const FAST_ENCODE = `function _utf8AllocateAndEncode(s, realloc, memory) {
  if (typeof s !== 'string') {
    throw new TypeError('expected a string, received [' + typeof s + ']');
  }
  if (s.length === 0) { return { ptr: 1, len: 0 }; }
  // As many bytes as UTF-16 units: enough when the text is ASCII, as JSON
  // mostly is. Otherwise a fresh allocation of the most it can need (3 bytes a
  // unit); not a realloc, since every allocation made during a call is freed
  // after it.
  let ptr = realloc(0, 0, 1, s.length);
  let { read, written } = TEXT_ENCODER_UTF8.encodeInto(s, new Uint8Array(memory.buffer, ptr, s.length));
  if (read !== s.length) {
    ptr = realloc(0, 0, 1, s.length * 3);
    ({ read, written } = TEXT_ENCODER_UTF8.encodeInto(s, new Uint8Array(memory.buffer, ptr, s.length * 3)));
  }
  return { ptr, len: written };
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
  out = replaceOnce(
    out,
    /await (interceptor[0-9]+Init)\(/,
    "$1(",
    "the call to the plugin's init",
  );
  out = replaceOnce(
    out,
    /(async function export_interceptor_[0-9_]+\$intercept\(arg0, arg1, arg2, arg3, arg4, arg5\) \{\n)([\s\S]*?)(\n  var variant[0-9]+ = ret;\n)/,
    (_, head, body, tail) => head + lendMessage(body) + tail,
    "the prologue of intercept(direction, kind, method, msg)",
  );
  // Inside the getters of the message (the methods of one class).
  out = replaceOnce(out, /\nclass import_types_[0-9_]+\$Message \{\n[\s\S]*?\n\}\n/, plainGetters, "the message resource class");
  const before = out.length;
  out = out.replace(/\n[ \t]*_debugLog\((?:[^()]|\([^()]*\))*\);/g, "");
  if (out.length === before) {
    throw new Error("componentize-js bindings changed: no debug-log calls to remove");
  }
  return out;
}

/**
 * The prologue of `intercept`: the generated lifting of direction, kind and
 * method stays as it is; the borrowed message is lent through one reused
 * resource object.
 */
function lendMessage(body) {
  const found = (pattern, what, text = body) => {
    const match = text.match(pattern);
    if (match === null) {
      throw new Error(`componentize-js bindings changed: cannot find ${what} in intercept`);
    }
    return match;
  };
  // Where the generated code starts wrapping the borrow; all before it lifts
  // the arguments, and must lift exactly these four.
  const [wrap, rsc, resourceClass] = found(
    /\n  var (rsc[0-9]+) = new\.target === (import_types_[0-9_]+\$Message) \? this : Object\.create\(\2\.prototype\);\n/,
    "the message object",
  );
  const lifts = body.slice(0, body.indexOf(wrap));
  const [, direction, kind, method, handle] = found(
    /^  let (enum[0-9]+);\n  switch \(arg0\) \{\n[\s\S]*?\n  \}\n  let (enum[0-9]+);\n  switch \(arg1\) \{\n[\s\S]*?\n  \}\n  var ptr[0-9]+ = arg2;\n  var len[0-9]+ = arg3;\n  var (result[0-9]+) = TEXT_DECODER_UTF8\.decode\(new Uint8Array\(\$memory\.buffer, ptr[0-9]+, len[0-9]+\)\);\n  if \(len[0-9]+ !== 0\) \$dealloc\(ptr[0-9]+, len[0-9]+, 1\);\n  var (handle[0-9]+) = arg4;\n[ \t]*$/,
    "the lifting of direction, kind, method and the borrow (and nothing else)",
    lifts,
  );
  found(new RegExp(`\\n  Object\\.defineProperty\\(${rsc}, symbolRscHandle, \\{ writable: true, value: ${handle}\\}\\);\\n`), "the handle");
  found(new RegExp(`\\n  finalizationRegistry_import\\$types_[0-9_]+\\$message\\.register\\(${rsc}, ${handle}, ${rsc}\\);\\n`), "the registration");
  const [, drop] = found(
    new RegExp(`\\n  curResourceBorrows\\.push\\(\\{ rsc: ${rsc}, drop: (\\$resource_import\\$types_[0-9_]+\\$drop\\$message) \\}\\);\\n`),
    "the borrow drop",
  );
  const [, call] = found(
    new RegExp(`\\n[ \\t]*ret = await (interceptor[0-9]+Intercept)\\(${direction}, ${kind}, ${method}, ${rsc}\\);\\n`),
    "the call to the plugin",
  );
  return `${lifts.trimEnd()}
  // interpose: one object for every loan (see sdk/js/build/bindings.mjs).
  const ${rsc} = LENT_MESSAGE ??= Object.create(${resourceClass}.prototype);
  ${rsc}[symbolRscHandle] = ${handle};
  let ret;
  try {
    ret = ${call}(${direction}, ${kind}, ${method}, ${rsc});
  } finally {
    ${rsc}[symbolRscHandle] = undefined;
    ${drop}(${handle});
  }`;
}

/**
 * The message class with each getter's body inline (no closure per call) and
 * no FinalizationRegistry bookkeeping: the plugin only ever borrows messages.
 */
function plainGetters(text) {
  const getters = text.match(/\n    function helper\(arg0\) \{\n/g)?.length ?? 0;
  const unregisters = text.match(/\n[ \t]*finalizationRegistry_import\$types_[0-9_]+\$message\.unregister\(arg0\);/g)?.length ?? 0;
  const calls = text.match(/\n    return helper\(this\);\n/g)?.length ?? 0;
  // One method per part of the WIT resource, each wrapping a helper.
  const methods = text.match(/\n  [A-Za-z_$][\w$]*\([^)]*\) \{\n/g)?.length ?? 0;
  if (methods === 0 || getters !== methods || unregisters !== methods || calls !== methods) {
    throw new Error(
      `componentize-js bindings changed: the message class has ${methods} methods, ${getters} getters, ${calls} helper calls and ${unregisters} unregisters (expected as many of each)`,
    );
  }
  return `\nlet LENT_MESSAGE;${text
    .replace(/\n    function helper\(arg0\) \{\n/g, "\n    const arg0 = this;\n    {\n")
    .replace(/\n    return helper\(this\);\n/g, "\n")
    .replace(/\n[ \t]*finalizationRegistry_import\$types_[0-9_]+\$message\.unregister\(arg0\);/g, "")}`;
}
