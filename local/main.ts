// `npm start`: Persona on this machine, until Ctrl-C.
import pc from 'picocolors';
import { DEFAULT_PORT, startLocal } from './runtime.js';

const port = Number(process.env.PERSONA_PORT ?? DEFAULT_PORT);
const quiet = process.env.PERSONA_QUIET === 'true';
// `npm start -- --agent-endpoint http://10.0.0.5:8171`: an address hosts' agents reach this
// machine at (agent routes only); without it they come back through their SSH connection.
const flag = process.argv.indexOf('--agent-endpoint');
const agentEndpoint = flag === -1 ? process.env.PERSONA_AGENT_ENDPOINT : process.argv[flag + 1];

console.log(pc.dim('starting DynamoDB Local and the S3-protocol server…'));
const persona = await startLocal({
  port,
  ...(process.env.PERSONA_DATA ? { dataDir: process.env.PERSONA_DATA } : {}),
  ...(agentEndpoint ? { agentEndpoint } : {}),
  ...(quiet
    ? {}
    : { onRequest: (r) => console.log(pc.dim(`${r.method} ${r.path} → ${r.status} (${r.ms} ms)`)) }),
});
console.log(`${pc.green('Persona is running')} at ${pc.bold(persona.url)}`);
console.log(pc.dim(`  DynamoDB Local ${persona.dynamoEndpoint} · S3 ${persona.s3Endpoint}`));
console.log(pc.dim(`  try: npx persona profiles apply -f examples/web.yaml   (Ctrl-C stops)`));
void persona.recovered.then((done) => {
  for (const r of done) {
    const what =
      r.outcome === 'restarted'
        ? 'started'
        : r.outcome === 'rolled-back'
          ? `ended ${r.status}`
          : `not recovered: ${r.error}`;
    console.log(pc.yellow(`${r.kind} operation ${r.id}, left open by an earlier run: ${what}`));
  }
});

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  console.log(pc.dim(`\n${signal}: stopping…`));
  await persona.stop();
  process.exit(0);
};
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
