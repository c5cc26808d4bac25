// What the package exports (package.json `exports`): the construct an app embeds, its props,
// and the constructs it is made of, for apps that reach into them (`platform.api.restApi`, ...).
export type { ApiThrottling } from './api.js';
export { PersonaApi } from './api.js';
export type { CloneCloudProps } from './cloud.js';
export type { FunctionSizing, FunctionSizings } from './function.js';
export { PersonaTriggers } from './personas.js';
export { PersonaPlatform, type PersonaPlatformProps } from './platform.js';
export { PersonaStack, type PersonaStackProps } from './stack.js';
export { PersonaStorage, type TableBilling } from './storage.js';
export { CLONE_EVENTS, PersonaWorkflows } from './workflows.js';
