// Finds the strings to redact in a payload's raw JSON text and splices the
// redacted ones back in, leaving every other character as it was. A port of
// plugins/redact/src/scan.rs: the same walk, the same strings, the same errors
// (offsets in UTF-8 bytes, as the Rust plugin reports them).
//
// Parsing a 100 KiB result into objects and serializing it again costs far more
// than scanning its text, and would reorder nothing but still copy everything.
// The scanner walks the text once, follows a small path spec to the strings
// that matter, decodes only those, and re-encodes only the ones that changed.

/** Which strings of a payload to redact: `ALL` (every string value in the subtree), an object spec or an array spec. */
export const ALL = Object.freeze({ all: true });

function object(members) {
  return Object.freeze({ members: new Map(members) });
}

function array(element) {
  return Object.freeze({ element });
}

const EMBEDDED_RESOURCE = object([["text", ALL]]);
const CONTENT_BLOCK = object([
  ["text", ALL],
  ["resource", EMBEDDED_RESOURCE],
]);

/** `tools/call` result: text blocks, embedded resources, structured content. */
export const TOOL_RESULT = object([
  ["content", array(CONTENT_BLOCK)],
  ["structuredContent", ALL],
]);

/** `resources/read` result: the text of each part. */
export const RESOURCE_RESULT = object([["contents", array(EMBEDDED_RESOURCE)]]);

/** `prompts/get` result: the text (or embedded resource) of each message. */
export const PROMPT_RESULT = object([["messages", array(object([["content", CONTENT_BLOCK]]))]]);

/** Why a payload could not be scanned; `at` is a UTF-16 index until `redact` turns it into a byte offset. */
export class ScanError extends Error {
  constructor(kind, at) {
    super(kind);
    this.kind = kind; // "malformed" | "undecodable"
    this.at = at;
  }

  toString() {
    return this.kind === "malformed"
      ? `malformed JSON at byte ${this.at}`
      : `a string at byte ${this.at} does not decode`;
  }
}

const encoder = new TextEncoder();

function byteOffset(raw, index) {
  let ascii = true;
  for (let i = 0; i < index; i++) {
    if (raw.charCodeAt(i) > 0x7f) {
      ascii = false;
      break;
    }
  }
  return ascii ? index : encoder.encode(raw.slice(0, index)).length;
}

/**
 * The redacted payload, `{ payload, strings, rules }`, or `undefined` when
 * nothing matched. Throws a ScanError (with a byte offset) when the payload
 * is not JSON or holds a string that does not decode.
 */
export function redact(raw, spec, rules) {
  const fast = redactCompact(raw, spec, rules);
  return fast === NOT_COMPACT ? redactByScanning(raw, spec, rules) : fast;
}

const NOT_COMPACT = Symbol("not compact");

/**
 * The fast way, for payloads written as `JSON.stringify` writes them (compact,
 * as the MCP SDKs send them): parse natively, edit the strings in the tree,
 * serialize again. The engine interprets the scanner below at a few hundred
 * nanoseconds an operation, while parsing and serializing are native. Exactly
 * the scanner's result, because serializing the parsed payload gives back its
 * text byte for byte (checked), and a changed string is written the same way
 * either way; otherwise (whitespace, duplicate keys, `\u` escapes, numbers
 * such as `1.0`, invalid JSON) it returns NOT_COMPACT and the scanner runs.
 */
function redactCompact(raw, spec, rules) {
  if (raw.includes("\\u")) {
    return NOT_COMPACT;
  }
  try {
    const value = JSON.parse(raw);
    if (JSON.stringify(value) !== raw) {
      return NOT_COMPACT;
    }
    const state = { rules, strings: 0, hits: [] };
    editTree(value, spec, state);
    if (state.strings === 0) {
      return undefined;
    }
    return { payload: JSON.stringify(value), strings: state.strings, rules: state.hits };
  } catch {
    // Not JSON, or nested too deep for the native parser or this walk: the
    // scanner reports the error, or copes (it does not recurse).
    return NOT_COMPACT;
  }
}

