// Starting workflows in AWS: Step Functions has no local stand-in here, so its client is mocked
// with the documented responses and errors.
import {
  ExecutionAlreadyExists,
  SFNClient,
  SFNServiceException,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';

const sfn = mockClient(SFNClient);
const ARN = 'arn:aws:states:eu-west-1:111122223333:stateMachine:persona-capture';

beforeAll(() => {
  process.env.AWS_REGION = 'eu-west-1';
  process.env.CAPTURE_STATE_MACHINE_ARN = ARN;
});

beforeEach(() => {
  sfn.reset();
});

describe('the Step Functions workflow starter', () => {
  it('names the execution after the operation, so that a retried start cannot run it twice', async () => {
    const { workflows } = await import('../../functions/shared/workflows.js');
    const unavailable = new SFNServiceException({
      name: 'ServiceUnavailable',
      $fault: 'server',
      $metadata: { httpStatusCode: 503 },
      message: 'Service Unavailable',
    });
    sfn
      .on(StartExecutionCommand)
      .rejectsOnce(unavailable)
      .resolvesOnce({ executionArn: `${ARN}:op-1`, startDate: new Date() })
      .rejects(new ExecutionAlreadyExists({ $metadata: {}, message: 'Execution Already Exists' }));

    // The first attempt fails and says so: the request fails and its retry asks again.
    await expect(workflows().start('capture', { operationId: 'op-1' })).rejects.toThrow(
      'Service Unavailable',
    );
    await workflows().start('capture', { operationId: 'op-1' });
    // Asked once more (a concurrent retry): the execution exists, which is what was wanted.
    await workflows().start('capture', { operationId: 'op-1' });

    const inputs = sfn.commandCalls(StartExecutionCommand).map((c) => c.args[0].input);
    expect(inputs).toHaveLength(3);
    for (const input of inputs) {
      expect(input).toEqual({
        stateMachineArn: ARN,
        name: 'op-1',
        input: JSON.stringify({ operationId: 'op-1' }),
      });
    }
  });
});
