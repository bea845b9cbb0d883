// Small checks for a plugin's configuration object, with error texts in the
// same words as the Rust SDK's (serde's), so users see one style whatever
// language a plugin is written in.

/** An error refusing a configuration: its message starts with `invalid config: `. */
export class ConfigError extends Error {
  constructor(detail) {
    super(`invalid config: ${detail}`);
    this.name = "ConfigError";
  }
}

/** Throws unless `value` is a plain object (a table in `interpose.toml`). */
export function expectObject(value, what = "the plugin's config") {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ConfigError(`invalid type: ${typeName(value)}, expected ${what} as a table`);
  }
  return value;
}

/**
 * Throws a ConfigError naming the first key of `object` not in `allowed`:
 * ``invalid config: unknown field `rule`, expected `rules` or `defaults` ``.
 */
export function expectKeys(object, allowed) {
  expectObject(object);
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) {
      throw new ConfigError(`unknown field \`${key}\`, ${expected(allowed)}`);
    }
  }
  return object;
}

function expected(allowed) {
  const names = allowed.map((name) => `\`${name}\``);
  switch (names.length) {
    case 0:
      return "there are no fields";
    case 1:
      return `expected ${names[0]}`;
    case 2:
      return `expected ${names[0]} or ${names[1]}`;
    default:
      return `expected one of ${names.join(", ")}`;
  }
}

/** Describes a JSON value's type the way serde does in "invalid type" errors. */
export function typeName(value) {
  if (value === null || value === undefined) {
    return "null";
  }
  if (Array.isArray(value)) {
    return "sequence";
  }
  switch (typeof value) {
    case "string":
      return `string ${JSON.stringify(value)}`;
    case "boolean":
      return `boolean \`${value}\``;
    case "number":
      if (Number.isInteger(value)) {
        return `integer \`${value}\``;
      }
      return `floating point \`${value}\``;
    case "object":
      return "map";
    default:
      return typeof value;
  }
}
