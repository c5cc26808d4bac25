// The API Gateway REQUEST authoriser of the agent routes: an `Authorization: Bearer <token>`
// of a live agent credential is allowed to invoke the method it called, with the agent's host
// in the context for the handler to check against the host it acts for. Anything else is
// API Gateway's 401. Results are not cached (the API sets a time to live of 0), so a
// revocation holds from the next request.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import middy from '@middy/core';
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { isPersonaError } from '../../../core/errors.js';
import { authenticateAgent, DynamoAgentCredentials } from '../../../core/persona/agent/credentials.js';
import { AGENTS_TABLE } from '../../../core/storage/definitions.js';
import { logger, observability, traced } from '../../shared/observability.js';

// Its own few clients rather than functions/shared/runtime.ts: the authoriser runs before
// every agent request, so its bundle holds the credential check and nothing else (and the
// observability every function has).
const tableName = process.env[AGENTS_TABLE.env];
if (!tableName) throw new Error(`environment variable ${AGENTS_TABLE.env} is not set`);
const credentials = new DynamoAgentCredentials(
  DynamoDBDocumentClient.from(traced(new DynamoDBClient({}))),
  tableName,
);

function authorization(event: APIGatewayRequestAuthorizerEvent): string | undefined {
  for (const [name, value] of Object.entries(event.headers ?? {})) {
    if (name.toLowerCase() === 'authorization' && value) return value;
  }
  return undefined;
}

const authorize = async (event: APIGatewayRequestAuthorizerEvent): Promise<APIGatewayAuthorizerResult> => {
  try {
    const agent = await authenticateAgent(credentials, authorization(event), new Date());
    return {
      principalId: `agent:${agent.id}`,
      policyDocument: {
        Version: '2012-10-17',
        Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: event.methodArn }],
      },
      context: { principal: 'agent', host: agent.host, id: agent.id },
    };
  } catch (error) {
    if (!isPersonaError(error)) logger.error('agent authoriser failed', { error: error as Error });
    // The one answer API Gateway turns into 401 Unauthorized.
    throw new Error('Unauthorized');
  }
};

export const main = middy(authorize).use(observability());
