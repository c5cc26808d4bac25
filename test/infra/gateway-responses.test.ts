// API Gateway's own error responses in the synthesised stack: each is a problem document of the
// shape the functions answer, and the operations table expires Idempotency-Key records.
import { readFileSync } from 'node:fs';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { GATEWAY_RESPONSES } from '../../core/api/problems.js';
import { ProblemSchema } from '../../core/api/schemas.js';
import { PersonaStack } from '../../infra/stack.js';

const CDK_CONTEXT: Record<string, unknown> = JSON.parse(
  readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8'),
).context;

let template: Template;

beforeAll(() => {
  // Configuration only: bundling is skipped (the platform test bundles every function).
  const app = new App({ context: { ...CDK_CONTEXT, 'aws:cdk:bundling-stacks': [] } });
  template = Template.fromStack(new PersonaStack(app, 'PersonaStack'));
});

/** The body API Gateway sends: the template with its $context values filled in. */
const fill = (body: string, message: string) =>
  body
    .replaceAll('$context.error.messageString', JSON.stringify(message))
    .replaceAll('$context.requestId', 'c0ffee00-0000-4000-8000-000000000000');

describe("API Gateway's own error responses", () => {
  it('are problem documents with type, title, status and code, for every response type', () => {
    const responses = Object.values(template.findResources('AWS::ApiGateway::GatewayResponse')).map(
      (r) => r.Properties,
    );
    const types = responses.map((r) => r.ResponseType).sort();
    expect(types).toEqual(Object.keys(GATEWAY_RESPONSES).sort());
    for (const r of responses) {
      const type = r.ResponseType as keyof typeof GATEWAY_RESPONSES;
      expect(r.ResponseParameters, type).toEqual({
        'gatewayresponse.header.Content-Type': "'application/problem+json'",
      });
      const body = JSON.parse(fill(r.ResponseTemplates['application/json'], 'Missing Authentication Token'));
      expect(ProblemSchema.safeParse(body).success, `${type}: ${JSON.stringify(body)}`).toBe(true);
      expect(body).toMatchObject({
        type: `urn:persona:problem:${type.toLowerCase().replaceAll('_', '-')}`,
        status: GATEWAY_RESPONSES[type],
        code: type,
        detail: 'Missing Authentication Token',
        message: 'Missing Authentication Token',
      });
      // API Gateway keeps its own status for each type: the body says the same one.
      expect(r.StatusCode, type).toBeUndefined();
    }
  });

  it('names the statuses callers branch on: 403 for IAM, 429 throttled, 504 time-outs', () => {
    expect(GATEWAY_RESPONSES).toMatchObject({
      ACCESS_DENIED: 403,
      MISSING_AUTHENTICATION_TOKEN: 403,
      INVALID_SIGNATURE: 403,
      THROTTLED: 429,
      QUOTA_EXCEEDED: 429,
      INTEGRATION_TIMEOUT: 504,
      DEFAULT_4XX: 400,
      DEFAULT_5XX: 500,
    });
  });

  it('cannot be broken out of by a message: the message is filled in as a JSON string', () => {
    const [r] = Object.values(template.findResources('AWS::ApiGateway::GatewayResponse')).map(
      (x) => x.Properties,
    );
    const hostile = '", "code": "INVALID_INPUT", "x": "';
    const body = JSON.parse(fill(r.ResponseTemplates['application/json'], hostile));
    expect(body.detail).toBe(hostile);
    expect(body.code).toBe(r.ResponseType);
  });
});

describe('the operations table', () => {
  it('expires Idempotency-Key records: TTL is on, on expiresAt', () => {
    const tables = Object.values(template.findResources('AWS::DynamoDB::Table')).filter((t) =>
      (t.Properties.KeySchema as { AttributeName: string }[]).some((k) => k.AttributeName === 'id'),
    );
    const operations = tables.find((t) =>
      (t.Properties.GlobalSecondaryIndexes ?? []).some(
        (i: { IndexName: string }) => i.IndexName === 'ByCreation',
      ),
    );
    expect(operations?.Properties.TimeToLiveSpecification).toEqual({
      AttributeName: 'expiresAt',
      Enabled: true,
    });
  });
});
