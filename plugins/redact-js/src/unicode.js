// Unicode classes spelled out as ranges, for regular expressions: the
// JavaScript engine inside the component has no ICU, so it does not know
// `\p{...}`. Names are matched loosely, as Rust's `regex` does (case, spaces,
// `_` and `-` ignored; `Script=` / `sc=` / `gc=` prefixes allowed).

import { RANGES } from "./unicode-tables.js";

const ALIASES = {
  letter: "L",
  l: "L",
  uppercaseletter: "Lu",
  lu: "Lu",
  lowercaseletter: "Ll",
  ll: "Ll",
  titlecaseletter: "Lt",
  lt: "Lt",
  modifierletter: "Lm",
  lm: "Lm",
  otherletter: "Lo",
  lo: "Lo",
  mark: "M",
  combiningmark: "M",
  m: "M",
  number: "N",
  n: "N",
  decimalnumber: "Nd",
  digit: "Nd",
  nd: "Nd",
  punctuation: "P",
  punct: "P",
  p: "P",
  symbol: "S",
  s: "S",
  currencysymbol: "Sc",
  sc: "Sc",
  separator: "Z",
  z: "Z",
  spaceseparator: "Zs",
  zs: "Zs",
  control: "Cc",
  cntrl: "Cc",
  cc: "Cc",
  whitespace: "White_Space",
  wspace: "White_Space",
  space: "White_Space",
  alphabetic: "Alphabetic",
  alpha: "Alphabetic",
  uppercase: "Uppercase",
  upper: "Uppercase",
  lowercase: "Lowercase",
  lower: "Lowercase",
  emoji: "Emoji",
  latin: "Latin",
  latn: "Latin",
  greek: "Greek",
  grek: "Greek",
  cyrillic: "Cyrillic",
  cyrl: "Cyrillic",
  arabic: "Arabic",
  arab: "Arabic",
  hebrew: "Hebrew",
  hebr: "Hebrew",
  han: "Han",
  hani: "Han",
  hiragana: "Hiragana",
  hira: "Hiragana",
  katakana: "Katakana",
  kana: "Katakana",
  hangul: "Hangul",
  hang: "Hangul",
  devanagari: "Devanagari",
  deva: "Devanagari",
  thai: "Thai",
};

const cache = new Map();

function hex(cp) {
  return `\\u{${cp.toString(16)}}`;
}

/** The inside of a character class (`...` in `[...]`) for a table entry. */
function classItems(table) {
  let items = cache.get(table);
  if (items === undefined) {
    items = RANGES[table]
      .split(" ")
      .map((range) => {
        const [start, end] = range.split("-").map((n) => parseInt(n, 36));
        return end === undefined ? hex(start) : `${hex(start)}-${hex(end)}`;
      })
      .join("");
    cache.set(table, items);
  }
  return items;
}

/** Rust's Unicode `\w`, as class items. */
export const WORD = classItems("word");
/** Rust's Unicode `\s`. */
export const WHITE_SPACE = classItems("White_Space");
/** Rust's Unicode `\d`. */
export const DECIMAL = classItems("Nd");

/** The class items for a `\p{name}`, or `undefined` when the name is not supported. */
export function property(name) {
  let key = name.toLowerCase().replace(/[\s_-]/g, "");
  key = key.replace(/^(?:script|sc|scriptextensions|scx|generalcategory|gc)[=:]/, "");
  const table = ALIASES[key];
  return table === undefined ? undefined : classItems(table);
}
