// Redaction rules: the built-in ones, the user's, and the raw-text pre-check.
// A port of plugins/redact/src/rules.rs: same config, same rules, same order,
// same replacements and the same error texts.

import { ConfigError } from "interpose-plugin";
import { afterKey, Arr, invalidTypeIndex, Obj, parse, SerdeError, unexpected } from "interpose-plugin/serde-json";

import { PatternError, translate } from "./rust-regex.js";
import { WHITE_SPACE } from "./unicode.js";

// The built-in rules use ASCII word boundaries (`(?-u:\b)` in Rust), which is
// what `\b` means in a JavaScript RegExp without the `i` flag. The engine in
// the component has no `\p{...}`: Unicode classes are spelled out
// (./unicode.js).

/**
 * The built-in rules, in the order they apply. `pattern` is the JavaScript form
 * of the Rust pattern (comment: the Rust source); `rawFilter` is a necessary
 * condition for `pattern` to match a string, checked on raw JSON text (it
 * matches no character JSON escapes and uses no assertion that an escape could
 * fool); each is the Rust plugin's raw filter, written to be fast in an
 * interpreter (a literal first where possible). `hint`, when present, is a
 * cheaper necessary condition still, made of native substring searches: the
 * JavaScript engine in the component interprets regular expressions at a few
 * nanoseconds a character, and most texts fail the hint at once. `find`, when
 * present, finds the same matches as `pattern`, faster.
 */
const BUILTINS = [
  {
    name: "private-key",
    // -----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?:[\s\S]*?-----END[A-Z0-9 ]*PRIVATE KEY-----|[A-Za-z0-9+/=\s]*)
    pattern:
      `-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?:[\\s\\S]*?-----END[A-Z0-9 ]*PRIVATE KEY-----|[A-Za-z0-9+/=${WHITE_SPACE}]*)`,
    rawFilter: /-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----/,
    hint: (text) => text.includes("PRIVATE KEY-----"),
  },
  {
    name: "aws-access-key",
    // (?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?-u:\b)
    pattern: "\\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\\b",
    rawFilter: /(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}/,
    hint: (text) => text.includes("AKIA") || text.includes("ASIA") || text.includes("ABIA") || text.includes("ACCA"),
  },
  {
    name: "bearer-token",
    // (?i-u:\b)(?i)bearer\s+[A-Za-z0-9\-._~+/]{20,}=*   (Unicode simple case
    // folding adds nothing to "bearer", and only the Kelvin sign and the long
    // s to the token class)
    pattern: `\\b[Bb][Ee][Aa][Rr][Ee][Rr][${WHITE_SPACE}]+[A-Za-z0-9\\-._~+/\\u{212A}\\u{17F}]{20,}=*`,
    rawFilter: /bearer/i,
  },
  {
    name: "api-key",
    // (?-u:\b)(?:sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})
    pattern: "\\b(?:sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})",
    rawFilter: /sk-[A-Za-z0-9_-]{20}|gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{40}/,
    hint: (text) => text.includes("sk-") || (text.includes("gh") && text.includes("_")),
  },
  {
    name: "email",
    // [A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}
    pattern: "[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}",
    // [A-Za-z0-9._%+-]@[A-Za-z0-9-], looking for the `@` first.
    rawFilter: /(?<=[A-Za-z0-9._%+-])@[A-Za-z0-9-]/,
    find: findEmails,
    hint: (text) => text.includes("@"),
  },
  {
    name: "card-number",
    // (?-u:\b)[2-6][0-9](?:[ -]?[0-9]){11,17}(?-u:\b)
    pattern: "\\b[2-6][0-9](?:[ -]?[0-9]){11,17}\\b",
    rawFilter: /[2-6][0-9](?:[ -]?[0-9]){11,17}/,
    validator: cardNumberValid,
  },
];

/** The names of the built-in rules. */
export function builtinNames() {
  return BUILTINS.map((rule) => rule.name);
}

/**
 * Reads the plugin's configuration (JSON text, or an object for tests) as the
 * Rust plugin's serde derive does, with the same messages and positions;
 * returns `{ rules, defaults }`.
 */
export function parseConfig(config) {
  const text = typeof config === "string" ? (config.trim() === "" ? "{}" : config) : JSON.stringify(config);
  try {
    return readConfig(text);
  } catch (error) {
    if (error instanceof SerdeError) {
      throw new ConfigError(error.message);
    }
    throw error;
  }
}