/** Applies the rules to the strings `spec` selects in a parsed value, in document order. */
function editTree(value, spec, state) {
  if (spec === ALL) {
    editAll(value, state);
  } else if (spec.members !== undefined) {
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      for (const key of Object.keys(value)) {
        const member = spec.members.get(key);
        if (member !== undefined) {
          const edited = editValue(value[key], member, state);
          if (edited !== undefined) {
            value[key] = edited;
          }
        }
      }
    }
  } else if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const edited = editValue(value[i], spec.element, state);
      if (edited !== undefined) {
        value[i] = edited;
      }
    }
  }
}

/** A replacement for a string `value` under `spec`, or undefined (containers are edited in place). */
function editValue(value, spec, state) {
  if (typeof value === "string") {
    return spec === ALL ? redactText(value, state) : undefined;
  }
  if (value !== null && typeof value === "object") {
    editTree(value, spec, state);
  }
  return undefined;
}

function editAll(value, state) {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      if (typeof item === "string") {
        const edited = redactText(item, state);
        if (edited !== undefined) {
          value[i] = edited;
        }
      } else if (item !== null && typeof item === "object") {
        editAll(item, state);
      }
    }
  } else if (value !== null && typeof value === "object") {
    for (const key of Object.keys(value)) {
      const item = value[key];
      if (typeof item === "string") {
        const edited = redactText(item, state);
        if (edited !== undefined) {
          value[key] = edited;
        }
      } else if (item !== null && typeof item === "object") {
        editAll(item, state);
      }
    }
  }
}

function redactText(text, state) {
  const redacted = state.rules.redact(text, state.hits);
  if (redacted !== undefined) {
    state.strings++;
  }
  return redacted;
}

/** The careful way: walk the raw text, decode only the strings that matter, splice. */
function redactByScanning(raw, spec, rules) {
  const scanner = new Scanner(raw, rules);
  try {
    scanner.value(spec);
    scanner.whitespace();
    if (scanner.pos !== raw.length) {
      throw new ScanError("malformed", scanner.pos);
    }
  } catch (error) {
    if (error instanceof ScanError) {
      error.at = byteOffset(raw, error.at);
    }
    throw error;
  }
  if (scanner.edits.length === 0) {
    return undefined;
  }
  let out = "";
  let copied = 0;
  for (const edit of scanner.edits) {
    out += raw.slice(copied, edit.start) + edit.text;
    copied = edit.end;
  }
  out += raw.slice(copied);
  return { payload: out, strings: scanner.edits.length, rules: scanner.hits };
}

const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

class Scanner {
  constructor(raw, rules) {
    this.raw = raw;
    this.pos = 0;
    this.rules = rules;
    this.edits = [];
    this.hits = [];
  }

  whitespace() {
    const raw = this.raw;
    let pos = this.pos;
    for (;;) {
      const c = raw.charCodeAt(pos);
      if (c === SPACE || c === LF || c === CR || c === TAB) {
        pos++;
      } else {
        break;
      }
    }
    this.pos = pos;
  }

  peek() {
    if (this.pos >= this.raw.length) {
      throw new ScanError("malformed", this.pos);
    }
    return this.raw.charCodeAt(this.pos);
  }

  next() {
    const c = this.peek();
    this.pos++;
    return c;
  }

  value(spec) {
    this.whitespace();
    const c = this.peek();
    if (spec !== undefined && spec.members !== undefined && c === OPEN_BRACE) {
      this.object(spec.members);
    } else if (spec !== undefined && spec.element !== undefined && c === OPEN_BRACKET) {
      this.array(spec.element);
    } else {
      this.walk(spec === ALL);
    }
  }

  object(members) {
    this.pos++;
    this.whitespace();
    if (this.peek() === CLOSE_BRACE) {
      this.pos++;
      return;
    }
    for (;;) {
      this.whitespace();
      const key = this.key();
      this.whitespace();
      if (this.next() !== COLON) {
        throw new ScanError("malformed", this.pos - 1);
      }
      this.value(members.get(key));
      this.whitespace();
      const c = this.next();
      if (c === COMMA) {
        continue;
      }
      if (c === CLOSE_BRACE) {
        return;
      }
      throw new ScanError("malformed", this.pos - 1);
    }
  }

