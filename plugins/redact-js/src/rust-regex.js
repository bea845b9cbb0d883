// Translates a regular expression in Rust `regex` syntax (what the Rust
// `redact` plugin's users write in their config) into an equivalent JavaScript
// RegExp, and computes what the Rust plugin computes from its syntax tree:
// whether the pattern can match the empty string, and whether it is safe to
// run on raw JSON text (it can match no character JSON escapes and has no
// assertion).
//
// Rust's syntax is Unicode-aware by default: `\d`, `\w`, `\s` and `\b` are
// translated to the same Unicode classes in JavaScript (with the `u` flag), so
// a pattern matches the same text in both plugins. Supported: literals and
// escapes, classes (ranges, negation, `\d\w\s\pX\p{..}`, `[:alpha:]`, nested
// unions), `.`, `^ $ \A \z \b \B \< \>`, groups (capturing, `(?:)`, named
// `(?P<n>)` / `(?<n>)`), greedy and lazy repetition, and the flags `m s x u U`
// anywhere and `i` at the start of the pattern. Anything else is refused with
// a message saying so, rather than silently meaning something else.

import { DECIMAL, property, WHITE_SPACE, WORD as WORD_CLASS } from "./unicode.js";

const WORD = `[${WORD_CLASS}]`;
const ASCII_WORD_CLASS = "0-9A-Za-z_";

// The characters JSON escapes (or may escape): control characters, `"`, `\`, `/`.
const ESCAPABLE = [];
for (let c = 0; c < 0x20; c++) {
  ESCAPABLE.push(String.fromCharCode(c));
}
ESCAPABLE.push('"', "\\", "/");

const POSIX = {
  alnum: "0-9A-Za-z",
  alpha: "A-Za-z",
  ascii: "\\u{0}-\\u{7F}",
  blank: "\\t ",
  cntrl: "\\u{0}-\\u{1F}\\u{7F}",
  digit: "0-9",
  graph: "!-~",
  lower: "a-z",
  print: " -~",
  punct: "!-\\/:-@\\[-`{-~",
  space: "\\t\\n\\u{B}\\f\\r ",
  upper: "A-Z",
  word: "0-9A-Za-z_",
  xdigit: "0-9A-Fa-f",
};

/** A pattern Rust's `regex` would refuse, or that this translator does not support. */
export class PatternError extends Error {}

/**
 * @returns {{ source: string, flags: string, regex: RegExp, canMatchEmpty: boolean,
 *   escapeSafe: boolean, groupNames: Map<string, number>, groupCount: number }}
 */
export function translate(pattern) {
  const parser = new Parser(pattern);
  const node = parser.parse();
  const flags = parser.globalIgnoreCase ? "iu" : "u";
  let regex;
  try {
    regex = new RegExp(node.src, flags);
  } catch (error) {
    throw new PatternError(`cannot be translated to JavaScript: ${error.message}`);
  }
  return {
    source: node.src,
    flags,
    regex,
    canMatchEmpty: node.min === 0,
    escapeSafe: node.safe,
    groupNames: parser.groupNames,
    groupCount: parser.groupCount,
  };
}

function hex(cp) {
  return `\\u{${cp.toString(16).toUpperCase()}}`;
}

/** A class item or literal, as source usable inside `[...]`. */
function classChar(cp) {
  const ch = String.fromCodePoint(cp);
  return /[0-9A-Za-z]/.test(ch) ? ch : hex(cp);
}

class Parser {
  constructor(pattern) {
    this.p = pattern;
    this.i = 0;
    this.flags = { i: false, m: false, s: false, x: false, u: true, U: false };
    this.globalIgnoreCase = false;
    this.groupCount = 0;
    this.groupNames = new Map();
  }

  error(message) {
    return new PatternError(`${message} (at offset ${this.i} of the pattern)`);
  }

  peek(offset = 0) {
    return this.p.codePointAt(this.i + offset);
  }

  peekChar(offset = 0) {
    const cp = this.peek(offset);
    return cp === undefined ? undefined : String.fromCodePoint(cp);
  }

  eat(text) {
    if (this.p.startsWith(text, this.i)) {
      this.i += text.length;
      return true;
    }
    return false;
  }

  next() {
    const cp = this.peek();
    if (cp === undefined) {
      throw this.error("unexpected end of pattern");
    }
    this.i += cp > 0xffff ? 2 : 1;
    return cp;
  }

  parse() {
    const node = this.alternation();
    if (this.i < this.p.length) {
      throw this.error("unopened group");
    }
    return node;
  }