const CONFIG_FIELDS = ["rules", "defaults"];
const RULE_FIELDS = ["name", "pattern", "replacement"];

/** A struct's entries: from an object, or (as serde allows) from a sequence of its fields in order. */
function structEntries(text, value, start, end, name, fields) {
  if (value instanceof Arr) {
    return positionalEntries(text, value, fields);
  }
  if (!(value instanceof Obj)) {
    throw new SerdeError(text, `invalid type: ${unexpected(value)}, expected struct ${name}`, invalidTypeIndex(value, start, end));
  }
  const seen = new Set();
  for (const entry of value.entries) {
    if (!fields.includes(entry.key)) {
      const expected = fields.length === 2 ? `\`${fields[0]}\` or \`${fields[1]}\`` : `one of ${fields.map((f) => `\`${f}\``).join(", ")}`;
      throw new SerdeError(text, `unknown field \`${entry.key}\`, expected ${expected}`, afterKey(text, entry));
    }
    if (seen.has(entry.key)) {
      throw new SerdeError(text, `duplicate field \`${entry.key}\``, afterKey(text, entry));
    }
    seen.add(entry.key);
  }
  return value.entries;
}

/** A struct read from a sequence: its fields in order; more elements than fields are "trailing characters". */
function* positionalEntries(text, value, fields) {
  for (let i = 0; i < value.length; i++) {
    const [valueStart, valueEnd] = value.spans[i];
    if (i >= fields.length) {
      throw new SerdeError(text, "trailing characters", valueStart, "peek");
    }
    yield { key: fields[i], value: value[i], valueStart, valueEnd };
  }
}

function invalidType(text, value, start, end, expected) {
  return new SerdeError(text, `invalid type: ${unexpected(value)}, expected ${expected}`, invalidTypeIndex(value, start, end));
}

function readConfig(text) {
  const { value, start, end } = parse(text);
  const config = { rules: [], defaults: true };
  for (const entry of structEntries(text, value, start, end, "Config", CONFIG_FIELDS)) {
    const v = entry.value;
    if (entry.key === "rules") {
      if (!(v instanceof Arr)) {
        throw invalidType(text, v, entry.valueStart, entry.valueEnd, "a sequence");
      }
      config.rules = v.map((rule, i) => readRule(text, rule, v.spans[i]));
    } else {
      config.defaults = readDefaults(text, v, entry.valueStart, entry.valueEnd);
    }
  }
  return config;
}

function readRule(text, value, [start, end]) {
  const rule = {};
  for (const entry of structEntries(text, value, start, end, "RuleConfig", RULE_FIELDS)) {
    const v = entry.value;
    if (entry.key === "replacement" && v === null) {
      continue;
    }
    if (typeof v !== "string") {
      throw invalidType(text, v, entry.valueStart, entry.valueEnd, "a string");
    }
    rule[entry.key] = v;
  }
  for (const field of ["name", "pattern"]) {
    if (rule[field] === undefined) {
      // Reported once the map (or sequence) is closed: just past its end.
      throw value instanceof Arr
        ? new SerdeError(text, `invalid length ${value.length}, expected struct RuleConfig with 3 elements`, end)
        : new SerdeError(text, `missing field \`${field}\``, value.end + 1);
    }
  }
  return { name: rule.name, pattern: rule.pattern, replacement: rule.replacement };
}

/** `defaults`: true, false or a list of names (the Rust plugin's own visitor). */
function readDefaults(text, value, start, end) {
  if (typeof value === "boolean") {
    return value;
  }
  if (value instanceof Arr) {
    return value.map((name, i) => {
      if (typeof name !== "string") {
        throw invalidType(text, name, value.spans[i][0], value.spans[i][1], "a string");
      }
      return name;
    });
  }
  let at = invalidTypeIndex(value, start, end);
  if (value instanceof Obj) {
    // serde_json looks for the end of the map before recording the position.
    at = start + 1;
    while (" \t\n\r".includes(text[at]) && at < text.length) {
      at++;
    }
    if (text[at] === "}") {
      at++;
    }
  }
  throw new SerdeError(text, `invalid type: ${unexpected(value)}, expected true, false, or a list of built-in rule names`, at);
}

