// JSON the way the Rust plugins read and write it (serde_json without
// `preserve_order`), for JavaScript plugins that must give the same bytes and
// the same error texts as a Rust twin (plugins/tool-policy-js, redact-js):
//
// - objects are maps sorted by key (a later duplicate key wins), written
//   without whitespace;
// - numbers keep their text when they are integers serde_json keeps exact
//   (i64 / u64), and are written as serde_json writes floats otherwise
//   (`1.0`, `1e+21`, `1.5e-7`: shortest digits, plain from 1e-5 to below 1e16);
// - errors read like serde_json's, with its line and column (columns count
//   UTF-8 bytes), for the shapes serde's derive produces.
//
// `parse` builds a small tree (Obj, Arr, Num, strings, booleans, null); the
// helpers below apply serde's derive rules (known fields, duplicates, missing
// fields, `flatten`ed extras). Plain `JSON.parse` is faster: use this only
// where the exact bytes or messages matter.

/** A JSON number, kept as its text. */
export class Num {
  constructor(raw) {
    this.raw = raw;
  }
}

/** A parsed object: entries in document order, with where each key ended. */
export class Obj {
  constructor(start) {
    this.start = start; // index of `{`
    this.end = -1; // index of `}`
    /** @type {Array<{ key: string, keyEnd: number, value: any, valueStart: number, valueEnd: number }>} */
    this.entries = [];
  }
}

/** A parsed array; `spans[i]` is where element `i` starts and ends. */
export class Arr extends Array {}

/** A serde_json error: message and position. */
export class SerdeError extends Error {
  constructor(text, detail, index, mode) {
    super(detail);
    this.detail = detail;
    const { line, column } = position(text, index, mode);
    this.line = line;
    this.column = column;
    this.message = `${detail} at line ${line} column ${column}`;
  }
}

const encoder = new TextEncoder();

/**
 * serde_json's positions: `after` an index (the reader's position, what
 * `fix_position` reports) or `at` it (its peek position: one further).
 */
function position(text, index, mode) {
  const upto = Math.min(text.length, mode === "peek" ? index + 1 : index);
  const lineStart = text.lastIndexOf("\n", upto - 1) + 1;
  let line = 1;
  for (let i = text.indexOf("\n"); i !== -1 && i < upto; i = text.indexOf("\n", i + 1)) {
    line++;
  }
  const segment = text.slice(lineStart, upto);
  // eslint-disable-next-line no-control-regex
  const column = /^[\x00-\x7f]*$/.test(segment) ? segment.length : encoder.encode(segment).length;
  return { line, column };
}

const RECURSION_LIMIT = 128;

/**
 * Parses JSON text (valid JSON: the proxy checked it) into Obj / Arr / Num /
 * string / boolean / null. Returns the value and where it starts and ends.
 */
export function parse(text) {
  const parser = new Parser(text);
  parser.ws();
  const start = parser.i;
  const value = parser.value(RECURSION_LIMIT);
  return { value, start, end: parser.i };
}

class Parser {
  constructor(text) {
    this.text = text;
    this.i = 0;
  }

