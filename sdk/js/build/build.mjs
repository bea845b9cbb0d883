// Builds a JavaScript plugin into a WebAssembly component (world
// `interceptor-plugin` of wit/, or `interceptor-plugin-http` for a plugin that
// declares outbound HTTP). Run by `interpose plugin build`, which installs the
// pinned toolchain first, passes its location and picks the world from the
// project's `capabilities.toml` (as for Python).
//
//   node build.mjs --toolchain DIR --wit DIR [--world NAME] PLUGIN_DIR OUT.wasm
//
// Steps: find the plugin's entry module; bundle it with the SDK and its own
// dependencies into one ES module (esbuild), leaving the WIT imports
// external; componentize it (componentize-js) with the `http` and
// `fetch-event` features off, so the engine imports no wasi:http of its own
// (the SDK's `http` module imports it in the world that has it). The bundle's
// hash, the world, the WIT and the toolchain version are remembered next to
// the output; an unchanged plugin is not componentized again.

import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";

import { transformBindings } from "./bindings.mjs";

const SDK_DIR = resolve(dirname(new URL(import.meta.url).pathname), "..");
const SDK_ENTRIES = {
  "interpose-plugin": join(SDK_DIR, "src/index.js"),
  "interpose-plugin/testing": join(SDK_DIR, "src/testing.js"),
  "interpose-plugin/component": join(SDK_DIR, "src/component.js"),
  "interpose-plugin/component-http": join(SDK_DIR, "src/component-http.js"),
  "interpose-plugin/serde-json": join(SDK_DIR, "src/serde-json.js"),
};
// The worlds a plugin is built against: the second adds `wasi:http`, whose glue
// (src/component-http.js) the bundle then imports.
const WORLD = "interceptor-plugin";
const HTTP_WORLD = "interceptor-plugin-http";
const ENTRY_CANDIDATES = ["src/plugin.js", "plugin.js", "src/index.js", "index.js"];

function fail(message) {
  console.error(`build-js-plugin: ${message}`);
  process.exit(1);
}

function parseArgs(argv) {
  const args = { positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--toolchain" || arg === "--wit" || arg === "--world") {
      args[arg.slice(2)] = argv[++i];
    } else if (arg === "--force") {
      args.force = true;
    } else {
      args.positional.push(arg);
    }
  }
  if (!args.toolchain || !args.wit || args.positional.length !== 2) {
    fail("usage: node build.mjs --toolchain DIR --wit DIR [--world NAME] [--force] PLUGIN_DIR OUT.wasm");
  }
  args.world ??= WORLD;
  if (args.world !== WORLD && args.world !== HTTP_WORLD) {
    fail(`unknown world ${args.world} (${WORLD} or ${HTTP_WORLD})`);
  }
  return args;
}

async function readJson(path) {
  return JSON.parse(await readFile(path, "utf8"));
}

/** The plugin's entry module: package.json `main`, else the first usual name that exists. */
async function findEntry(pluginDir) {
  const manifestPath = join(pluginDir, "package.json");
  if (existsSync(manifestPath)) {
    const manifest = await readJson(manifestPath);
    if (typeof manifest.main === "string") {
      const entry = resolve(pluginDir, manifest.main);
      if (!existsSync(entry)) {
        fail(`${relative(process.cwd(), manifestPath)}: "main" names ${manifest.main}, which does not exist`);
      }
      return entry;
    }
  }
  for (const candidate of ENTRY_CANDIDATES) {
    const entry = join(pluginDir, candidate);
    if (existsSync(entry)) {
      return entry;
    }
  }
  fail(`${pluginDir}: no entry module (set "main" in package.json, or add one of ${ENTRY_CANDIDATES.join(", ")})`);
}

/** Resolves `interpose-plugin` (and its subpaths) to this SDK, wherever the plugin lives. */
const sdkResolver = {
  name: "interpose-plugin-sdk",
  setup(build) {
    build.onResolve({ filter: /^interpose-plugin(\/.*)?$/ }, (args) => {
      const path = SDK_ENTRIES[args.path];
      if (path === undefined) {
        return { errors: [{ text: `unknown SDK module ${args.path}; use interpose-plugin, interpose-plugin/serde-json or interpose-plugin/testing` }] };
      }
      return { path };
    });
  },
};