  skipVerbose() {
    if (!this.flags.x) {
      return;
    }
    for (;;) {
      const ch = this.peekChar();
      if (ch === undefined) {
        return;
      }
      if (/\s/u.test(ch)) {
        this.i += ch.length;
      } else if (ch === "#") {
        while (this.i < this.p.length && this.p[this.i] !== "\n") {
          this.i++;
        }
      } else {
        return;
      }
    }
  }

  alternation() {
    const branches = [this.concat()];
    while (this.eat("|")) {
      branches.push(this.concat());
    }
    if (branches.length === 1) {
      return branches[0];
    }
    return {
      src: branches.map((b) => b.src).join("|"),
      min: Math.min(...branches.map((b) => b.min)),
      safe: branches.every((b) => b.safe),
      alternation: true,
    };
  }

  concat() {
    const items = [];
    for (;;) {
      this.skipVerbose();
      const ch = this.peekChar();
      if (ch === undefined || ch === "|" || ch === ")") {
        break;
      }
      const atom = this.atom();
      if (atom === null) {
        continue; // a flag group such as `(?s)`
      }
      items.push(this.repetition(atom));
    }
    return {
      src: items.map((item) => (item.alternation ? `(?:${item.src})` : item.src)).join(""),
      min: items.reduce((sum, item) => sum + item.min, 0),
      safe: items.every((item) => item.safe),
    };
  }

  repetition(atom) {
    let node = atom;
    for (;;) {
      this.skipVerbose();
      const ch = this.peekChar();
      let lower;
      let upper;
      if (ch === "*") {
        [lower, upper] = [0, ""];
        this.i++;
      } else if (ch === "+") {
        [lower, upper] = [1, ""];
        this.i++;
      } else if (ch === "?") {
        [lower, upper] = [0, 1];
        this.i++;
      } else if (ch === "{") {
        const m = /^\{\s*(\d+)\s*(?:(,)\s*(\d*)\s*)?\}/.exec(this.p.slice(this.i));
        if (m === null) {
          throw this.error("invalid repetition: expected {n}, {n,} or {n,m}");
        }
        lower = Number(m[1]);
        upper = m[2] === undefined ? lower : m[3] === "" ? "" : Number(m[3]);
        if (upper !== "" && upper < lower) {
          throw this.error("invalid repetition range: the minimum is larger than the maximum");
        }
        this.i += m[0].length;
      } else {
        return node;
      }
      if (node.assertion) {
        throw this.error("repeating an assertion is not supported");
      }
      let lazy = this.eat("?");
      if (this.flags.U) {
        lazy = !lazy;
      }
      const quantifier =
        ch === "{" ? (upper === lower ? `{${lower}}` : `{${lower},${upper}}`) : ch;
      const base = node.atomic ? node.src : `(?:${node.src})`;
      node = { src: `${base}${quantifier}${lazy ? "?" : ""}`, min: node.min * lower, safe: node.safe, atomic: false };
    }
  }

  atom() {
    const ch = this.peekChar();
    switch (ch) {
      case "(":
        return this.group();
      case "[":
        return this.classNode(this.bracketClass());
      case ".":
        this.i++;
        return this.classNode(this.flags.s ? "[\\s\\S]" : "[^\\n]");
      case "^":
        this.i++;
        return assertion(this.flags.m ? "(?<![^\\n])" : "(?<![\\s\\S])");
      case "$":
        this.i++;
        return assertion(this.flags.m ? "(?![^\\n])" : "(?![\\s\\S])");
      case "\\":
        return this.escape();
      case "*":
      case "+":
      case "?":
        throw this.error("repetition operator missing expression");
      case "{":
        throw this.error("repetition operator missing expression");
      default:
        return this.literal(this.next());
    }
  }

  literal(cp) {
    const src = classChar(cp);
    return { src, min: 1, safe: this.isSafeClass(`[${src}]`), atomic: true };
  }

  classNode(src) {
    return { src, min: 1, safe: this.isSafeClass(src), atomic: true };
  }

  /** Whether a class can match none of the characters JSON escapes. */
  isSafeClass(src) {
    const re = new RegExp(`^${src}$`, this.globalIgnoreCase ? "iu" : "u");
    return !ESCAPABLE.some((c) => re.test(c));
  }