  ws() {
    const t = this.text;
    let i = this.i;
    for (;;) {
      const c = t.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
        i++;
      } else {
        break;
      }
    }
    this.i = i;
  }

  fail(detail, index = this.i, mode = "after") {
    throw new SerdeError(this.text, detail, index, mode);
  }

  value(depth) {
    this.ws();
    const t = this.text;
    const c = t[this.i];
    if (c === "{" || c === "[") {
      if (depth - 1 === 0) {
        this.fail("recursion limit exceeded", this.i, "peek");
      }
      return c === "{" ? this.object(depth - 1) : this.array(depth - 1);
    }
    if (c === '"') {
      return this.string();
    }
    if (t.startsWith("true", this.i)) {
      this.i += 4;
      return true;
    }
    if (t.startsWith("false", this.i)) {
      this.i += 5;
      return false;
    }
    if (t.startsWith("null", this.i)) {
      this.i += 4;
      return null;
    }
    const m = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
    m.lastIndex = this.i;
    const found = m.exec(t);
    if (found === null || found[0] === "") {
      this.fail("expected value", this.i, "peek");
    }
    this.i += found[0].length;
    return new Num(found[0]);
  }

  object(depth) {
    const obj = new Obj(this.i);
    this.i++;
    this.ws();
    if (this.text[this.i] === "}") {
      obj.end = this.i;
      this.i++;
      return obj;
    }
    for (;;) {
      this.ws();
      const key = this.string();
      const keyEnd = this.i;
      this.ws();
      this.i++; // :
      this.ws();
      const valueStart = this.i;
      const value = this.value(depth);
      obj.entries.push({ key, keyEnd, value, valueStart, valueEnd: this.i });
      this.ws();
      const c = this.text[this.i];
      if (c === ",") {
        this.i++;
        continue;
      }
      if (c !== "}") {
        this.fail("expected `,` or `}`", this.i, "peek");
      }
      obj.end = this.i;
      this.i++;
      return obj;
    }
  }

  array(depth) {
    const arr = new Arr();
    arr.spans = [];
    this.i++;
    this.ws();
    if (this.text[this.i] === "]") {
      this.i++;
      arr.spans = [];
      return arr;
    }
    for (;;) {
      this.ws();
      const start = this.i;
      arr.push(this.value(depth));
      arr.spans.push([start, this.i]);
      this.ws();
      const c = this.text[this.i];
      if (c === ",") {
        this.i++;
        continue;
      }
      if (c !== "]") {
        this.fail("expected `,` or `]`", this.i, "peek");
      }
      this.i++;
      return arr;
    }
  }

  string() {
    const t = this.text;
    const start = this.i;
    if (t[start] !== '"') {
      this.fail("key must be a string", start, "peek");
    }
    let out = "";
    let i = start + 1;
    for (;;) {
      const quote = t.indexOf('"', i);
      const slash = t.indexOf("\\", i);
      if (quote === -1) {
        this.fail("EOF while parsing a string", t.length);
      }
      if (slash === -1 || quote < slash) {
        out += t.slice(i, quote);
        this.i = quote + 1;
        return out;
      }
      out += t.slice(i, slash);
      const e = t[slash + 1];
      i = slash + 2;
      const simple = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
      if (e in simple) {
        out += simple[e];
        continue;
      }
      // \uXXXX, with serde_json's rules for surrogates.
      const unit = parseInt(t.slice(i, i + 4), 16);
      i += 4;
      if (unit >= 0xdc00 && unit <= 0xdfff) {
        this.fail("lone leading surrogate in hex escape", i);
      }
      if (unit >= 0xd800 && unit <= 0xdbff) {
        if (t[i] !== "\\" || t[i + 1] !== "u") {
          this.fail("unexpected end of hex escape", t[i] === "\\" ? i + 1 : i, t[i] === "\\" ? "after" : "peek");
        }
        const low = parseInt(t.slice(i + 2, i + 6), 16);
        i += 6;
        if (low < 0xdc00 || low > 0xdfff) {
          this.fail("lone leading surrogate in hex escape", i);
        }
        out += String.fromCharCode(unit, low);
        continue;
      }
      out += String.fromCharCode(unit);
    }
  }
}

// ---- serde's view of values -------------------------------------------------

/** What serde calls the value in an "invalid type" error. */
export function unexpected(value) {
  if (value === null) {
    return "null";
  }
  if (value === true || value === false) {
    return `boolean \`${value}\``;
  }
  if (typeof value === "string") {
    return `string ${rustDebugString(value)}`;
  }
  if (value instanceof Num) {
    const n = numberKind(value.raw);
    return n.kind === "float" ? `floating point \`${rustDisplayFloat(n.value)}\`` : `integer \`${n.value}\``;
  }
  if (value instanceof Arr) {
    return "sequence";
  }
  return "map";
}