async function bundle(esbuild, entry, workDir, world) {
  const main = join(workDir, "component-entry.js");
  await writeFile(
    main,
    [
      `import plugin from ${JSON.stringify(entry)};`,
      `import { interceptorFor } from "interpose-plugin/component";`,
      // After the glue above, whose stand-in for `http` it replaces.
      ...(world === HTTP_WORLD ? [`import "interpose-plugin/component-http";`] : []),
      `if (plugin === undefined || typeof plugin.intercept !== "function" || typeof plugin.load !== "function") {`,
      `  throw new Error(${JSON.stringify(`${entry} must \`export default\` the plugin made by createPlugin()`)});`,
      `}`,
      `export const interceptor = interceptorFor(plugin);`,
      ``,
    ].join("\n"),
  );
  const out = join(workDir, "bundle.js");
  const result = await esbuild.build({
    entryPoints: [main],
    outfile: out,
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    mainFields: ["module", "main"],
    conditions: ["import", "default"],
    external: ["interpose:*", "wasi:*"],
    plugins: [sdkResolver],
    logLevel: "silent",
    legalComments: "none",
  }).catch((error) => error);
  if (result.errors?.length) {
    const messages = await esbuild.formatMessages(result.errors, { kind: "error" });
    fail(`bundling ${entry} failed:\n${messages.join("")}`);
  }
  return out;
}

/**
 * componentize-js, with a hook to rewrite the bindings it generates before it
 * snapshots them (see bindings.mjs): a copy of its main module, next to the
 * original so its relative imports still resolve, with one line changed.
 */
async function loadComponentize(toolchain) {
  const dir = join(toolchain, "node_modules/@bytecodealliance/componentize-js/src");
  const original = await readFile(join(dir, "componentize.js"), "utf8");
  const anchor = "await writeFile(initializerPath, jsBindings);";
  if (!original.includes(anchor)) {
    fail("componentize-js changed: cannot hook its bindings (update sdk/js/build/build.mjs)");
  }
  const patched = original.replace(
    anchor,
    "await writeFile(initializerPath, opts.transformBindings ? opts.transformBindings(jsBindings) : jsBindings);",
  );
  const path = join(dir, "componentize.interpose.js");
  if (!existsSync(path) || (await readFile(path, "utf8")) !== patched) {
    await writeFile(path, patched);
  }
  return import(pathToFileURL(path));
}

async function witHash(witDir) {
  const hash = createHash("sha256");
  for (const name of (await readdir(witDir)).sort()) {
    if (name.endsWith(".wit")) {
      hash.update(name).update(await readFile(join(witDir, name)));
    }
  }
  return hash.digest("hex");
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const pluginDir = resolve(args.positional[0]);
  const out = resolve(args.positional[1]);
  const toolchain = resolve(args.toolchain);
  const witDir = resolve(args.wit);
  if (!existsSync(pluginDir) || !(await stat(pluginDir)).isDirectory()) {
    fail(`${args.positional[0]} is not a directory`);
  }

  const esbuild = await import(pathToFileURL(join(toolchain, "node_modules/esbuild/lib/main.js")));
  const { componentize } = await loadComponentize(toolchain);
  const componentizeVersion = (await readJson(join(toolchain, "node_modules/@bytecodealliance/componentize-js/package.json")))
    .version;

  const entry = await findEntry(pluginDir);
  const workDir = join(toolchain, "..", "..", "js-build", createHash("sha256").update(pluginDir).digest("hex").slice(0, 16));
  await mkdir(workDir, { recursive: true });
  const bundled = await bundle(esbuild.default ?? esbuild, entry, workDir, args.world);

  const source = await readFile(bundled);
  const key = createHash("sha256")
    .update(source)
    .update(await witHash(witDir))
    .update(`world ${args.world}`)
    .update(`componentize-js ${componentizeVersion}`)
    .update(await readFile(join(SDK_DIR, "build/build.mjs")))
    .update(await readFile(join(SDK_DIR, "build/bindings.mjs")))
    .digest("hex");
  const stampPath = `${out}.inputs-sha256`;
  if (!args.force && existsSync(out) && existsSync(stampPath) && (await readFile(stampPath, "utf8")).trim() === key) {
    console.error(`build-js-plugin: ${relative(process.cwd(), out)} is up to date`);
    return;
  }

  const started = Date.now();
  console.error(`build-js-plugin: componentizing ${relative(process.cwd(), entry)} (componentize-js ${componentizeVersion}, takes ~30 s)`);
  let component;
  try {
    ({ component } = await componentize({
      sourcePath: bundled,
      witPath: witDir,
      worldName: args.world,
      // `http` and `fetch-event` would make the engine import wasi:http (for its
      // Promise-returning `fetch`), in every plugin.
      disableFeatures: ["http", "fetch-event"],
      transformBindings,
    }));
  } catch (error) {
    fail(`componentizing ${entry} failed:\n${error?.message ?? error}`);
  }
  await mkdir(dirname(out), { recursive: true });
  const partial = `${out}.partial`;
  await writeFile(partial, component);
  await rename(partial, out);
  await writeFile(stampPath, `${key}\n`);
  await rm(workDir, { recursive: true, force: true });
  console.error(
    `build-js-plugin: wrote ${relative(process.cwd(), out)} (${(component.length / 1048576).toFixed(1)} MiB) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
}

await main();