/** All rules of one plugin instance, and the pre-check over raw JSON text. */
export class Rules {
  /** Compiles the user's rules and the chosen built-ins (`config` from `parseConfig`). */
  constructor(config) {
    let builtins;
    if (config.defaults === true) {
      builtins = BUILTINS;
    } else if (config.defaults === false) {
      builtins = [];
    } else {
      for (const name of config.defaults) {
        if (!BUILTINS.some((b) => b.name === name)) {
          throw new ConfigError(
            `\`defaults\` names an unknown rule \`${name}\`; the built-in rules are: ${builtinNames().join(", ")}`,
          );
        }
      }
      builtins = BUILTINS.filter((b) => config.defaults.includes(b.name));
    }

    /** @type {Array<{ name: string, regex: RegExp, literal?: string, template?: Template, validator?: Function }>} */
    this.rules = [];
    const rawFilters = [];
    let filterable = true;
    for (const user of config.rules) {
      if (user.name === "") {
        throw new ConfigError("a rule has an empty `name`");
      }
      let translated;
      try {
        translated = translate(user.pattern);
      } catch (error) {
        if (error instanceof PatternError) {
          throw new ConfigError(`rule \`${user.name}\`: invalid pattern: ${error.message}`);
        }
        throw error;
      }
      if (translated.canMatchEmpty) {
        throw new ConfigError(`rule \`${user.name}\`: the pattern matches the empty string`);
      }
      const regex = new RegExp(translated.source, `g${translated.flags}`);
      if (translated.escapeSafe) {
        rawFilters.push({ regex: new RegExp(translated.source, translated.flags) });
      } else {
        filterable = false;
      }
      const rule = { name: user.name, regex };
      if (user.replacement !== undefined && user.replacement.includes("$")) {
        rule.template = new Template(user.replacement, translated);
      } else {
        rule.literal = user.replacement ?? `[REDACTED:${user.name}]`;
      }
      this.rules.push(rule);
    }
    for (const builtin of builtins) {
      rawFilters.push({ regex: builtin.rawFilter, hint: builtin.hint });
      this.rules.push({
        name: builtin.name,
        regex: new RegExp(builtin.pattern, "gu"),
        literal: `[REDACTED:${builtin.name}]`,
        validator: builtin.validator,
        find: builtin.find,
        hint: builtin.hint,
      });
    }
    // `undefined` when some rule cannot be checked on raw JSON text: every
    // message is then scanned.
    this.rawFilters = filterable && rawFilters.length > 0 ? rawFilters : undefined;
  }

  /** The names of the rules with these indexes (see `redact`). */
  names(indexes) {
    return indexes.map((i) => this.rules[i]?.name).filter((name) => name !== undefined);
  }

  /** Whether the raw JSON text of a payload may hold something to redact; `false` means it certainly does not. */
  mayMatchRaw(raw) {
    // A `\u` escape can spell any character, so the raw text is not the
    // decoded text even for escape-safe patterns.
    if (this.rawFilters === undefined || raw.includes("\\u")) {
      return this.rules.length > 0;
    }
    for (const filter of this.rawFilters) {
      if ((filter.hint === undefined || filter.hint(raw)) && filter.regex.test(raw)) {
        return true;
      }
    }
    return false;
  }

  /**
   * Redacts one decoded string; `undefined` when nothing matched. Adds the
   * indexes of the rules that matched to `hits`. Rules apply in order, each to
   * the previous one's output, and only those that match `text` itself (as
   * the Rust plugin's RegexSet decides).
   */
  redact(text, hits) {
    let current;
    for (let index = 0; index < this.rules.length; index++) {
      const rule = this.rules[index];
      if (rule.hint !== undefined && !rule.hint(text)) {
        continue;
      }
      // Until a rule changed something, applying a rule to `text` is the test.
      if (current !== undefined && !matches(rule, text)) {
        continue;
      }
      const replaced = apply(rule, current ?? text);
      if (replaced !== undefined) {
        current = replaced;
        if (!hits.includes(index)) {
          hits.push(index);
        }
      }
    }
    return current;
  }
}

/** Whether a rule's pattern matches somewhere in `text` (validators aside, as in a RegexSet). */
function matches(rule, text) {
  if (rule.find !== undefined) {
    return !rule.find(text).next().done;
  }
  rule.regex.lastIndex = 0;
  const found = rule.regex.test(text);
  rule.regex.lastIndex = 0;
  return found;
}

function apply(rule, haystack) {
  if (rule.find !== undefined) {
    return applyFound(rule, haystack);
  }
  let changed = false;
  rule.regex.lastIndex = 0;
  const out = haystack.replace(rule.regex, (...args) => {
    // args: match, groups..., offset, haystack
    const found = args[0];
    const start = args[args.length - 2];
    if (rule.validator !== undefined && !rule.validator(haystack, start, start + found.length)) {
      return found;
    }
    changed = true;
    return rule.literal ?? rule.template.expand(args);
  });
  return changed ? out : undefined;
}