/**
 * The index serde_json reports for an "invalid type" error on a value: after
 * a scalar (it was parsed), at the bracket of an array or object (it was not).
 */
export function invalidTypeIndex(entryOrValue, valueStart, valueEnd) {
  if (entryOrValue instanceof Arr || entryOrValue instanceof Obj) {
    return valueStart;
  }
  return valueEnd;
}

function rustDebugString(s) {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0);
    if (ch === '"' || ch === "\\") {
      out += `\\${ch}`;
    } else if (ch === "\n") {
      out += "\\n";
    } else if (ch === "\r") {
      out += "\\r";
    } else if (ch === "\t") {
      out += "\\t";
    } else if (cp < 0x20 || cp === 0x7f) {
      out += `\\u{${cp.toString(16)}}`;
    } else {
      out += ch;
    }
  }
  return `${out}"`;
}

const U64_MAX = 18446744073709551615n;
const I64_MIN = -9223372036854775808n;

/** How serde_json reads a number: a u64, an i64, or an f64. */
export function numberKind(raw) {
  if (!/[.eE]/.test(raw)) {
    const big = BigInt(raw);
    if (raw.startsWith("-")) {
      if (big === 0n) {
        return { kind: "float", value: -0 };
      }
      if (big >= I64_MIN) {
        return { kind: "int", value: big };
      }
    } else if (big <= U64_MAX) {
      return { kind: "int", value: big };
    }
  }
  return { kind: "float", value: Number(raw) };
}

/** The shortest round-trip digits and decimal exponent of a positive finite number. */
function shortest(x) {
  const [mantissa, exp] = x.toExponential().split("e");
  const digits = mantissa.replace(".", "");
  return { digits, kk: Number(exp) + 1 }; // value = 0.digits * 10^kk
}

/** An f64 as serde_json writes it: shortest round-trip digits, plain from 1e-5 to below 1e16, else `d.ddde±x`. */
export function ryu(x) {
  if (x === 0) {
    return Object.is(x, -0) ? "-0.0" : "0.0";
  }
  const sign = x < 0 ? "-" : "";
  const { digits, kk } = shortest(Math.abs(x));
  const length = digits.length;
  const k = kk - length;
  let body;
  if (k >= 0 && kk <= 16) {
    body = `${digits}${"0".repeat(k)}.0`;
  } else if (kk > 0 && kk <= 16) {
    body = `${digits.slice(0, kk)}.${digits.slice(kk)}`;
  } else if (kk > -5 && kk <= 0) {
    body = `0.${"0".repeat(-kk)}${digits}`;
  } else {
    const exponent = kk - 1 > 0 ? `+${kk - 1}` : `${kk - 1}`;
    body = length === 1 ? `${digits}e${exponent}` : `${digits[0]}.${digits.slice(1)}e${exponent}`;
  }
  return sign + body;
}

/** An f64 as Rust's `Display` writes it, with serde's `.0` for integral values. */
function rustDisplayFloat(x) {
  if (!Number.isFinite(x)) {
    return String(x);
  }
  if (x === 0) {
    return Object.is(x, -0) ? "-0.0" : "0.0";
  }
  const sign = x < 0 ? "-" : "";
  const { digits, kk } = shortest(Math.abs(x));
  let body;
  if (kk <= 0) {
    body = `0.${"0".repeat(-kk)}${digits}`;
  } else if (kk >= digits.length) {
    body = `${digits}${"0".repeat(kk - digits.length)}.0`;
  } else {
    body = `${digits.slice(0, kk)}.${digits.slice(kk)}`;
  }
  return sign + body;
}

// ---- writing ------------------------------------------------------------------

/** Code point order: the order of Rust's `String` keys in a `BTreeMap`. */
export function compareKeys(a, b) {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.codePointAt(i);
    const y = b.codePointAt(i);
    if (x !== y) {
      return x - y;
    }
    if (x > 0xffff) {
      i++;
    }
  }
  return a.length - b.length;
}

