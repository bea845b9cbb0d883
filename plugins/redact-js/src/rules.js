// Redaction rules: the built-in ones, the user's, and the raw-text pre-check.
// A port of plugins/redact/src/rules.rs: same config, same rules, same order,
// same replacements and the same error texts.

import { ConfigError, expectKeys, typeName } from "interpose-plugin";

import { PatternError, translate } from "./rust-regex.js";
import { WHITE_SPACE, WORD as WORD_ITEMS } from "./unicode.js";

// Rust's `\b` is Unicode-aware; where a pattern's first (or last) character
// is always a word character, `\b` there is the same as "no word character
// before" (or after), which is cheaper to check. The engine in the component
// has no `\p{...}`: Unicode classes are spelled out (./unicode.js).
const WORD = `[${WORD_ITEMS}]`;
const NO_WORD_BEFORE = `(?<!${WORD})`;
const NO_WORD_AFTER = `(?!${WORD})`;

/**
 * The built-in rules, in the order they apply. `pattern` is the JavaScript form
 * of the Rust pattern (comment: the Rust source); `rawFilter` is a necessary
 * condition for `pattern` to match a string, checked on raw JSON text (it
 * matches no character JSON escapes and uses no assertion that an escape could
 * fool); each is the Rust plugin's raw filter, written to be fast in an
 * interpreter (a literal first where possible).
 */
const BUILTINS = [
  {
    name: "private-key",
    // -----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?:[\s\S]*?-----END[A-Z0-9 ]*PRIVATE KEY-----|[A-Za-z0-9+/=\s]*)
    pattern:
      `-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?:[\\s\\S]*?-----END[A-Z0-9 ]*PRIVATE KEY-----|[A-Za-z0-9+/=${WHITE_SPACE}]*)`,
    rawFilter: /-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----/,
  },
  {
    name: "aws-access-key",
    // \b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b
    pattern: `${NO_WORD_BEFORE}(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}${NO_WORD_AFTER}`,
    rawFilter: /(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}/,
  },
  {
    name: "bearer-token",
    // (?i)\bbearer\s+[A-Za-z0-9\-._~+/]{20,}=*   (Unicode simple case folding
    // adds nothing to "bearer", and only the Kelvin sign and the long s to
    // the token class)
    pattern: `${NO_WORD_BEFORE}[Bb][Ee][Aa][Rr][Ee][Rr][${WHITE_SPACE}]+[A-Za-z0-9\\-._~+/\\u{212A}\\u{17F}]{20,}=*`,
    rawFilter: /bearer/i,
  },
  {
    name: "api-key",
    // \b(?:sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})
    pattern: `${NO_WORD_BEFORE}(?:sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})`,
    rawFilter: /sk-[A-Za-z0-9_-]{20}|gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{40}/,
  },
  {
    name: "email",
    // [A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}
    pattern: "[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}",
    // [A-Za-z0-9._%+-]@[A-Za-z0-9-], looking for the `@` first.
    rawFilter: /(?<=[A-Za-z0-9._%+-])@[A-Za-z0-9-]/,
  },
  {
    name: "card-number",
    // \b[2-6][0-9](?:[ -]?[0-9]){11,17}\b
    pattern: `${NO_WORD_BEFORE}[2-6][0-9](?:[ -]?[0-9]){11,17}${NO_WORD_AFTER}`,
    rawFilter: /[2-6][0-9](?:[ -]?[0-9]){11,17}/,
    validator: cardNumberValid,
  },
];

/** The names of the built-in rules. */
export function builtinNames() {
  return BUILTINS.map((rule) => rule.name);
}

/** Checks the plugin's configuration and returns `{ rules, defaults }` (serde's checks and messages). */
export function parseConfig(config) {
  expectKeys(config, ["rules", "defaults"]);
  let rules = [];
  if ("rules" in config) {
    if (!Array.isArray(config.rules)) {
      throw new ConfigError(`invalid type: ${typeName(config.rules)}, expected a sequence`);
    }
    rules = config.rules.map(parseRule);
  }
  let defaults = true;
  if ("defaults" in config) {
    const value = config.defaults;
    const isNameList = Array.isArray(value) && value.every((name) => typeof name === "string");
    if (typeof value !== "boolean" && !isNameList) {
      const shown = Array.isArray(value) ? typeName(value.find((name) => typeof name !== "string")) : typeName(value);
      const expected = Array.isArray(value) ? "a string" : "true, false, or a list of built-in rule names";
      throw new ConfigError(`invalid type: ${shown}, expected ${expected}`);
    }
    defaults = value;
  }
  return { rules, defaults };
}

function parseRule(rule) {
  if (rule === null || typeof rule !== "object" || Array.isArray(rule)) {
    throw new ConfigError(`invalid type: ${typeName(rule)}, expected struct RuleConfig`);
  }
  expectKeys(rule, ["name", "pattern", "replacement"]);
  for (const field of ["name", "pattern"]) {
    if (!(field in rule)) {
      throw new ConfigError(`missing field \`${field}\``);
    }
    if (typeof rule[field] !== "string") {
      throw new ConfigError(`invalid type: ${typeName(rule[field])}, expected a string`);
    }
  }
  const replacement = rule.replacement ?? undefined;
  if (replacement !== undefined && typeof replacement !== "string") {
    throw new ConfigError(`invalid type: ${typeName(replacement)}, expected a string`);
  }
  return { name: rule.name, pattern: rule.pattern, replacement };
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
        rawFilters.push(new RegExp(translated.source, translated.flags));
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
      rawFilters.push(builtin.rawFilter);
      this.rules.push({
        name: builtin.name,
        regex: new RegExp(builtin.pattern, "gu"),
        literal: `[REDACTED:${builtin.name}]`,
        validator: builtin.validator,
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
      if (filter.test(raw)) {
        return true;
      }
    }
    return false;
  }

  /**
   * Redacts one decoded string; `undefined` when nothing matched. Adds the
   * indexes of the rules that matched to `hits`.
   */
  redact(text, hits) {
    let current;
    for (let index = 0; index < this.rules.length; index++) {
      const replaced = apply(this.rules[index], current ?? text);
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

function apply(rule, haystack) {
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
