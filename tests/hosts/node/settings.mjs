// The `scim:provider/settings` import: the administrator's settings held in memory, changeable
// between requests, as the reference host's MemorySettings (host-harness/src/settings.rs).

import { createHash } from 'node:crypto';

/** SHA-256 of the token's UTF-8 bytes: what the settings keep instead of the token. */
export function tokenDigest(token) {
  return new Uint8Array(createHash('sha256').update(token, 'utf8').digest());
}

export class MemorySettings {
  enabled = true;
  /** `[{digest: Uint8Array, expiresAt: bigint | undefined}]`. */
  tokens;
  baseUrl;

  /** Enabled, with one token (kept as its digest) that never expires. */
  constructor(token, baseUrl) {
    this.tokens = [{ digest: tokenDigest(token), expiresAt: undefined }];
    this.baseUrl = baseUrl;
  }

  /** The import object jco expects for `scim:provider/settings`. */
  imports() {
    return {
      current: () => ({
        enabled: this.enabled,
        tokens: this.tokens.map((token) => ({ ...token })),
        baseUrl: this.baseUrl,
        now: BigInt(Math.floor(Date.now() / 1000)),
      }),
    };
  }
}
