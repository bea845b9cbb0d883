// Method and name patterns, as the host understands them in a manifest: an
// exact name (`tools/call`), a prefix glob (`resources/*`) or `*` for all.

/** Compiles patterns into a predicate over names. */
export function matcher(patterns) {
  const list = normalizePatterns(patterns, "pattern");
  if (list.includes("*")) {
    return () => true;
  }
  const exact = new Set();
  const prefixes = [];
  for (const pattern of list) {
    if (pattern.endsWith("*")) {
      prefixes.push(pattern.slice(0, -1));
    } else {
      exact.add(pattern);
    }
  }
  if (prefixes.length === 0) {
    return exact.size === 1 ? oneOf(list[0]) : (name) => exact.has(name);
  }
  return (name) => exact.has(name) || prefixes.some((prefix) => name.startsWith(prefix));
}

function oneOf(only) {
  return (name) => name === only;
}

/** Checks and copies a pattern or list of patterns. */
export function normalizePatterns(patterns, what) {
  const list = typeof patterns === "string" ? [patterns] : patterns;
  if (!Array.isArray(list) || list.length === 0) {
    throw new TypeError(`expected a ${what} or a non-empty list of them`);
  }
  for (const pattern of list) {
    if (typeof pattern !== "string" || pattern === "") {
      throw new TypeError(`a ${what} must be a non-empty string, got ${JSON.stringify(pattern)}`);
    }
    const star = pattern.indexOf("*");
    if (star !== -1 && star !== pattern.length - 1) {
      throw new TypeError(`${what} \`${pattern}\`: \`*\` may only end a pattern (\`resources/*\`)`);
    }
  }
  return [...list];
}
