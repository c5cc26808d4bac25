import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as wafv2 from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';
import {
  GATEWAY_RESPONSES,
  type GatewayResponseType,
  PROBLEM_MEDIA_TYPE,
  problemTitle,
  problemType,
} from '../core/api/problems.js';
import type { HandlerName, Route } from '../core/api/routes.js';
import { ROUTES } from '../core/api/routes.js';
import { AGENTS_TABLE } from '../core/storage/definitions.js';
import { type FunctionSizings, type PersonaFunctionProps, personaFunction } from './function.js';
import { TARGET_READERS, targetFiles } from './morph.js';
import { API_HANDLER_GRANTS } from './permissions.js';
import type { PersonaStorage } from './storage.js';

/** The repository root: handlers and the lock file are found relative to it. */
export const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface ApiThrottling {
  /** Steady-state requests per second across the stage. */
  readonly rateLimit: number;
  /** Requests the stage absorbs in a burst above the rate. */
  readonly burstLimit: number;
}

export interface PersonaApiProps {
  readonly storage: PersonaStorage;
  /** @default 'v1' */
  readonly stageName?: string;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /**
   * What happens to the log groups when they leave the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly logRemovalPolicy?: RemovalPolicy;
  /** @default 50 requests per second, bursts of 100 */
  readonly throttling?: ApiThrottling;
  /**
   * Create the account-wide role API Gateway uses to write execution logs. Turn off when the
   * account's API Gateway settings already name one (it is one per account and region).
   * @default true
   */
  readonly cloudWatchRole?: boolean;
  /** A WAFv2 web ACL (scope REGIONAL) to put in front of the stage. @default none */
  readonly webAclArn?: string;
  /** @default 512 */
  readonly memorySize?: number;
  /** @default 10 seconds */
  readonly timeout?: Duration;
  /**
   * Where the routes that reach hosts (installing and removing an agent) run, to reach them over
   * SSH: the workflows' VPC (PersonaPlatformProps.captureVpc). @default none
   */
  readonly hostsVpc?: NonNullable<PersonaFunctionProps['vpc']>;
  /** Memory and time-outs of the agent routes' functions (`api` is memorySize and timeout). */
  readonly sizing?: Pick<FunctionSizings, 'agentInstall' | 'agentAuthorizer'>;
  /**
   * Where `functions/api/<handler>/handler.ts` and `package-lock.json` live.
   * @default the root of this repository
   */
  readonly projectRoot?: string;
}

/**
 * The v1 REST API: one function per route of ROUTES, every method signed with SigV4 (IAM).
 */
export class PersonaApi extends Construct {
  readonly restApi: apigw.RestApi;
  readonly functions: Readonly<Record<HandlerName, nodejs.NodejsFunction>>;
  readonly accessLogs: logs.LogGroup;
  /** The agent routes' REQUEST authoriser, when the API has agent routes. */
  readonly agentAuthorizerFunction?: nodejs.NodejsFunction;

