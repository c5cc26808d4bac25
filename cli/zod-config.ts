// The CLI validates a document or two and exits: zod compiling a fast validator for each
// object schema at first use costs more than it would ever save here.
import { config } from 'zod/v4/core';

config({ jitless: true });
