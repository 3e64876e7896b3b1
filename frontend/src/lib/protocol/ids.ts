import { v7 } from 'uuid';

/** A new command id: a UUIDv7, minted once per command and re-sent unchanged (PROTOCOL.md 4.1). */
export function commandId(): string {
  return v7();
}