  array(element) {
    this.pos++;
    this.whitespace();
    if (this.peek() === CLOSE_BRACKET) {
      this.pos++;
      return;
    }
    for (;;) {
      this.value(element);
      this.whitespace();
      const c = this.next();
      if (c === COMMA) {
        continue;
      }
      if (c === CLOSE_BRACKET) {
        return;
      }
      throw new ScanError("malformed", this.pos - 1);
    }
  }

  /** Skips one value, redacting its string values when `redact`. Iterative, so deep nesting cannot exhaust the stack. */
  walk(redact) {
    let depth = 0;
    for (;;) {
      this.whitespace();
      const c = this.peek();
      if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        this.pos++;
        depth++;
        continue;
      }
      if ((c === COMMA || c === COLON) && depth > 0) {
        this.pos++;
        continue;
      }
      if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        if (depth === 0) {
          throw new ScanError("malformed", this.pos);
        }
        depth--;
        this.pos++;
      } else if (c === QUOTE) {
        const start = this.pos;
        const [end, escaped] = this.stringEnd(start);
        this.pos = end;
        if (redact) {
          this.whitespace();
          const isKey = this.raw.charCodeAt(this.pos) === COLON;
          if (!isKey) {
            this.redactString(start, end, escaped);
          }
        }
      } else {
        this.scalar();
      }
      if (depth === 0) {
        return;
      }
    }
  }

  scalar() {
    const raw = this.raw;
    const start = this.pos;
    let pos = start;
    while (pos < raw.length) {
      const c = raw.charCodeAt(pos);
      if (c === COMMA || c === CLOSE_BRACE || c === CLOSE_BRACKET || c === SPACE || c === TAB || c === LF || c === CR) {
        break;
      }
      pos++;
    }
    if (pos === start) {
      throw new ScanError("malformed", start);
    }
    this.pos = pos;
  }

  /** The index just past the string token opening at `start`, and whether it holds escapes. */
  stringEnd(start) {
    const raw = this.raw;
    if (raw.charCodeAt(start) !== QUOTE) {
      throw new ScanError("malformed", start);
    }
    let at = start + 1;
    let escaped = false;
    let backslash = raw.indexOf("\\", at);
    for (;;) {
      const quote = raw.indexOf('"', at);
      if (quote === -1) {
        throw new ScanError("malformed", start);
      }
      if (backslash === -1 || backslash > quote) {
        return [quote + 1, escaped];
      }
      // An escape comes first: skip it and the character it escapes.
      escaped = true;
      at = backslash + 2;
      backslash = raw.indexOf("\\", at);
      if (at > raw.length) {
        throw new ScanError("malformed", start);
      }
    }
  }

  decode(start, end, escaped) {
    if (!escaped) {
      return this.raw.slice(start + 1, end - 1);
    }
    let text;
    try {
      text = JSON.parse(this.raw.slice(start, end));
    } catch {
      throw new ScanError("undecodable", start);
    }
    // JSON.parse accepts lone surrogate escapes (`\ud800`); serde_json, and so
    // the Rust plugin, does not.
    if (!isWellFormed(text)) {
      throw new ScanError("undecodable", start);
    }
    return text;
  }

  key() {
    const start = this.pos;
    const [end, escaped] = this.stringEnd(start);
    this.pos = end;
    return this.decode(start, end, escaped);
  }

  redactString(start, end, escaped) {
    const text = this.decode(start, end, escaped);
    const redacted = this.rules.redact(text, this.hits);
    if (redacted !== undefined) {
      this.edits.push({ start, end, text: JSON.stringify(redacted) });
    }
  }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function isWellFormed(text) {
  return typeof text.isWellFormed === "function" ? text.isWellFormed() : !LONE_SURROGATE.test(text);
}