/** The entries of an object as a serde_json `Map`: a later duplicate wins, sorted by key. */
export function mapEntries(obj) {
  const map = new Map();
  for (const entry of obj.entries) {
    map.set(entry.key, entry.value);
  }
  return [...map.entries()].sort(([a], [b]) => compareKeys(a, b));
}

/** Writes a parsed value (or plain JS values built around parsed ones) as serde_json does. */
export function write(value) {
  if (value === null || value === undefined) {
    return "null";
  }
  if (value === true || value === false) {
    return String(value);
  }
  if (typeof value === "string") {
    return JSON.stringify(value);
  }
  if (typeof value === "number") {
    return Number.isInteger(value) ? String(value) : ryu(value);
  }
  if (value instanceof Num) {
    const n = numberKind(value.raw);
    return n.kind === "int" ? n.value.toString() : ryu(n.value);
  }
  if (Array.isArray(value)) {
    return `[${value.map(write).join(",")}]`;
  }
  if (value instanceof Obj) {
    return writeEntries(mapEntries(value));
  }
  if (value instanceof Map) {
    return writeEntries([...value.entries()].sort(([a], [b]) => compareKeys(a, b)));
  }
  throw new TypeError(`cannot write ${typeof value}`);
}

/** Writes `[key, value]` pairs in the order given (a struct's fields). */
export function writeEntries(entries) {
  return `{${entries.map(([key, value]) => `${JSON.stringify(key)}:${write(value)}`).join(",")}}`;
}

// ---- serde's derive rules ----------------------------------------------------

/**
 * Where serde_json reports an error raised right after reading a key
 * (unknown or duplicate field): past the key and any whitespace after it
 * (serde_json looks for the end of the map before it records the position).
 */
export function afterKey(text, entry) {
  let i = entry.keyEnd;
  while (i < text.length && " \t\n\r".includes(text[i])) {
    i++;
  }
  return i;
}

/**
 * Reads an object as a `#[derive(Deserialize)]` struct whose unknown fields go
 * to a `#[serde(flatten)]` map. `fields` maps each known field to a reader
 * `(value, entry) => result` (throw a SerdeError for an invalid type);
 * `required` lists fields with no default. Returns `{ fields, extra }` with
 * `extra` a Map (a later duplicate wins).
 */
export function flattenedStruct(text, value, start, end, structName, fields, required) {
  if (!(value instanceof Obj)) {
    throw new SerdeError(text, `invalid type: ${unexpected(value)}, expected struct ${structName}`, invalidTypeIndex(value, start, end));
  }
  const seen = new Map();
  const extra = new Map();
  for (const entry of value.entries) {
    const read = fields[entry.key];
    if (read === undefined) {
      extra.set(entry.key, entry.value);
      continue;
    }
    if (seen.has(entry.key)) {
      throw new SerdeError(text, `duplicate field \`${entry.key}\``, afterKey(text, entry));
    }
    seen.set(entry.key, read(entry.value, entry));
  }
  for (const field of required) {
    if (!seen.has(field)) {
      // Reported once the map is closed: just past its `}`.
      throw new SerdeError(text, `missing field \`${field}\``, value.end + 1);
    }
  }
  return { fields: seen, extra };
}

/** A reader for a `String` field. */
export function stringField(text) {
  return (value, entry) => {
    if (typeof value !== "string") {
      throw new SerdeError(text, `invalid type: ${unexpected(value)}, expected a string`, invalidTypeIndex(value, entry.valueStart, entry.valueEnd));
    }
    return value;
  };
}

/** A reader for an `Option<T>` field: null is None. */
export function optionField(read) {
  return (value, entry) => (value === null ? undefined : read(value, entry));
}

/** A reader for a `Map<String, Value>` field. */
export function mapField(text) {
  return (value, entry) => {
    if (!(value instanceof Obj)) {
      throw new SerdeError(text, `invalid type: ${unexpected(value)}, expected a map`, invalidTypeIndex(value, entry.valueStart, entry.valueEnd));
    }
    return new Map(mapEntries(value));
  };
}
