// The plugin host for Node.js: loads the SCIM component as transpiled by jco and answers each
// request with a fresh instance, so that nothing one request leaves in linear memory is seen by
// the next (as the reference host does).
//
// What this host cannot do that the reference host does: cap an instance's linear memory and
// stop a request at a deadline. Core wasm runs synchronously on Node's main thread, and jco's
// instances grow memory without a limiter.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import * as wasi from '@bytecodealliance/preview2-shim';

const ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';

// The component gets no environment and no arguments: it needs none.
wasi.cli._setEnv({});
wasi.cli._setArgs([]);

export class PluginHost {
  #instantiate;
  #compile;
  /** Core modules compiled once, by file name in the transpiled folder. */
  #modules = new Map();
  /** Requests answered and the time spent instantiating and calling, for the cost line. */
  requests = 0;
  instantiateMs = 0;
  callMs = 0;

  /** `transpiled` is the folder `jco transpile --instantiation sync` wrote. */
  static async load(transpiled) {
    const { instantiate } = await import(pathToFileURL(join(transpiled, 'scim_plugin.js')).href);
    const host = new PluginHost();
    host.#instantiate = instantiate;
    host.#compile = (name) => new WebAssembly.Module(readFileSync(join(transpiled, name)));
    return host;
  }

  /**
   * Answers one request (an `http-request` record with a Uint8Array body) with a fresh instance
   * bound to this store and these settings. A trap answers this request alone with a 500.
   */
  handle(request, store, settings) {
    this.requests += 1;
    let started = performance.now();
    try {
      const instance = this.#instantiate((name) => this.#module(name), imports(store, settings));
      const instantiated = performance.now();
      this.instantiateMs += instantiated - started;
      started = instantiated;
      return instance.handleScimRequest(request);
    } catch (trap) {
      process.stderr.write(`the SCIM component failed a request: ${trap}\n`);
      return scimError(500, `the request could not be completed (${trapKind(trap)})`);
    } finally {
      this.callMs += performance.now() - started;
    }
  }

  #module(name) {
    if (!this.#modules.has(name)) this.#modules.set(name, this.#compile(name));
    return this.#modules.get(name);
  }
}

/**
 * The import object: the host's users and settings, and the WASI shim for what std needs. The
 * generated code looks interfaces up without their version (`scim:provider/settings`), although
 * the generated `.d.ts` names them with it.
 */
function imports(store, settings) {
  const object = {
    'scim:provider/user-store': store.imports(),
    'scim:provider/settings': settings.imports(),
  };
  for (const [family, interfaces] of Object.entries(WASI_IMPORTS)) {
    for (const name of interfaces) {
      object[`wasi:${family}/${name}`] = wasi[family][camelCase(name)];
    }
  }
  return object;
}

/** The WASI 0.2 interfaces the component imports (see `scim_plugin.d.ts` after transpiling). */
const WASI_IMPORTS = {
  cli: [
    'environment', 'exit', 'stderr', 'stdin', 'stdout', 'terminal-input', 'terminal-output',
    'terminal-stderr', 'terminal-stdin', 'terminal-stdout',
  ],
  io: ['error', 'poll', 'streams'],
};

function camelCase(name) {
  return name.replace(/-([a-z])/g, (_, letter) => letter.toUpperCase());
}

/** A short name for why the component stopped, as the reference host words it. */
function trapKind(trap) {
  if (trap instanceof RangeError) return 'stack overflow';
  if (trap instanceof WebAssembly.RuntimeError) {
    if (/unreachable/.test(trap.message)) return 'guest panic or out of memory';
    if (/out of bounds/.test(trap.message)) return 'memory out of bounds';
    return 'trap';
  }
  return 'host error';
}

/** A SCIM error response (RFC 7644 §3.12). */
function scimError(status, detail) {
  const body = { schemas: [ERROR_SCHEMA], status: String(status), detail };
  return {
    status,
    headers: [{ name: 'Content-Type', value: 'application/scim+json' }],
    body: new TextEncoder().encode(JSON.stringify(body)),
  };
}
