// Tool-name globs: `*` matches any run of characters (also none), `?` any one
// character; everything else matches itself. A port of
// plugins/tool-policy/src/glob.rs (characters are Unicode code points).

/** Whether `name` matches `pattern`. */
export function matches(pattern, name) {
  if (pattern === name) {
    return true;
  }
  // The common shapes without building arrays (the engine interprets this).
  const star = pattern.indexOf("*");
  if (!pattern.includes("?")) {
    if (star === -1) {
      return false;
    }
    if (star === pattern.length - 1) {
      return name.startsWith(pattern.slice(0, -1));
    }
  }
  const p = [...pattern];
  const n = [...name];
  let pi = 0;
  let ni = 0;
  // Where the last `*` was, and the name position it has swallowed up to: on
  // a mismatch, let that star swallow one more character and retry.
  let starP = -1;
  let starN = 0;
  while (ni < n.length) {
    const c = p[pi];
    if (c === "*") {
      starP = pi;
      starN = ni;
      pi++;
    } else if (c !== undefined && (c === "?" || c === n[ni])) {
      pi++;
      ni++;
    } else if (starP !== -1) {
      pi = starP + 1;
      starN++;
      ni = starN;
    } else {
      return false;
    }
  }
  while (pi < p.length) {
    if (p[pi] !== "*") {
      return false;
    }
    pi++;
  }
  return true;
}