  constructor(scope: Construct, id: string, props: PersonaApiProps) {
    super(scope, id);
    const stageName = props.stageName ?? 'v1';
    const retention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    const logRemovalPolicy = props.logRemovalPolicy ?? RemovalPolicy.RETAIN;
    const throttling = props.throttling ?? { rateLimit: 50, burstLimit: 100 };
    const projectRoot = props.projectRoot ?? PROJECT_ROOT;

    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', { retention, removalPolicy: logRemovalPolicy });

    this.restApi = new apigw.RestApi(this, 'RestApi', {
      description: 'Persona v1 API',
      endpointConfiguration: { types: [apigw.EndpointType.REGIONAL] },
      cloudWatchRole: props.cloudWatchRole ?? true,
      defaultMethodOptions: { authorizationType: apigw.AuthorizationType.IAM },
      deployOptions: {
        stageName,
        tracingEnabled: true,
        metricsEnabled: true,
        loggingLevel: apigw.MethodLoggingLevel.INFO,
        // Request and response bodies are profiles: keep them out of the execution logs.
        dataTraceEnabled: false,
        accessLogDestination: new apigw.LogGroupLogDestination(this.accessLogs),
        accessLogFormat: apigw.AccessLogFormat.jsonWithStandardFields(),
        throttlingRateLimit: throttling.rateLimit,
        throttlingBurstLimit: throttling.burstLimit,
      },
    });

    // API Gateway's own refusals (a signature it rejects, throttling, a function that timed out)
    // answer the problem documents the functions answer, with the response type as their code;
    // the message API Gateway words stays in `detail` and `message`, x-amzn-ErrorType as it is.
    for (const [type, status] of Object.entries(GATEWAY_RESPONSES) as [GatewayResponseType, number][]) {
      this.restApi.addGatewayResponse(`Gateway${pascalCase(type.toLowerCase())}`, {
        type: apigw.ResponseType.of(type),
        responseHeaders: { 'Content-Type': `'${PROBLEM_MEDIA_TYPE}'` },
        templates: { 'application/json': gatewayProblemTemplate(type, status) },
      });
    }

    // API Gateway would create this group itself, without retention, on the first logged call.
    const executionLogs = new logs.LogGroup(this, 'ExecutionLogs', {
      logGroupName: `API-Gateway-Execution-Logs_${this.restApi.restApiId}/${stageName}`,
      retention,
      removalPolicy: logRemovalPolicy,
    });
    this.restApi.deploymentStage.node.addDependency(executionLogs);

    const validator = this.restApi.addRequestValidator('RequestValidator', {
      validateRequestBody: true,
      validateRequestParameters: true,
    });

    // Routes for hosts' agents take the agent's own credential (a bearer token) instead of a
    // SigV4 signature, checked by a REQUEST authoriser. Its answers are not cached: a revoked
    // credential is refused from the next request on.
    const agentRoutes = ROUTES.filter((r: Route) => r.auth === 'agent');
    let agentAuthorizer: apigw.RequestAuthorizer | undefined;
    if (agentRoutes.length > 0) {
      const authorizerFunction = personaFunction(this, 'AgentAuthorizerFunction', {
        projectRoot,
        retention,
        logRemovalPolicy,
        memorySize: 256,
        timeout: Duration.seconds(5),
        ...(props.sizing?.agentAuthorizer ? { sizing: props.sizing.agentAuthorizer } : {}),
        entry: path.join('functions', 'authorizers', 'agent', 'handler.ts'),
        description: 'Persona API: the agent authoriser (host agent credentials)',
      });
      props.storage.connect(authorizerFunction, { tables: { [AGENTS_TABLE.id]: 'read' } });
      agentAuthorizer = new apigw.RequestAuthorizer(this, 'AgentAuthorizer', {
        handler: authorizerFunction,
        identitySources: [apigw.IdentitySource.header('Authorization')],
        resultsCacheTtl: Duration.seconds(0),
      });
      this.agentAuthorizerFunction = authorizerFunction;
    }

    const functions: Partial<Record<HandlerName, nodejs.NodejsFunction>> = {};
    for (const route of ROUTES) {
      // Installing a host's agent reaches the host (SSH or SSM) and sends it the agent script,
      // which the bundle carries beside the code; it takes API Gateway's whole 29 s.
      const reachesHosts = route.handler === 'install-agent' || route.handler === 'revoke-agent';
      // Recommending and starting a morph read the target profiles, bundled beside the code.
      const readsTargets = (TARGET_READERS as readonly string[]).includes(route.handler);
      const fn =
        functions[route.handler] ??
        this.function(route.handler, {
          projectRoot,
          retention,
          logRemovalPolicy,
          memorySize: reachesHosts ? 512 : (props.memorySize ?? 512),
          timeout: reachesHosts ? Duration.seconds(29) : (props.timeout ?? Duration.seconds(10)),
          ...(reachesHosts
            ? {
                ...(props.hostsVpc ? { vpc: props.hostsVpc } : {}),
                ...(props.sizing?.agentInstall ? { sizing: props.sizing.agentInstall } : {}),
                layers: ['ssh'],
                files: [{ from: 'core/persona/agent/persona-agent.sh', to: 'persona-agent.sh' }],
              }
            : {}),
          ...(readsTargets ? { files: targetFiles(projectRoot) } : {}),
        });
      functions[route.handler] = fn;
      this.resourceFor(route.path).addMethod(
        route.method,
        new apigw.LambdaIntegration(fn, { allowTestInvoke: false }),
        {
          ...((route as Route).auth === 'agent' && agentAuthorizer
            ? { authorizationType: apigw.AuthorizationType.CUSTOM, authorizer: agentAuthorizer }
            : { authorizationType: apigw.AuthorizationType.IAM }),
          requestValidator: validator,
          requestParameters: pathParameters(route),
          operationName: route.handler,
        },
      );
    }
    this.functions = functions as Record<HandlerName, nodejs.NodejsFunction>;
    for (const [handler, fn] of Object.entries(this.functions) as [HandlerName, nodejs.NodejsFunction][]) {
      props.storage.connect(fn, API_HANDLER_GRANTS[handler]);
    }

    if (props.webAclArn) {
      new wafv2.CfnWebACLAssociation(this, 'WebAcl', {
        resourceArn: this.restApi.deploymentStage.stageArn,
        webAclArn: props.webAclArn,
      });
    } else {
      Validations.of(this.restApi.deploymentStage).acknowledge({
        id: 'AwsSolutions-APIG3',
        reason:
          'Every method requires a SigV4 signature (IAM) and the stage is throttled; a WAF web ACL is optional and attached through the webAclArn prop where an account runs one.',
      });
    }
    Validations.of(this.restApi).acknowledge({
      id: 'AwsSolutions-COG4',
      reason:
        'The API is called by operators, CI and other AWS workloads with IAM credentials, so methods use IAM (SigV4) authorization rather than a Cognito user pool.',
    });
    if (props.cloudWatchRole ?? true) {
      Validations.of(this.restApi).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
        reason:
          "API Gateway's account-level logging role is shared by every REST API in the account and region; the AWS-managed policy is the documented one and only allows writing to CloudWatch Logs.",
      });
    }
  }

  /** The stage's invoke URL, ending in `/`. */
  get url(): string {
    return this.restApi.url;
  }

  private function(
    handler: HandlerName,
    options: {
      readonly projectRoot: string;
      readonly retention: logs.RetentionDays;
      readonly logRemovalPolicy: RemovalPolicy;
      readonly memorySize: number;
      readonly timeout: Duration;
      readonly layers?: PersonaFunctionProps['layers'];
      readonly files?: NonNullable<PersonaFunctionProps['files']>;
      readonly sizing?: NonNullable<PersonaFunctionProps['sizing']>;
      readonly vpc?: NonNullable<PersonaFunctionProps['vpc']>;
    },
  ): nodejs.NodejsFunction {
    return personaFunction(this, pascalCase(handler), {
      ...options,
      entry: path.join('functions', 'api', handler, 'handler.ts'),
      description: `Persona API: ${handler}`,
    });
  }

  private resourceFor(routePath: string): apigw.IResource {
    let resource: apigw.IResource = this.restApi.root;
    for (const segment of routePath.split('/').filter((s) => s.length > 0)) {
      resource = resource.getResource(segment) ?? resource.addResource(segment);
    }
    return resource;
  }
}

/** Declared so that API Gateway's own description of each method (and its OpenAPI export) names them. */
function pathParameters(route: Route): Record<string, boolean> {
  const parameters: Record<string, boolean> = {};
  for (const match of route.path.matchAll(/\{([^}]+)\}/g)) {
    parameters[`method.request.path.${match[1]}`] = true;
  }
  return parameters;
}

/**
 * The body of a gateway response: a problem (core/api/problems.ts) filled by API Gateway.
 * `messageString` is the message already quoted as a JSON string, so no message can break out.
 */
export function gatewayProblemTemplate(type: GatewayResponseType, status: number): string {
  return JSON.stringify({
    type: problemType(type),
    title: problemTitle(status),
    status,
    detail: '@MESSAGE@',
    code: type,
    message: '@MESSAGE@',
    requestId: '$context.requestId',
  }).replaceAll('"@MESSAGE@"', '$context.error.messageString');
}

export function pascalCase(name: string): string {
  return name
    .split(/[^a-zA-Z0-9]+/)
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
}
