import type { HandlerName } from '../core/api/routes.js';
import {
  HOSTS_TABLE,
  OPERATIONS_TABLE,
  PROFILES_TABLE,
  SNAPSHOTS_TABLE,
} from '../core/storage/definitions.js';
import type { DataAccess } from './storage.js';

/**
 * What each API function may do with Persona's data. Keyed by handler so that a new route does
 * not compile until someone decides its permissions.
 */
export const API_HANDLER_ACCESS: Readonly<Record<HandlerName, DataAccess>> = {
  'create-profile': 'read-write',
  'list-profiles': 'read',
  'get-profile': 'read',
  'put-profile': 'read-write',
  'list-versions': 'read',
  'get-version': 'read',
  'diff-profiles': 'read',
  'list-snapshots': 'read',
  'get-snapshot': 'read',
  'register-host': 'read-write',
  'list-hosts': 'read',
  'get-host': 'read',
  'get-operation': 'read',
  // Registers the operation; the workflow's own functions do the capture.
  'start-capture': 'read-write',
  // Built from the route list and schemas compiled into the bundle: touches no data.
  'get-openapi': 'none',
};

/** The tables (definition ids) each API function works with; it is granted no others. */
export const API_HANDLER_TABLES: Readonly<Record<HandlerName, readonly string[]>> = {
  'create-profile': [PROFILES_TABLE.id],
  'list-profiles': [PROFILES_TABLE.id],
  'get-profile': [PROFILES_TABLE.id],
  'put-profile': [PROFILES_TABLE.id],
  'list-versions': [PROFILES_TABLE.id],
  'get-version': [PROFILES_TABLE.id],
  'diff-profiles': [PROFILES_TABLE.id],
  'list-snapshots': [SNAPSHOTS_TABLE.id],
  'get-snapshot': [SNAPSHOTS_TABLE.id],
  'register-host': [HOSTS_TABLE.id],
  'list-hosts': [HOSTS_TABLE.id],
  'get-host': [HOSTS_TABLE.id],
  'get-operation': [OPERATIONS_TABLE.id],
  'start-capture': [HOSTS_TABLE.id, OPERATIONS_TABLE.id],
  'get-openapi': [],
};

/** Whether each API function reads or writes the data bucket (profile documents live there). */
export const API_HANDLER_BUCKET: Readonly<Record<HandlerName, boolean>> = {
  'create-profile': true,
  'list-profiles': true,
  'get-profile': true,
  'put-profile': true,
  'list-versions': true,
  'get-version': true,
  'diff-profiles': true,
  // Records only: showing a snapshot needs neither its manifest nor its key.
  'list-snapshots': false,
  'get-snapshot': false,
  'register-host': false,
  'list-hosts': false,
  'get-host': false,
  'get-operation': false,
  'start-capture': false,
  'get-openapi': false,
};