  group() {
    this.i++; // (
    const saved = { ...this.flags };
    let capture = true;
    if (this.eat("?")) {
      if (this.eat("P<") || (this.peekChar() === "<" && this.peekChar(1) !== "=" && this.peekChar(1) !== "!" && this.eat("<"))) {
        const m = /^([A-Za-z_][A-Za-z0-9_.[\]]*)>/.exec(this.p.slice(this.i));
        if (m === null) {
          throw this.error("invalid capture group name");
        }
        if (this.groupNames.has(m[1])) {
          throw this.error(`duplicate capture group name \`${m[1]}\``);
        }
        this.i += m[0].length;
        this.groupCount++;
        this.groupNames.set(m[1], this.groupCount);
        return this.finishGroup(true, saved);
      }
      if (/^(?:=|!|<=|<!)/.test(this.p.slice(this.i))) {
        throw this.error("look-around, including look-ahead and look-behind, is not supported");
      }
      const m = /^([imsxuUR-]*)([:)])/.exec(this.p.slice(this.i));
      if (m === null) {
        throw this.error("unrecognized flag or group syntax");
      }
      const start = this.i - 2;
      this.i += m[0].length;
      this.applyFlags(m[1], start === 0 && m[2] === ")");
      if (m[2] === ")") {
        // `(?flags)`: applies to the rest of the enclosing group.
        return null;
      }
      capture = false;
    } else {
      this.groupCount++;
    }
    return this.finishGroup(capture, saved);
  }

  finishGroup(capture, saved) {
    const inner = this.alternation();
    if (!this.eat(")")) {
      throw this.error("unclosed group");
    }
    this.flags = saved;
    return {
      src: capture ? `(${inner.src})` : `(?:${inner.src})`,
      min: inner.min,
      safe: inner.safe,
      atomic: true,
    };
  }

  /** `leading`: a `(?flags)` group at the very start of the pattern. */
  applyFlags(spec, leading) {
    let on = true;
    for (const flag of spec) {
      if (flag === "-") {
        on = false;
        continue;
      }
      if (flag === "R") {
        throw this.error("the CRLF flag `R` is not supported");
      }
      if (flag === "i") {
        // JavaScript has no inline flags: a leading `(?i)` becomes the
        // RegExp's `i` flag; elsewhere `i` is refused.
        if (!leading || !on) {
          throw this.error("the case-insensitive flag `i` is supported only at the start of the pattern, as `(?i)`");
        }
        this.globalIgnoreCase = true;
        continue;
      }
      this.flags[flag] = on;
    }
  }

  escape() {
    this.i++; // backslash
    const ch = this.peekChar();
    if (ch === undefined) {
      throw this.error("incomplete escape sequence");
    }
    const uni = this.flags.u;
    switch (ch) {
      case "d":
      case "D":
      case "w":
      case "W":
      case "s":
      case "S":
      case "p":
      case "P": {
        const { items, negated } = this.perlOrUnicodeClass(false);
        return this.classNode(`[${negated ? "^" : ""}${items}]`);
      }
      case "b":
        this.i++;
        if (this.peekChar() === "{") {
          throw this.error("\\b{...} word-boundary forms are not supported");
        }
        return assertion(uni ? `(?:(?<=${WORD})(?!${WORD})|(?<!${WORD})(?=${WORD}))` : "\\b");
      case "B":
        this.i++;
        return assertion(uni ? `(?:(?<=${WORD})(?=${WORD})|(?<!${WORD})(?!${WORD}))` : "\\B");
      case "A":
        this.i++;
        return assertion("(?<![\\s\\S])");
      case "z":
        this.i++;
        return assertion("(?![\\s\\S])");
      case "<":
        this.i++;
        return assertion(uni ? `(?<!${WORD})(?=${WORD})` : `(?<![${ASCII_WORD_CLASS}])(?=[${ASCII_WORD_CLASS}])`);
      case ">":
        this.i++;
        return assertion(uni ? `(?<=${WORD})(?!${WORD})` : `(?<=[${ASCII_WORD_CLASS}])(?![${ASCII_WORD_CLASS}])`);
      default:
        return this.literal(this.escapedChar());
    }
  }

  /** The code point of a character escape (after the backslash). */
  escapedChar() {
    const ch = this.peekChar();
    const simple = { n: 0x0a, t: 0x09, r: 0x0d, f: 0x0c, v: 0x0b, a: 0x07, e: 0x1b };
    if (ch in simple) {
      this.i++;
      return simple[ch];
    }
    if (ch === "x" || ch === "u" || ch === "U") {
      this.i++;
      const digits = { x: 2, u: 4, U: 8 }[ch];
      let m = /^\{([0-9A-Fa-f]{1,8})\}/.exec(this.p.slice(this.i));
      if (m === null) {
        m = new RegExp(`^([0-9A-Fa-f]{${digits}})`).exec(this.p.slice(this.i));
      }
      if (m === null) {
        throw this.error(`invalid \\${ch} escape`);
      }
      const cp = parseInt(m[1], 16);
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        throw this.error("escape is not a Unicode scalar value");
      }
      this.i += m[0].length;
      return cp;
    }
    if (/[0-9]/.test(ch)) {
      throw this.error("backreferences and octal escapes are not supported");
    }
    if (/[A-Za-z]/.test(ch)) {
      throw this.error(`unrecognized escape sequence \\${ch}`);
    }
    return this.next();
  }

  /**
   * `\d \D \w \W \s \S \pX \p{..} \PX \P{..}` (backslash consumed, at the
   * letter): `items` for inside `[...]`, and whether the whole class is negated
   * (only possible outside brackets: JavaScript cannot negate a union of
   * properties inside a class without the `v` flag).
   */
  perlOrUnicodeClass(insideClass) {
    const letter = this.peekChar();
    this.i++;
    const uni = this.flags.u;
    const plain = (items) => ({ items, negated: false });
    const negated = (items) => {
      if (insideClass) {
        throw this.error(`\\${letter} inside [...] is not supported`);
      }
      return { items, negated: true };
    };
    switch (letter) {
      case "d":
        return plain(uni ? DECIMAL : "0-9");
      case "w":
        return plain(uni ? WORD_CLASS : ASCII_WORD_CLASS);
      case "s":
        return plain(uni ? WHITE_SPACE : "\\t\\n\\u{B}\\f\\r ");
      case "D":
        return negated(uni ? DECIMAL : "0-9");
      case "S":
        return negated(uni ? WHITE_SPACE : "\\t\\n\\u{B}\\f\\r ");
      case "W":
        return negated(uni ? WORD_CLASS : ASCII_WORD_CLASS);
      case "p":
      case "P": {
        const { items, negate } = this.unicodeProperty(letter === "P");
        return negate ? negated(items) : plain(items);
      }
      default:
        throw this.error("internal: not a class escape");
    }
  }

  unicodeProperty(negate) {
    let name;
    if (this.eat("{")) {
      const end = this.p.indexOf("}", this.i);
      if (end === -1) {
        throw this.error("unclosed \\p{...}");
      }
      name = this.p.slice(this.i, end);
      this.i = end + 1;
    } else {
      name = this.peekChar();
      this.i += name?.length ?? 0;
    }
    if (!name) {
      throw this.error("empty Unicode class");
    }
    if (name.startsWith("^")) {
      name = name.slice(1);
      negate = !negate;
    }
    const items = property(name);
    if (items === undefined) {
      throw this.error(`unknown or unsupported Unicode class \`${name}\``);
    }
    return { items, negate };
  }

  /** Parses `[...]` and returns the JavaScript class source. */
  bracketClass() {
    this.i++; // [
    let negate = false;
    if (this.eat("^")) {
      negate = true;
    }
    const items = [];
    let first = true;
    for (;;) {
      if (this.flags.x) {
        while (/\s/u.test(this.peekChar() ?? "")) {
          this.i++;
        }
      }
      const ch = this.peekChar();
      if (ch === undefined) {
        throw this.error("unclosed character class");
      }
      if (ch === "]" && !first) {
        this.i++;
        break;
      }
      first = false;
      if (this.p.startsWith("&&", this.i) || this.p.startsWith("--", this.i) || this.p.startsWith("~~", this.i)) {
        throw this.error("class set operations (&&, --, ~~) are not supported");
      }
      if (ch === "[") {
        const posix = /^\[:(\^?)([a-z]+):\]/.exec(this.p.slice(this.i));
        if (posix !== null) {
          if (posix[1] === "^") {
            throw this.error("negated POSIX classes are not supported");
          }
          const set = POSIX[posix[2]];
          if (set === undefined) {
            throw this.error(`unknown POSIX class [:${posix[2]}:]`);
          }
          items.push(set);
          this.i += posix[0].length;
          continue;
        }
        if (this.peekChar(1) === "^") {
          throw this.error("negated nested classes are not supported");
        }
        const nested = this.bracketClass();
        items.push(nested.slice(1, -1));
        continue;
      }
      if (ch === "\\" && /[dDwWsSpP]/.test(this.peekChar(1) ?? "")) {
        this.i++;
        items.push(this.perlOrUnicodeClass(true).items);
        continue;
      }
      const low = this.classLiteral();
      if (this.peekChar() === "-" && this.peekChar(1) !== "]" && this.peekChar(1) !== undefined) {
        this.i++;
        const high = this.classLiteral();
        if (high < low) {
          throw this.error("invalid class range: the start is after the end");
        }
        items.push(`${classChar(low)}-${classChar(high)}`);
      } else {
        items.push(classChar(low));
      }
    }
    if (items.length === 0) {
      throw this.error("empty character class");
    }
    return `[${negate ? "^" : ""}${items.join("")}]`;
  }

  classLiteral() {
    if (this.eat("\\")) {
      return this.escapedChar();
    }
    return this.next();
  }
}

function assertion(src) {
  return { src, min: 0, safe: false, atomic: false, assertion: true };
}
