// The `scim:provider/user-store` import in memory: the same guarantees as the reference host's
// in-memory store (host-harness/src/store/memory.rs), written for jco's calling convention.
//
// Every function answers a tagged result (`{tag: 'ok', val}` or `{tag: 'err', val}`), so that
// `result<option<user>, store-error>` is never ambiguous. u64 values cross as BigInt.

import { randomUUID } from 'node:crypto';

const ok = (val) => ({ tag: 'ok', val });
const err = (tag, val) => ({ tag: 'err', val: val === undefined ? { tag } : { tag, val } });

/** Users in creation order, with the unique indexes a real store keeps, and the admin policy. */
export class MemoryStore {
  /** Creation sequence → user: the stable order of pages and scans. */
  #users = new Map();
  #byId = new Map();
  /** Case-folded userName → sequence. */
  #byUserName = new Map();
  /** Case-folded email → sequence. */
  #byEmail = new Map();
  /** The sequences of the administrators. */
  #admins = new Set();
  #nextSequence = 0;

  /** DELETE suspends instead of removing. */
  deleteSuspends = false;
  /** Administrators may not be suspended or deleted through SCIM. */
  protectAdmins = true;

  /** Makes a user an administrator, or an ordinary user again; false if no user has the id. */
  setAdmin(id, admin) {
    const sequence = this.#byId.get(id);
    if (sequence === undefined) return false;
    if (admin) this.#admins.add(sequence);
    else this.#admins.delete(sequence);
    return true;
  }

  /** The import object jco expects for `scim:provider/user-store`. */
  imports() {
    return {
      get: (id) => ok(this.#user(this.#byId.get(id))),
      findByUserName: (userName) => ok(this.#user(this.#byUserName.get(fold(userName)))),
      findByExternalId: (externalId) =>
        ok([...this.#users.values()].filter((user) => user.externalId === externalId)),
      findByEmail: (email) => ok(this.#user(this.#byEmail.get(fold(email)))),
      page: (offset, limit) => this.#page(offset, limit),
      scan: (cursor, limit) => this.#scan(cursor, limit),
      create: (fields) => this.#create(fields),
      update: (id, expectedVersion, fields) => this.#update(id, expectedVersion, fields),
      delete: (id) => this.#delete(id),
    };
  }

  #user(sequence) {
    return sequence === undefined ? undefined : this.#users.get(sequence);
  }

  #page(offset, limit) {
    const users = [...this.#users.values()].slice(Number(offset), Number(offset) + limit);
    return ok({ users, total: BigInt(this.#users.size) });
  }

  #scan(cursor, limit) {
    let after = -1;
    if (cursor !== undefined && cursor !== null) {
      if (!/^[0-9]+$/.test(cursor)) return err('unavailable', "the scan cursor is not this store's");
      after = Number(cursor);
    }
    const slice = [...this.#users.entries()].filter(([sequence]) => sequence > after).slice(0, limit);
    const next = slice.length === limit && limit > 0 ? String(slice[slice.length - 1][0]) : undefined;
    return ok({ users: slice.map(([, user]) => user), next });
  }

  /** Which unique attribute, if any, another user already holds. */
  #conflict(fields, own) {
    const taken = (index, key) => {
      const holder = index.get(fold(key));
      return holder !== undefined && holder !== own;
    };
    if (taken(this.#byUserName, fields.userName)) return err('conflict', 'userName');
    if (taken(this.#byEmail, fields.email)) return err('conflict', 'email');
    return undefined;
  }

  #create(fields) {
    const conflict = this.#conflict(fields, undefined);
    if (conflict) return conflict;

    const now = BigInt(Date.now());
    const user = {
      id: randomUUID(),
      ...copyFields(fields),
      created: now,
      modified: now,
      version: 1n,
    };
    const sequence = this.#nextSequence++;
    this.#byId.set(user.id, sequence);
    this.#byUserName.set(fold(user.userName), sequence);
    this.#byEmail.set(fold(user.email), sequence);
    this.#users.set(sequence, user);
    return ok(user);
  }

  #update(id, expectedVersion, fields) {
    const sequence = this.#byId.get(id);
    const current = this.#user(sequence);
    if (current === undefined) return err('not-found');
    if (current.version !== expectedVersion) return err('version-mismatch');
    if (asciiFold(fields.email) !== asciiFold(current.email)) {
      return err('refused', 'the login email cannot change');
    }
    const conflict = this.#conflict(fields, sequence);
    if (conflict) return conflict;
    if (current.active && !fields.active) {
      const refusal = this.#checkAdminRemoval(sequence, 'suspended');
      if (refusal) return refusal;
    }

    const { email: _email, ...changes } = copyFields(fields);
    const updated = {
      ...current,
      ...changes,
      modified: maxBigInt(BigInt(Date.now()), current.modified),
      version: current.version + 1n,
    };
    this.#byUserName.delete(fold(current.userName));
    this.#byUserName.set(fold(updated.userName), sequence);
    this.#users.set(sequence, updated);
    return ok(updated);
  }

  #delete(id) {
    const sequence = this.#byId.get(id);
    const current = this.#user(sequence);
    if (current === undefined) return err('not-found');

    if (this.deleteSuspends) {
      if (!current.active) return ok(current);
      const refusal = this.#checkAdminRemoval(sequence, 'suspended');
      if (refusal) return refusal;
      const suspended = {
        ...current,
        active: false,
        modified: maxBigInt(BigInt(Date.now()), current.modified),
        version: current.version + 1n,
      };
      this.#users.set(sequence, suspended);
      return ok(suspended);
    }

    const refusal = this.#checkAdminRemoval(sequence, 'deleted');
    if (refusal) return refusal;
    this.#byId.delete(id);
    this.#admins.delete(sequence);
    this.#users.delete(sequence);
    this.#byUserName.delete(fold(current.userName));
    this.#byEmail.delete(fold(current.email));
    return ok(undefined);
  }

  /** Refuses to take an administrator out of service where the policy forbids it. */
  #checkAdminRemoval(sequence, action) {
    if (!this.#admins.has(sequence)) return undefined;
    if (this.protectAdmins) {
      return err('refused', `administrators cannot be ${action} through SCIM on this server`);
    }
    const otherActiveAdmins = [...this.#admins].filter(
      (other) => other !== sequence && this.#users.get(other)?.active,
    );
    if (otherActiveAdmins.length === 0) {
      return err('refused', `the last administrator cannot be ${action}`);
    }
    return undefined;
  }
}

/** The attributes SCIM may set, as the store keeps them (absent options as undefined). */
function copyFields(fields) {
  return {
    email: fields.email,
    userName: fields.userName,
    givenName: fields.givenName ?? undefined,
    familyName: fields.familyName ?? undefined,
    active: fields.active,
    externalId: fields.externalId ?? undefined,
  };
}

/** Case folding for userName and email, as the reference store does (Unicode lower case). */
function fold(text) {
  return text.toLowerCase();
}

/** ASCII-only case folding: the login email compares so on update. */
function asciiFold(text) {
  return text.replace(/[A-Z]/g, (letter) => letter.toLowerCase());
}

function maxBigInt(a, b) {
  return a > b ? a : b;
}
