// The conformance runner for the Node.js host: replays every suite in tests/*.json against the
// component, with the same semantics as the reference runner (host-harness/src/conformance.rs,
// whose module documentation describes the format), and prints one line per case and a last
// line `N passed, N failed`. Exits non-zero if any case fails.
//
// Usage: node conformance.mjs [--suites DIR] [--transpiled DIR]

import { readFileSync, readdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { PluginHost } from './component.mjs';
import { MemorySettings, tokenDigest } from './settings.mjs';
import { MemoryStore } from './user-store.mjs';

/** The token the settings accept at the start of each suite. */
const SUITE_TOKEN = 'conformance-token-7f3a9c';
/** The SCIM base URL the settings advertise. */
const SUITE_BASE_URL = 'https://scim.example.test/scim/v2';
/** The tokens a suite rotates through, in order. */
const ROTATED_TOKENS = ['conformance-rotated-1', 'conformance-rotated-2', 'conformance-rotated-3'];

/**
 * Cases this host cannot run, as `file: case name` → why. The reference host bounds each request
 * in memory and time; this one cannot (see component.mjs), so a case that needs either belongs
 * here. No case does today.
 */
const UNSUPPORTED = new Map();

const REQUEST_FIELDS = ['method', 'path', 'headers', 'body', 'raw_body', 'body_base64', 'auth'];

/** Runs every suite in a folder, printing one line per case; returns the number of failures. */
function runAll(host, dir) {
  const suites = loadSuites(dir);
  if (suites.length === 0) throw new Error(`no suites (*.json) in ${dir}`);

  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for (const { file, suite } of suites) {
    const store = new MemoryStore();
    const settings = new MemorySettings(SUITE_TOKEN, SUITE_BASE_URL);
    for (const testCase of suite.cases) {
      const why = UNSUPPORTED.get(`${file}: ${testCase.name}`);
      if (why) {
        skipped += 1;
        console.log(`skip   ${file}: ${testCase.name} (${why})`);
        continue;
      }
      try {
        runCase(host, store, settings, testCase);
        passed += 1;
        console.log(`ok     ${file}: ${testCase.name}`);
      } catch (error) {
        failed += 1;
        console.log(`FAILED ${file}: ${testCase.name} (${testCase.source})\n       ${error.message}`);
      }
    }
  }

  const micros = (ms) => (host.requests ? (ms * 1000) / host.requests : 0).toFixed(1);
  console.log(
    `cost: ${host.requests} requests, mean ${micros(host.instantiateMs + host.callMs)} µs ` +
      `per request with a fresh instance each (${micros(host.instantiateMs)} µs instantiation ` +
      `+ ${micros(host.callMs)} µs handle-scim-request)`,
  );
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  return failed;
}

/** Reads every `*.json` suite in a folder, in name order, refusing fields the format lacks. */
function loadSuites(dir) {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.json'))
    .sort()
    .map((file) => {
      const suite = JSON.parse(readFileSync(join(dir, file), 'utf8'));
      allowOnly(suite, ['suite', 'description', 'cases'], file);
      for (const testCase of suite.cases) {
        allowOnly(testCase, ['name', 'source', 'steps'], `${file}: ${testCase.name}`);
        for (const step of testCase.steps) {
          allowOnly(step, ['request', 'expect', 'capture', 'host'], `${file}: ${testCase.name}`);
          allowOnly(step.request ?? {}, REQUEST_FIELDS, `${file}: ${testCase.name}`);
          allowOnly(step.expect ?? {}, ['status', 'headers', 'body'], `${file}: ${testCase.name}`);
        }
      }
      return { file: basename(file), suite };
    });
}

function allowOnly(object, fields, where) {
  const unknown = Object.keys(object).filter((key) => !fields.includes(key));
  if (unknown.length > 0) throw new Error(`${where}: unknown field ${unknown[0]}`);
}

function runCase(host, store, settings, testCase) {
  const context = new Map([
    ['token', currentToken(settings)],
    ['base', SUITE_BASE_URL],
  ]);

  testCase.steps.forEach((step, index) => {
    const stepNo = index + 1;
    const fail = (message) => {
      throw new Error(`step ${stepNo}: ${message}`);
    };
    if (step.host != null) {
      try {
        applyHostChange(store, settings, context, step.host);
      } catch (error) {
        fail(`host change: ${error.message}`);
      }
      return;
    }
    if (step.request == null) fail('has neither a request nor a host change');

    const spec = step.request;
    let request;
    try {
      request = buildRequest(spec, context);
    } catch (error) {
      fail(`building the request: ${error.message}`);
    }
    const response = host.handle(request, store, settings);
    const body = parseJson(response.body);

    if (step.expect != null) {
      try {
        check(step.expect, response, body, context);
      } catch (error) {
        const text = truncate(new TextDecoder().decode(response.body), 400);
        fail(`${spec.method} ${spec.path} answered ${response.status} ${text}: ${error.message}`);
      }
    }
    for (const [name, pointer] of Object.entries(step.capture ?? {})) {
      if (typeof pointer !== 'string') fail(`capture ${name} must be a JSON pointer string`);
      const value = pointer.startsWith('header:')
        ? header(response, pointer.slice('header:'.length))
        : jsonPointer(body, pointer);
      if (value === undefined) fail(`nothing to capture at ${pointer} for ${name}`);
      context.set(name, value);
    }
  });
}

/** The token of the settings: the suite token, or the last one rotated in. */
function currentToken(settings) {
  const digest = settings.tokens.at(-1)?.digest ?? new Uint8Array();
  const same = (token) => Buffer.from(tokenDigest(token)).equals(Buffer.from(digest));
  return [...ROTATED_TOKENS, SUITE_TOKEN].find(same) ?? SUITE_TOKEN;
}

function applyHostChange(store, settings, context, change) {
  for (const key of Object.keys(change).sort()) {
    const value = change[key];
    switch (key) {
      case 'disable':
        settings.enabled = false;
        break;
      case 'enable':
        settings.enabled = true;
        break;
      case 'rotate_token': {
        const current = currentToken(settings);
        const next = ROTATED_TOKENS.find(
          (token) => token !== current && !context.has(`used:${token}`),
        );
        if (next === undefined) throw new Error('no more tokens to rotate to');
        settings.tokens = [{ digest: tokenDigest(next), expiresAt: undefined }];
        context.set(`used:${next}`, true);
        context.set('token', next);
        break;
      }
      case 'expire_token':
        for (const token of settings.tokens) token.expiresAt = 1n;
        break;
      case 'delete_action':
        if (value !== 'suspend' && value !== 'delete') {
          throw new Error('delete_action is delete or suspend');
        }
        store.deleteSuspends = value === 'suspend';
        break;
      case 'protect_admins':
        if (typeof value !== 'boolean') throw new Error('protect_admins is a boolean');
        store.protectAdmins = value;
        break;
      case 'make_admin':
      case 'revoke_admin': {
        if (typeof value !== 'string') throw new Error(`${key} names an id`);
        const id = substituteString(value, context);
        if (!store.setAdmin(id, key === 'make_admin')) throw new Error(`${key} ${id}: NotFound`);
        break;
      }
      default:
        throw new Error(`unknown host change ${key}`);
    }
  }
}

/** The `http-request` record for a step, with the default headers the format promises. */
function buildRequest(spec, context) {
  const target = substituteString(spec.path, context);
  const split = target.indexOf('?');
  const path = split < 0 ? target : target.slice(0, split);
  const query = split < 0 ? '' : target.slice(split + 1);

  const headers = Object.keys(spec.headers ?? {})
    .sort(byUtf8)
    .map((name) => {
      const value = spec.headers[name];
      return {
        name,
        value: typeof value === 'string' ? substituteString(value, context) : canonical(value),
      };
    });
  const has = (name) => headers.some((h) => h.name.toLowerCase() === name.toLowerCase());
  if ((spec.auth ?? true) && !has('Authorization')) {
    headers.push({ name: 'Authorization', value: `Bearer ${substituteString('${token}', context)}` });
  }

  const given = [spec.body, spec.raw_body, spec.body_base64].filter((b) => b != null);
  if (given.length > 1) throw new Error('a request has at most one of body, raw_body and body_base64');
  let body = new Uint8Array();
  if (spec.body != null) body = utf8(canonical(substitute(spec.body, context)));
  if (spec.raw_body != null) body = utf8(substituteString(spec.raw_body, context));
  if (spec.body_base64 != null) body = new Uint8Array(Buffer.from(spec.body_base64, 'base64'));
  if (body.length > 0 && !has('Content-Type')) {
    headers.push({ name: 'Content-Type', value: 'application/scim+json' });
  }

  return { method: spec.method, path, query, headers, body };
}

/** Replaces `${name}` in every string of a JSON value. */
function substitute(value, context) {
  if (typeof value === 'string') {
    // A string that is exactly one placeholder takes the captured value's own type.
    if (value.startsWith('${') && value.endsWith('}')) {
      const name = value.slice(2, -1);
      if (!name.includes('$') && context.has(name)) return context.get(name);
    }
    return substituteString(value, context);
  }
  if (Array.isArray(value)) return value.map((item) => substitute(item, context));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [
        substituteString(key, context),
        substitute(item, context),
      ]),
    );
  }
  return value;
}

