import type { HandlerName } from '../core/api/routes.js';
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
  // Built from the route list and schemas compiled into the bundle: touches no data.
  'get-openapi': 'none',
};