/** `apply` for a rule with its own finder (same matches as its regex, found faster). */
function applyFound(rule, haystack) {
  let out = "";
  let copied = 0;
  let found = false;
  for (const [start, end] of rule.find(haystack)) {
    out += haystack.slice(copied, start) + rule.literal;
    copied = end;
    found = true;
  }
  return found ? out + haystack.slice(copied) : undefined;
}

const EMAIL_DOMAIN = /[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/y;

function isEmailLocal(c) {
  // [A-Za-z0-9._%+-]
  return (
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x2e ||
    c === 0x5f ||
    c === 0x25 ||
    c === 0x2b ||
    c === 0x2d
  );
}

/**
 * The matches of the email pattern, `[A-Za-z0-9._%+-]+@` + domain, found from
 * each `@` instead of trying the pattern at every position (the interpreter
 * spends milliseconds on that over 100 KiB of prose). The same matches: the
 * local part cannot contain `@`, so a match is the run of local characters
 * before an `@` (not reaching back into the previous match) followed by the
 * domain matched right after it, exactly as the pattern would.
 */
function* findEmails(haystack) {
  let from = 0;
  let at = haystack.indexOf("@");
  while (at !== -1) {
    let start = at;
    while (start > from && isEmailLocal(haystack.charCodeAt(start - 1))) {
      start--;
    }
    if (start < at) {
      EMAIL_DOMAIN.lastIndex = at + 1;
      if (EMAIL_DOMAIN.test(haystack)) {
        const end = EMAIL_DOMAIN.lastIndex;
        yield [start, end];
        from = end;
        at = haystack.indexOf("@", end);
        continue;
      }
    }
    at = haystack.indexOf("@", at + 1);
  }
}

/**
 * A replacement with capture references, expanded exactly as Rust's
 * `Captures::expand`: `$$` is a dollar sign; `$name` takes the longest run of
 * `[0-9A-Za-z_]`, `${name}` anything up to `}`; a name that parses as a number
 * is a group index; an unknown group expands to nothing; a `$` starting no
 * reference stays as it is.
 */
class Template {
  constructor(text, translated) {
    this.text = text;
    this.groupNames = translated.groupNames;
  }

  expand(args) {
    const groupCount = args.length - 3;
    const group = (ref) => {
      const index = /^\+?[0-9]+$/.test(ref) ? Number(ref) : this.groupNames.get(ref);
      if (index === undefined || !Number.isSafeInteger(index) || index > groupCount) {
        return "";
      }
      return args[index] ?? "";
    };
    let out = "";
    let rest = this.text;
    for (;;) {
      const at = rest.indexOf("$");
      if (at === -1) {
        return out + rest;
      }
      out += rest.slice(0, at);
      rest = rest.slice(at);
      if (rest[1] === "$") {
        out += "$";
        rest = rest.slice(2);
        continue;
      }
      if (rest[1] === "{") {
        const close = rest.indexOf("}", 2);
        if (close !== -1) {
          out += group(rest.slice(2, close));
          rest = rest.slice(close + 1);
          continue;
        }
      } else {
        const name = /^[0-9A-Za-z_]+/.exec(rest.slice(1));
        if (name !== null) {
          out += group(name[0]);
          rest = rest.slice(1 + name[0].length);
          continue;
        }
      }
      out += "$";
      rest = rest.slice(1);
    }
  }
}

/** A card number: 13 to 19 digits passing the Luhn check, not part of a longer number (`12.4111...`, `4111...,5`). */
function cardNumberValid(haystack, start, end) {
  const before = haystack[start - 1];
  if (before !== undefined && /[0-9.,]/.test(before)) {
    return false;
  }
  if ((haystack[end] === "." || haystack[end] === ",") && /[0-9]/.test(haystack[end + 1] ?? "")) {
    return false;
  }
  const digits = [];
  for (let i = start; i < end; i++) {
    const code = haystack.charCodeAt(i) - 48;
    if (code >= 0 && code <= 9) {
      digits.push(code);
    }
  }
  return digits.length >= 13 && digits.length <= 19 && luhn(digits);
}

export function luhn(digits) {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    const d = digits[digits.length - 1 - i];
    sum += i % 2 === 1 ? (d * 2 > 9 ? d * 2 - 9 : d * 2) : d;
  }
  return sum % 10 === 0;
}