function substituteString(text, context) {
  return text.replace(/\$\{([^}]*)\}/g, (placeholder, name) => {
    if (!context.has(name)) return placeholder;
    const value = context.get(name);
    return typeof value === 'string' ? value : canonical(value);
  });
}

/**
 * JSON text as the reference runner writes it (serde_json without `preserve_order`): compact,
 * object keys in UTF-8 byte order. Key order can matter to a SCIM service that reads attribute
 * names case-insensitively, so every host sends the same bytes.
 */
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort(byUtf8);
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonical(value[key])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function byUtf8(a, b) {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function check(expect, response, body, context) {
  if (response.status !== expect.status) throw new Error(`expected status ${expect.status}`);

  for (const [name, expected] of Object.entries(expect.headers ?? {})) {
    const actual = header(response, name);
    if (expected === '$absent') {
      if (actual !== undefined) throw new Error(`header ${name} should be absent, is ${actual}`);
    } else if (actual === undefined) {
      throw new Error(`header ${name} is missing`);
    } else if (typeof expected !== 'string') {
      throw new Error('expected header values are strings');
    } else if (expected !== '$any') {
      const want = substituteString(expected, context);
      if (want !== actual) throw new Error(`header ${name} is ${actual}, expected ${want}`);
    }
  }

  if (expect.body != null) {
    if (body === undefined) throw new Error('expected a JSON body');
    subset(substitute(expect.body, context), body, '');
  }
}

/** Throws unless `actual` contains `expected` (see the format's documentation). */
function subset(expected, actual, at) {
  if (expected === '$any') return;
  if (typeof expected === 'string' && expected.startsWith('$len:') && Array.isArray(actual)) {
    const want = Number(expected.slice(5));
    if (!Number.isInteger(want)) throw new Error(`${at}: bad ${expected}`);
    if (actual.length !== want) throw new Error(`${at}: ${actual.length} elements, expected ${want}`);
    return;
  }
  if (isObject(expected) && isObject(actual)) {
    for (const [key, value] of Object.entries(expected)) {
      const here = `${at}/${key}`;
      const present = Object.hasOwn(actual, key);
      if (value === '$absent') {
        if (present) throw new Error(`${here} should be absent, is ${canonical(actual[key])}`);
      } else if (!present) {
        throw new Error(`${here} is missing`);
      } else {
        subset(value, actual[key], here);
      }
    }
    return;
  }
  if (Array.isArray(expected) && Array.isArray(actual)) {
    expected.forEach((item, index) => {
      if (!actual.some((candidate) => matches(item, candidate, at))) {
        throw new Error(`${at}[${index}]: no element matches ${canonical(item)}`);
      }
    });
    return;
  }
  if (canonical(expected) !== canonical(actual)) {
    throw new Error(`${at} is ${canonical(actual)}, expected ${canonical(expected)}`);
  }
}

function matches(expected, actual, at) {
  try {
    subset(expected, actual, at);
    return true;
  } catch {
    return false;
  }
}

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The first header of that name, compared case-insensitively. */
function header(response, name) {
  return response.headers.find((h) => h.name.toLowerCase() === name.toLowerCase())?.value;
}

/** The value at a JSON pointer (RFC 6901), or undefined. */
function jsonPointer(document, pointer) {
  if (document === undefined) return undefined;
  if (pointer === '') return document;
  if (!pointer.startsWith('/')) return undefined;
  let value = document;
  for (const raw of pointer.slice(1).split('/')) {
    const token = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (Array.isArray(value) && /^(0|[1-9][0-9]*)$/.test(token)) value = value[Number(token)];
    else if (isObject(value) && Object.hasOwn(value, token)) value = value[token];
    else return undefined;
    if (value === undefined) return undefined;
  }
  return value;
}

/** A response body as JSON, or undefined when it is not JSON (or not UTF-8). */
function parseJson(bytes) {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return undefined;
  }
}

function utf8(text) {
  return new TextEncoder().encode(text);
}

function truncate(text, max) {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

const here = dirname(fileURLToPath(import.meta.url));
const { values: options } = parseArgs({
  options: {
    suites: { type: 'string', default: resolve(here, '../..') },
    transpiled: { type: 'string', default: join(here, 'transpiled') },
  },
});

const host = await PluginHost.load(resolve(options.transpiled));
const failed = runAll(host, resolve(options.suites));
process.exitCode = failed > 0 ? 1 : 0;
