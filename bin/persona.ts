import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { PersonaStack } from '../infra/stack.js';

const app = new App();
const stackName: unknown = app.node.tryGetContext('stackName');

// No env: the template stays account- and region-agnostic, so synth needs no AWS credentials.
new PersonaStack(app, 'PersonaStack', {
  stackName: typeof stackName === 'string' && stackName.length > 0 ? stackName : 'Persona',
  description: 'Persona: capture, version and reproduce host profiles',
});

// An unacknowledged error fails synth (warnings are printed); test/infra fails on both.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
