// Reading snapshot records: what the API shows without opening the store (no key needed).
import { NotFoundError } from '../errors.js';
import type { SnapshotRecord, SnapshotRecords } from './records.js';

export async function listSnapshots(records: SnapshotRecords, host: string): Promise<SnapshotRecord[]> {
  return (await records.list(host)).sort((a, b) => a.version - b.version);
}

export async function getSnapshot(
  records: SnapshotRecords,
  host: string,
  version: number,
): Promise<SnapshotRecord> {
  const record = await records.get(host, version);
  if (!record) {
    const latest = await records.latest(host);
    throw new NotFoundError(
      latest === undefined
        ? `host ${host} has no snapshots`
        : `host ${host} has no snapshot ${version} (latest is ${latest.version})`,
      host,
    );
  }
  return record;
}
