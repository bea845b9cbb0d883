// Types for interpose-plugin/serde-json: JSON read and written as the Rust
// plugins (serde_json) do, for byte-for-byte parity with a Rust twin.

/** A JSON number, kept as its text. */
export declare class Num {
  constructor(raw: string);
  raw: string;
}
/** A parsed object: entries in document order. */
export declare class Obj {
  start: number;
  end: number;
  entries: Array<{ key: string; keyEnd: number; value: Value; valueStart: number; valueEnd: number }>;
}
/** A parsed array; `spans[i]` is where element `i` starts and ends. */
export declare class Arr extends Array<Value> {
  spans: Array<[number, number]>;
}
export type Value = null | boolean | string | Num | Arr | Obj;

/** A serde_json error: `message` ends with ` at line L column C`. */
export declare class SerdeError extends Error {
  detail: string;
  line: number;
  column: number;
}

/** Parses JSON text; returns the value and where it starts and ends. */
export function parse(text: string): { value: Value; start: number; end: number };
/** Writes a value (parsed, or plain JS values, Maps and arrays around parsed ones) as serde_json does. */
export function write(value: unknown): string;
/** Writes `[key, value]` pairs in the order given (a struct's fields). */
export function writeEntries(entries: Array<[string, unknown]>): string;
/** An f64 as serde_json writes it. */
export function ryu(x: number): string;
/** Code point order (Rust's `String` order). */
export function compareKeys(a: string, b: string): number;
/** An object's entries as a serde_json `Map`: later duplicates win, sorted by key. */
export function mapEntries(obj: Obj): Array<[string, Value]>;
/** How serde names a value in "invalid type" errors. */
export function unexpected(value: Value): string;
/** How serde_json reads a number. */
export function numberKind(raw: string): { kind: "int"; value: bigint } | { kind: "float"; value: number };
/** Where serde_json reports an "invalid type" error on a value. */
export function invalidTypeIndex(value: Value, valueStart: number, valueEnd: number): number;
/** Where serde_json reports an error raised right after a key. */
export function afterKey(text: string, entry: { keyEnd: number }): number;
/** Reads a struct with a `#[serde(flatten)]` map of the other fields. */
export function flattenedStruct(
  text: string,
  value: Value,
  start: number,
  end: number,
  structName: string,
  fields: Record<string, (value: Value, entry: { valueStart: number; valueEnd: number }) => unknown>,
  required: string[],
): { fields: Map<string, unknown>; extra: Map<string, Value> };
export function stringField(text: string): (value: Value, entry: { valueStart: number; valueEnd: number }) => string;
export function optionField<T>(read: (value: Value, entry: { valueStart: number; valueEnd: number }) => T): (value: Value, entry: { valueStart: number; valueEnd: number }) => T | undefined;
export function mapField(text: string): (value: Value, entry: { valueStart: number; valueEnd: number }) => Map<string, Value>;
